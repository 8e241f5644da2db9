# Design: docs/architecture.md#guarantees
"""Discard accounting: what a max-length policy dropped becomes ``discarded`` QueueItems.

The policy of ``svc.<slug>.discardable.<T>`` dead-letters the dropped (oldest)
message to the ``events.discarded`` exchange; this consumer reads the
``events.discarded`` queue and marks the items in batches (one UPDATE and one
multiple-ack per batch). Run by ``manage.py consume_discarded`` and under
``run_queue_workers``.
"""

from __future__ import annotations

import logging
import threading
import time

import amqp
from django.db import close_old_connections
from django.db.models import QuerySet
from django.utils import timezone

from project.queue_system import queues
from project.queue_system.broker import CONNECTION_ERRORS, BrokerError, close_quietly, open_connection
from project.queue_system.infrastructure import InfrastructureFault, retry_database
from project.queue_system.models import QueueItem
from project.queue_system.task_messages import queue_item_id_of
from project.queue_system.topology import declare_base

logger = logging.getLogger("queue.discards")

BATCH_SIZE = 500
FLUSH_SECONDS = 0.5


def _dropped_from(message: amqp.Message) -> str:
    deaths = (message.properties.get("application_headers") or {}).get("x-death") or []
    return str(deaths[0].get("queue", "")) if deaths else ""


def discard(items: QuerySet[QueueItem], reason: str) -> int:
    """Mark ``items`` discarded with ``reason`` (the callers' filters say which may be); how many were."""
    now = timezone.now()
    return items.update(status=QueueItem.Status.DISCARDED, error=reason, finished_at=now, updated_at=now)


def mark_discarded(dropped: dict[int, str]) -> int:
    """Mark items discarded (only those not finished: a duplicate copy of a done item changes nothing)."""
    by_queue: dict[str, list[int]] = {}
    for item_id, queue in dropped.items():
        by_queue.setdefault(queue, []).append(item_id)
    return sum(
        discard(
            QueueItem.objects.filter(pk__in=ids, status__in=[QueueItem.Status.PENDING, QueueItem.Status.PROCESSING]),
            f"dropped: more than max_queue_size waiting in {queue or 'its discardable queue'}",
        )
        for queue, ids in by_queue.items()
    )


class DiscardAccountant:
    def __init__(self, batch_size: int = BATCH_SIZE, flush_seconds: float = FLUSH_SECONDS) -> None:
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.stop_event = threading.Event()
        self.marked = 0

    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> None:
        """Consume until ``stop()``; reconnects with a back-off while the broker is away."""
        backoff = 1.0
        while not self.stop_event.is_set():
            connection = None
            try:
                connection = open_connection()
                backoff = 1.0
                self._consume(connection)
            except (BrokerError, *CONNECTION_ERRORS, InfrastructureFault) as exc:
                # PostgreSQL staying away (InfrastructureFault) ends up here too: closing the
                # connection puts the unacked batch back in the queue.
                logger.warning(
                    "discard consumer lost the broker or the database; reconnecting", extra={"error": str(exc)}
                )
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            finally:
                close_quietly(connection)

    def _consume(self, connection: amqp.Connection) -> None:
        channel = connection.channel()
        declare_base(channel)
        channel.basic_qos(0, self.batch_size * 2, False)
        pending: dict[int, str] = {}
        last_tag = 0

        def on_message(message: amqp.Message) -> None:
            nonlocal last_tag
            last_tag = message.delivery_info["delivery_tag"]
            item_id = queue_item_id_of(message.body)
            if item_id is not None:
                pending[item_id] = _dropped_from(message)

        channel.basic_consume(queues.DISCARDED_QUEUE, callback=on_message)
        flushed_at = time.monotonic()
        while not self.stop_event.is_set():
            try:
                connection.drain_events(timeout=self.flush_seconds)
            except TimeoutError:
                pass
            if last_tag and (len(pending) >= self.batch_size or time.monotonic() - flushed_at >= self.flush_seconds):
                self._flush(channel, pending, last_tag)
                pending.clear()
                last_tag = 0
                flushed_at = time.monotonic()
        if last_tag:
            self._flush(channel, pending, last_tag)

    def _flush(self, channel: amqp.Channel, pending: dict[int, str], last_tag: int) -> None:
        close_old_connections()
        marked = retry_database(lambda: mark_discarded(pending), f"mark {len(pending)} dropped item(s) discarded", {})
        # Ack only after the rows are updated: a crash in between re-delivers the
        # batch, and marking twice changes nothing.
        channel.basic_ack(last_tag, multiple=True)
        self.marked += marked
        if marked:
            logger.info("items discarded", extra={"count": marked})

    def drain_once(self) -> int:
        """Account for everything in the queue now, then return (for tests and one-off runs)."""
        connection = open_connection()
        try:
            channel = connection.channel()
            declare_base(channel)
            total = 0
            while True:
                pending: dict[int, str] = {}
                last_tag = 0
                while len(pending) < self.batch_size:
                    message = channel.basic_get(queues.DISCARDED_QUEUE, no_ack=False)
                    if message is None:
                        break
                    last_tag = message.delivery_info["delivery_tag"]
                    item_id = queue_item_id_of(message.body)
                    if item_id is not None:
                        pending[item_id] = _dropped_from(message)
                if not last_tag:
                    return total
                total += mark_discarded(pending)
                channel.basic_ack(last_tag, multiple=True)
        finally:
            close_quietly(connection)
