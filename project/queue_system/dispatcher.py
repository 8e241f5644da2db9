"""EventDispatcher: one QueueItem and one broker message per (event, subscribed service).

``dispatch_many(live_events)`` (and ``dispatch(live_event)``) finds the active
services with an enabled config for each event's type, bulk-creates the
QueueItems (priority and discardable copied from the config) and publishes:

- non-discardable → a ``tasks.process_event(item_id)`` task in ``svc.<slug>``
  at the config's priority;
- discardable → a message in ``svc.<slug>.discardable.<T>``, then the arming
  protocol of ``project.queue_system.drain`` (a ``tasks.drain`` ticket when armed).

Publisher confirms are pipelined: the whole batch is written, then confirmed
in one wait (three waits when discardable events need arming). An item gets
``dispatched_at`` only once the broker confirmed it. When RabbitMQ is down the
items stay ``pending`` with no ``dispatched_at``; ``redispatch_pending`` (the
command, run at capture and worker start, and by the dispatcher itself once the
broker answers again) publishes them — nothing is lost.

Synchronous and thread-safe (one publishing connection per dispatcher, behind a
lock): the capture calls it from a worker thread of its asyncio loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection as db_connection
from django.db import transaction
from django.utils import timezone

from project.queue_system import queues, topology
from project.queue_system.broker import CONNECTION_ERRORS, BrokerError, close_quietly, open_connection
from project.queue_system.drain import arm_many
from project.queue_system.models import QueueItem, ServiceEventConfig
from project.queue_system.publisher import ConfirmingPublisher
from project.queue_system.task_messages import discardable_message, process_event_message

logger = logging.getLogger("queue.dispatcher")

REDISPATCH_BATCH = 500


@dataclass
class DispatchResult:
    """What one dispatch call did. ``pending`` items wait in PostgreSQL for ``redispatch_pending``."""

    events: int = 0
    created: int = 0
    confirmed: int = 0
    pending: int = 0
    deferred: bool = False  # called inside a transaction: published when it commits
    error: str = ""

    def __add__(self, other: DispatchResult) -> DispatchResult:
        return DispatchResult(
            self.events + other.events,
            self.created + other.created,
            self.confirmed + other.confirmed,
            self.pending + other.pending,
            self.deferred or other.deferred,
            self.error or other.error,
        )


class EventDispatcher:
    def __init__(self, broker_url: str | None = None) -> None:
        self._url = broker_url
        self._lock = threading.Lock()
        self._connection = None
        self._publisher: ConfirmingPublisher | None = None
        self._declared: set[tuple] = set()
        self._policies: set[tuple[str, int]] = set()
        self._broker_failed_at: float | None = None

    # -- public API -------------------------------------------------------

    def dispatch(self, live_event) -> DispatchResult:
        return self.dispatch_many([live_event])

    def dispatch_many(self, live_events: Iterable) -> DispatchResult:
        events = [e for e in live_events if e is not None]
        result = DispatchResult(events=len(events))
        if not events:
            return result
        items = self._create_items(events)
        result.created = len(items)
        if not items:
            return result
        if db_connection.in_atomic_block:
            # The worker must find the rows: publish only once they are committed.
            ids = [item.pk for item in items]
            transaction.on_commit(lambda: self.publish_items(QueueItem.objects.filter(pk__in=ids)))
            result.pending, result.deferred = len(items), True
            return result
        return result + self.publish_items(items, _counted=True)

    def publish_items(self, items: Iterable[QueueItem], *, _counted: bool = False) -> DispatchResult:
        """Publish existing QueueItems (with their ``service`` loaded) and mark the confirmed ones dispatched."""
        items = list(items)
        result = DispatchResult()
        if not items:
            return result
        confirmed: list[int] = []
        with self._lock:
            for attempt in (1, 2):
                try:
                    confirmed = self._publish_locked(items)
                    break
                except (BrokerError, topology.TopologyError, *CONNECTION_ERRORS) as exc:
                    self._reset()
                    # One retry on a fresh connection: a connection that died
                    # since the last call (broker restart) is the common case.
                    if attempt == 2 or isinstance(exc, topology.TopologyError):
                        result.error = f"{type(exc).__name__}: {exc}"
                        self._broker_failed_at = self._broker_failed_at or time.monotonic()
                        logger.warning(
                            "broker unavailable; items stay pending for redispatch_pending",
                            extra={"items": len(items), "error": result.error},
                        )
        if confirmed:
            now = timezone.now()
            QueueItem.objects.filter(pk__in=confirmed, dispatched_at__isnull=True).update(
                dispatched_at=now, updated_at=now
            )
        result.confirmed = len(confirmed)
        result.pending = len(items) - len(confirmed)
        if confirmed and self._broker_failed_at is not None and not result.pending:
            # The broker is back: publish what was left pending while it was away.
            self._broker_failed_at = None
            redispatch_pending(older_than=0, dispatcher=self)
        return result

    def close(self) -> None:
        with self._lock:
            self._reset()

    # -- internals --------------------------------------------------------

    def _create_items(self, events: list) -> list[QueueItem]:
        types = {e.event_type for e in events}
        routes: dict[str, list[ServiceEventConfig]] = defaultdict(list)
        configs = ServiceEventConfig.objects.filter(
            enabled=True, service__is_active=True, event_type__in=types
        ).select_related("service")
        for config in configs:
            routes[config.event_type].append(config)
        if not routes:
            return []
        existing = set(
            QueueItem.objects.filter(live_event_id__in=[e.pk for e in events]).values_list(
                "live_event_id", "service_id"
            )
        )
        items = [
            QueueItem(
                live_event=event,
                service=config.service,
                event_type=event.event_type,
                priority=config.priority,
                discardable=config.discardable,
            )
            for event in events
            for config in routes.get(event.event_type, ())
            if (event.pk, config.service_id) not in existing
        ]
        return QueueItem.objects.bulk_create(items)

    def _reset(self) -> None:
        if self._publisher is not None:
            self._publisher.close()
        close_quietly(self._connection)
        self._connection = None
        self._publisher = None
        self._declared.clear()

    def _ensure_connection(self) -> ConfirmingPublisher:
        if self._publisher is None or not self._publisher.is_open:
            self._reset()
            self._connection = open_connection(self._url)
            self._publisher = ConfirmingPublisher(self._connection)
        return self._publisher

    def _ensure_topology(self, items: list[QueueItem]) -> None:
        for item in items:
            service = item.service
            main_key = ("main", service.slug)
            if main_key not in self._declared:
                channel = self._connection.channel()
                try:
                    topology.declare_base(channel)
                    topology.declare_main(channel, service.slug)
                finally:
                    if channel.is_open:
                        channel.close()
                self._declared.add(main_key)
            if item.discardable:
                key = ("discardable", service.slug, item.event_type, service.worker_concurrency)
                if key not in self._declared:
                    topology.declare_discardable(
                        self._connection, service.slug, item.event_type, service.worker_concurrency
                    )
                    self._declared.add(key)
                self._ensure_policy(service)

    def _ensure_policy(self, service) -> None:
        key = (service.slug, service.max_queue_size)
        if key in self._policies:
            return
        try:
            topology.apply_policies(
                topology.ServiceTopology(service.slug, service.worker_concurrency, service.max_queue_size)
            )
            self._policies.add(key)
        except BrokerError as exc:
            # Publishing goes on (nothing is lost), but the queue is unbounded until
            # the policy is applied: say so loudly, and try again next batch.
            logger.error("max-length policy not applied", extra={"service": service.slug, "error": str(exc)})

    def _publish_locked(self, items: list[QueueItem]) -> list[int]:
        publisher = self._ensure_connection()
        self._ensure_topology(items)
        # Phase 1: every item, then one wait for all the confirms.
        arming: dict[tuple[str, str], list[QueueItem]] = defaultdict(list)
        for item in items:
            slug = item.service.slug
            if item.discardable:
                name = queues.discardable_queue_name(slug, item.event_type)
                message = discardable_message(item.pk, item.event_type, item.priority)
            else:
                name = queues.main_queue_name(slug)
                message = process_event_message(item.pk, item.priority)
            publisher.publish(message, queues.EXCHANGE, name, key=item.pk)
        delivered = publisher.wait()
        confirmed = [item_id for item_id, ok in delivered.items() if ok]
        for item in items:
            if item.discardable and delivered.get(item.pk):
                arming[(item.service.slug, item.event_type)].append(item)
        # Phases 2 and 3: arm each type that got events (only after they are
        # confirmed in their queue — see drain.py), one ticket per token taken.
        if arming:
            try:
                arm_many(
                    publisher,
                    [
                        (slug, event_type, min(typed[0].service.worker_concurrency, len(typed)), typed[0].priority)
                        for (slug, event_type), typed in arming.items()
                    ],
                )
            except (BrokerError, *CONNECTION_ERRORS) as exc:
                # The events are safely in their queues; a token taken without
                # its ticket is repaired by the worker's watchdog.
                logger.warning("arming failed after the events were confirmed", extra={"error": str(exc)})
                self._reset()
        return confirmed


def redispatch_pending(
    slugs: list[str] | None = None, *, older_than: float = 0.0, dispatcher: EventDispatcher | None = None
) -> DispatchResult:
    """Publish every pending item that was never confirmed (broker down at dispatch time).

    ``older_than`` (seconds) leaves alone items a running capture is publishing
    right now; a duplicate would be harmless anyway (a finished item is never
    run twice).
    """
    own = dispatcher is None
    dispatcher = dispatcher or EventDispatcher()
    total = DispatchResult()
    last_id = 0
    try:
        while True:
            query = QueueItem.objects.filter(
                status=QueueItem.Status.PENDING, dispatched_at__isnull=True, pk__gt=last_id
            ).select_related("service")
            if older_than:
                query = query.filter(created_at__lt=timezone.now() - timedelta(seconds=older_than))
            if slugs:
                query = query.filter(service__slug__in=slugs)
            batch = list(query.order_by("pk")[:REDISPATCH_BATCH])
            if not batch:
                break
            last_id = batch[-1].pk
            result = dispatcher.publish_items(batch)
            total = total + result
            if result.error:
                break
    finally:
        if own:
            dispatcher.close()
    return total
