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
