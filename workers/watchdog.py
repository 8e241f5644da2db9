# Design: docs/architecture.md#drain-tickets-and-tokens
"""The drain-ticket watchdog: no discardable event type stays stranded.

Runs as a thread in each service worker, every ``TTE_DRAIN_WATCHDOG_SECONDS``
(default 30). Each pass gathers the evidence — was the worker idle for a whole
interval, with ``svc.<slug>`` empty and no other consumer? Then no ticket of the
service exists, since a waiting one would have been delivered to it — and has
``drain.repair`` arm each discardable type whose queue holds messages with no
ticket out, purging tokens whose tickets were lost (the rules are in drain.py
and docs/architecture.md).

The same evidence proves that no message of the service can be in flight, so
the pass also publishes again the items left pending or processing without one
(``project/queue_system/recovery.py``), e.g. after a worker process was killed
once the broker had its ack.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime

from celery.worker import state as worker_state
from django.utils import timezone

from project.queue_system import queues
from project.queue_system.broker import CONNECTION_ERRORS, passive_counts

logger = logging.getLogger("queue.watchdog")

# TTE_ (TikTok Live Events) marks the project's own variables (docs/configuration.md).
INTERVAL_ENV = "TTE_DRAIN_WATCHDOG_SECONDS"


class DrainWatchdog(threading.Thread):
    def __init__(self, slugs: list[str], interval: float | None = None) -> None:
        super().__init__(name="drain-watchdog", daemon=True)
        self.slugs = slugs
        self.interval = interval or float(os.environ.get(INTERVAL_ENV, "30"))
        self._stop_event = threading.Event()
        self._was_idle = False
        self._last_count = -1
        self._checked_at: datetime | None = None

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                self.check()
            except CONNECTION_ERRORS as exc:
                from project.queue_system.drain import drop_link

                drop_link()
                logger.warning("watchdog could not reach the broker", extra={"error": str(exc)})
            except Exception:
                logger.exception("watchdog check failed")

    def _idle_throughout(self) -> bool:
        """True when no task was held or run since the previous check and none is held now."""
        idle_now = not worker_state.requests
        count = worker_state.all_total_count[0]
        idle = idle_now and self._was_idle and count == self._last_count
        self._was_idle, self._last_count = idle_now, count
        return idle

    def check(self) -> int:
        """One pass; returns the number of tickets armed."""
        from django.db import close_old_connections

        from project.queue_system.drain import link, repair
        from project.queue_system.recovery import recover_idle
        from project.queue_system.restarts import reconcile
        from project.queue_system.topology import all_topologies

        close_old_connections()
        idle = self._idle_throughout()
        idle_since, self._checked_at = self._checked_at, timezone.now()
        armed = 0
        current = link()
        reconcile(current.connection)
        for topology in all_topologies(self.slugs):
            main = queues.main_queue_name(topology.slug)
            counts = passive_counts(
                current.connection, queues.evidence_queue_names(topology.slug, topology.discardable_types)
            )
            main_counts = counts.get(main)
            nothing_waiting = idle and main_counts is not None and main_counts[0] == 0 and main_counts[1] <= 1
            if nothing_waiting and idle_since is not None:
                recover_idle(topology, counts, before=idle_since)
            for event_type in topology.discardable_types:
                armed += repair(
                    current, topology.slug, event_type, topology.tickets, counts, no_ticket_out=nothing_waiting
                )
        return armed
