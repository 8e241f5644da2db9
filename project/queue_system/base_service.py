# Design: docs/architecture.md#sync-and-async
"""The base class every service subclasses, exactly as in the seeds.

A service is registered in the admin by the dotted path of its class; the worker
of that service creates one instance per worker process, calls ``on_start``
before the first event, ``process_event`` once per delivery and ``on_stop`` on
a clean shutdown.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from project.queue_system.models import QueueItem, Service
    from project.tiktok_events.models import LiveEvent


class TransientError(Exception):
    """Raised by a service for a failure worth retrying (network blip, rate limit).

    Any other exception, or ``process_event`` returning False, fails the item
    for good with the error stored on it.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BaseQueueService:
    """Subclass it and implement ``process_event``; ``on_start``/``on_stop`` are optional."""

    def __init__(self, service: Service | None = None, **options: Any) -> None:
        self.service = service
        self.options = options
        slug = service.slug if service is not None else type(self).__name__
        self.logger = logging.getLogger(f"services.{slug}")

    def on_start(self) -> None:
        """Runs once per worker process before its first event."""

    def on_stop(self) -> None:
        """Runs when the worker stops cleanly."""

    def process_event(self, live_event: LiveEvent, queue_item: QueueItem) -> bool:
        """Handle one event; return True on success, False on failure."""
        raise NotImplementedError(f"{type(self).__name__} must implement process_event(live_event, queue_item)")

    def on_timeout(self, live_event: LiveEvent, queue_item: QueueItem) -> None:
        """Runs when ``process_event`` of this item outlived the service's time budget.

        The item is already ``failed`` ("timed out after N s") and the worker has
        moved on; release what the handler holds (stop a speech, close a remote
        session). It runs in the worker, beside the overdue handler (an ASYNC
        service's thread may still be inside it), or in a fresh process after a
        SYNC worker's child was killed: it must not assume the handler has returned.
        """

    def cancel_current(self) -> None:
        """Optional: stop the item being handled now (e.g. cut a speech short), asked from the control room.

        Runs on another thread of the worker process, beside ``process_event``; it
        should only make the running handler return soon. Services that do not
        override it show no skip button (docs/control-room.md).
        """

    @property
    def time_budget(self) -> float:
        """Seconds one event may take (``Service.time_budget_seconds``); internal waits stay below it."""
        return float(getattr(self.service, "time_budget_seconds", None) or 300)
