"""The drain-ticket watchdog: no discardable event type stays stranded.

Runs as a thread in each service worker, every ``TTE_DRAIN_WATCHDOG_SECONDS``
(default 30). For each discardable type of the worker's service whose queue
holds messages:

- fewer tokens than K in the arming queue → arm (always safe: the broker
  still caps tokens at K);
- K tokens although the worker was idle for a whole interval with
  ``svc.<slug>`` empty and no other consumer → the tokens are stale (their
  tickets were lost: a crash between arming and publishing, a ticket killed by
  a time limit). An idle worker with an empty main queue proves no ticket
  exists, because a waiting ticket would have been delivered to it. The
  tokens are purged and one ticket is armed.

Stale tokens of a type whose queue is empty are purged on the same evidence.
A false alarm can only add one ticket too many, which runs, finds nothing
and ends.

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

        from project.queue_system.drain import arm, link, ticket_priority
        from project.queue_system.recovery import recover_idle
        from project.queue_system.topology import all_topologies

        close_old_connections()
        idle = self._idle_throughout()
        idle_since, self._checked_at = self._checked_at, timezone.now()
        armed = 0
        current = link()
        for topology in all_topologies(self.slugs):
            main = queues.main_queue_name(topology.slug)
            names = [main, queues.DISCARDED_QUEUE]
            for event_type in topology.discardable_types:
                names += [
                    queues.discardable_queue_name(topology.slug, event_type),
                    queues.arm_queue_name(topology.slug, event_type),
                ]
            counts = passive_counts(current.connection, names)
            main_counts = counts.get(main)
            nothing_waiting = idle and main_counts is not None and main_counts[0] == 0 and main_counts[1] <= 1
            if nothing_waiting and idle_since is not None:
                recover_idle(topology, counts, before=idle_since)
            for event_type in topology.discardable_types:
                waiting = counts.get(queues.discardable_queue_name(topology.slug, event_type))
                tokens = counts.get(queues.arm_queue_name(topology.slug, event_type))
                if waiting is None or tokens is None:
                    continue  # not declared yet: nothing was ever published there
                extra = {"service": topology.slug, "event_type": event_type, "waiting": waiting[0]}
                if tokens[0] and nothing_waiting:
                    logger.warning("stale drain tokens purged", extra={**extra, "tokens": tokens[0]})
                    current.channel.queue_purge(queues.arm_queue_name(topology.slug, event_type))
                    tokens = (0, tokens[1])
                if waiting[0] and tokens[0] < topology.tickets:
                    got = arm(
                        current.publisher, topology.slug, event_type, 1, ticket_priority(topology.slug, event_type)
                    )
                    if got:
                        logger.info("drain ticket re-armed", extra=extra)
                    armed += got
        return armed
