# Design: docs/architecture.md#queue-topology
"""EventDispatcher: one QueueItem and one broker message per (event, subscribed service).

``dispatch_many(live_events)`` (and ``dispatch(live_event)``) creates, in one
statement, a QueueItem per (event, active service with an enabled config for
its type), priority and discardable copied from the config, and publishes:

- non-discardable → a ``tasks.process_event(item_id)`` task in ``svc.<slug>``
  at the config's priority;
- discardable → a message in ``svc.<slug>.discardable.<T>``, then the arming
  protocol of ``project.queue_system.drain`` (a ``tasks.drain`` ticket when armed).

Design: docs/architecture.md. The streaming dispatcher (``streaming.py``) publishes through
this class's connection methods (``connect``, ``declare_for``, ``reset``, the broker-failure
state), with the same message builders (``publish_item``) and arming steps (drain.py).

Publisher confirms are pipelined: the whole batch is written (in one socket
write, see publisher.py), then confirmed in one wait (two more when
discardable events need arming: the tokens, transient so the broker confirms
them without a disk write, then the tickets). An item gets ``dispatched_at`` only once the
broker confirmed it. When RabbitMQ is down the
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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection as db_connection
from django.db import transaction
from django.utils import timezone

from project.queue_system import queues, restarts, topology
from project.queue_system.broker import CONNECTION_ERRORS, BrokerError, abandon, close_quietly, open_connection
from project.queue_system.drain import ItemKey, arm_many, arming_requests
from project.queue_system.models import QueueItem, Service, ServiceEventConfig
from project.queue_system.publisher import ConfirmingPublisher
from project.queue_system.sql import ASYNC_COMMIT, array_literal
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

    # -- dispatching -------------------------------------------------------

    def dispatch(self, live_event) -> DispatchResult:
        return self.dispatch_many([live_event])

    def dispatch_many(self, live_events: Iterable) -> DispatchResult:
        events = [e for e in live_events if e is not None]
        result = DispatchResult(events=len(events))
        if not events:
            return result
        items = self.create_items(events)
        result.created = len(items)
        if not items:
            return result
        if db_connection.in_atomic_block:
            # The worker must find the rows: publish only once they are committed.
            ids = [item.pk for item in items]
            transaction.on_commit(
                lambda: self.publish_items(QueueItem.objects.filter(pk__in=ids).select_related("service"))
            )
            result.pending, result.deferred = len(items), True
            return result
        return result + self.publish_items(items)

    def publish_items(self, items: Iterable[QueueItem | NewItem]) -> DispatchResult:
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
                    self.reset(failed=True)
                    # One retry on a fresh connection: a connection that died
                    # since the last call (broker restart) is the common case.
                    if attempt == 2 or isinstance(exc, topology.TopologyError):
                        result.error = f"{type(exc).__name__}: {exc}"
                        self.note_broker_failure()
                        logger.warning(
                            "broker unavailable; items stay pending for redispatch_pending",
                            extra={"items": len(items), "error": result.error},
                        )
        if confirmed:
            mark_dispatched(confirmed)
        result.confirmed = len(confirmed)
        result.pending = len(items) - len(confirmed)
        if confirmed and not result.pending and self.broker_back():
            # Publish what was left pending while it was away.
            redispatch_pending(older_than=0, dispatcher=self)
        return result

    def create_items(self, events: list) -> list[NewItem]:
        """Route and insert in one round trip: an item per (event, active service with an enabled config).

        Priority and discardable are copied from the config; a pair that already
        has an item is skipped (``ON CONFLICT DO NOTHING`` on the unique
        (event, service) constraint). Returns the new items in event order,
        then service name, as ``NewItem`` (what publishing needs: no model
        instance per row, which cost more than the insert under a flood).
        Public for the capture, which creates them inside its own transaction
        (with the events) and publishes them once it has committed.
        """
        by_id = {e.pk: e for e in events}
        params = {
            "event_ids": array_literal(by_id),
            "event_types": array_literal(e.event_type for e in by_id.values()),
            "for_host": array_literal("t" if for_host(e) else "f" for e in by_id.values()),
            "types": array_literal({e.event_type for e in by_id.values()}),
            "now": timezone.now(),
            "status": QueueItem.Status.PENDING,
        }
        sql, service_fields = _create_items_sql()
        for f in _create_items["defaulted"]:  # per call: a default may be a callable
            params[f"default_{f.column}"] = f.get_db_prep_save(f.get_default(), db_connection)
        with db_connection.cursor() as cursor:
            cursor.execute(sql, params)
            services = {row[0]: Service.from_db(db_connection.alias, service_fields, row) for row in cursor.fetchall()}
            cursor.nextset()
            rows = sorted(cursor.fetchall())
        items = []
        for pk, event_id, service_id, priority, discardable in rows:
            service = services.get(service_id)
            if service is None:  # (de)activated between the two statements
                service = services[service_id] = Service.objects.get(pk=service_id)
            items.append(NewItem(pk, event_id, service, by_id[event_id].event_type, priority, discardable))
        return items

    def warm_up(self) -> bool:
        """Connect and declare every active service's queues and policies now, not in the first batch.

        Best effort (False when the broker or its management API did not
        answer; the first publish tries again): the capture calls it before it
        connects to TikTok, so its first events do not wait for declarations
        and policy HTTP calls while the live's frames pile up behind them.
        """
        with self._lock:
            try:
                self.connect()
                policies = True
                for service_topology in topology.all_topologies(active_only=True):
                    self._declare_main(service_topology.slug)
                    for event_type in service_topology.discardable_types:
                        self._declare_discardable(service_topology.slug, event_type, service_topology.tickets)
                    policies &= self._ensure_policy(
                        service_topology.slug, service_topology.tickets, service_topology.max_queue_size
                    )
                return policies
            except (BrokerError, topology.TopologyError, *CONNECTION_ERRORS) as exc:
                logger.warning("could not prepare the broker before dispatching", extra={"error": str(exc)})
                self.reset(failed=True)
                return False

    def close(self) -> None:
        with self._lock:
            self.reset()

    # -- the connection, for this class and the streaming dispatcher --------
    # Not locked: publish_items and warm_up hold the lock; a DispatchPipeline owns its
    # dispatcher and calls these from its one publishing thread.

    def reset(self, *, failed: bool = False) -> None:
        """Drop the connection; ``failed``: without the closing handshake (see broker.abandon)."""
        if failed:
            abandon(self._connection)
        else:
            if self._publisher is not None:
                self._publisher.close()
            close_quietly(self._connection)
        self._connection = None
        self._publisher = None
        self._declared.clear()

    def connect(self) -> ConfirmingPublisher:
        """The publisher of this dispatcher's connection, opened again when it was lost."""
        if self._publisher is None or not self._publisher.is_open:
            self.reset(failed=True)
            self._connection = open_connection(self._url)
            # Before the first publish on it: what a broker restart dropped (restarts.py).
            restarts.reconcile(self._connection)
            self._publisher = ConfirmingPublisher(self._connection)
        return self._publisher

    def declare_for(self, items: list[QueueItem | NewItem]) -> None:
        """The queues (and the max-length policy) the items go to, once per connection."""
        for item in items:
            service = item.service
            self._declare_main(service.slug)
            if item.discardable:
                self._declare_discardable(service.slug, item.event_type, service.worker_concurrency)
                self._ensure_policy(service.slug, service.worker_concurrency, service.max_queue_size)

    def note_broker_failure(self) -> None:
        """Items were left pending: the next confirmed publish must run ``redispatch_pending``."""
        self._broker_failed_at = self._broker_failed_at or time.monotonic()

    def broker_back(self) -> bool:
        """True once after a failure: the caller now publishes what was left pending."""
        was_down, self._broker_failed_at = self._broker_failed_at is not None, None
        return was_down

    @property
    def broker_down(self) -> bool:
        return self._broker_failed_at is not None

    def _declare_main(self, slug: str) -> None:
        """The exchanges and ``svc.<slug>``, once per connection."""
        key = ("main", slug)
        if key not in self._declared:
            channel = self._connection.channel()
            try:
                topology.declare_base(channel)
                topology.declare_main(channel, slug)
            finally:
                if channel.is_open:
                    channel.close()
            self._declared.add(key)

    def _declare_discardable(self, slug: str, event_type: str, tickets: int) -> None:
        """A type's discardable and arming queues, once per connection."""
        key = ("discardable", slug, event_type, tickets)
        if key not in self._declared:
            topology.declare_discardable(self._connection, slug, event_type, tickets)
            self._declared.add(key)

    def _ensure_policy(self, slug: str, tickets: int, max_queue_size: int) -> bool:
        """The max-length policy, once per (service, size); False when the management API refused it."""
        key = (slug, max_queue_size)
        if key in self._policies:
            return True
        try:
            topology.apply_policies(topology.ServiceTopology(slug, tickets, max_queue_size))
            self._policies.add(key)
            return True
        except BrokerError as exc:
            # Publishing goes on (nothing is lost), but the queue is unbounded until
            # the policy is applied: say so loudly, and try again next batch.
            logger.error("max-length policy not applied", extra={"service": slug, "error": str(exc)})
            return False

    def _publish_locked(self, items: list[QueueItem | NewItem]) -> list[int]:
        publisher = self.connect()
        self.declare_for(items)
        # Phase 1: every item, then one wait for all the confirms.
        for item in items:
            publish_item(publisher, item, key=ItemKey(0, item.pk))
        delivered = publisher.wait()
        confirmed = [item.pk for item in items if delivered.get(ItemKey(0, item.pk))]
        # Phases 2 and 3: arm each type that got events (only after they are
        # confirmed in their queue — see drain.py), one ticket per token taken.
        requests = arming_requests(items, set(confirmed))
        if requests:
            try:
                arm_many(publisher, requests)
            except (BrokerError, *CONNECTION_ERRORS) as exc:
                # The events are safely in their queues; a token taken without
                # its ticket is repaired by the worker's watchdog.
                logger.warning("arming failed after the events were confirmed", extra={"error": str(exc)})
                self.reset(failed=True)
        return confirmed


def publish_item(publisher: ConfirmingPublisher, item: QueueItem | NewItem, key: ItemKey) -> None:
    """Encode one item's message: a task in ``svc.<slug>`` or a message in its discardable queue."""
    slug = item.service.slug
    if item.discardable:
        name = queues.discardable_queue_name(slug, item.event_type)
        message = discardable_message(item.pk, item.event_type, item.priority)
    else:
        name = queues.main_queue_name(slug)
        message = process_event_message(item.pk, item.priority)
    publisher.publish(message, queues.EXCHANGE, name, key=key)


@dataclass(slots=True)
class NewItem:
    """A QueueItem row ``create_items`` just inserted, with what publishing it needs."""

    pk: int
    live_event_id: int
    service: Service
    event_type: str
    priority: int
    discardable: bool


def for_host(event) -> bool:
    """False only for a gift sent to a guest of a multi-guest LIVE (``event_data["to_user"]``)."""
    to_user = (event.event_data or {}).get("to_user") if event.event_type == "GiftEvent" else None
    return not isinstance(to_user, dict) or bool(to_user.get("is_host", True))


# Routing and insertion in one round trip (see EventDispatcher.create_items): the
# services the events' types may go to, then the insert of the items. A gift for a
# guest (for_host false) goes only to the services whose GiftEvent config has guest_gifts.
# Two statements in one execute: Django's psycopg 3 backend binds parameters on the client
# (server-side binding is off by default), which allows it; cursor.nextset() reads the second.
# Columns and tables come from the models' metadata: every Service column is read (no field
# left to load later, one query per item), every QueueItem column is written (a column this
# statement does not route gets its field's default, as Model.save would give it).
ROUTED_COLUMNS = {
    "created_at": "%(now)s",
    "updated_at": "%(now)s",
    "live_event_id": "i.event_id",
    "service_id": "s.id",
    "event_type": "i.event_type",
    "priority": "c.priority",
    "discardable": "c.discardable",
    "status": "%(status)s",
}
_create_items: dict[str, object] = {}


def _create_items_sql() -> tuple[str, list[str]]:
    """The statement and the Service attnames it returns first, built once per process."""
    if "sql" not in _create_items:
        qn = db_connection.ops.quote_name
        service_fields = Service._meta.concrete_fields
        item_fields = [f for f in QueueItem._meta.concrete_fields if not f.primary_key]
        defaulted = [f for f in item_fields if f.column not in ROUTED_COLUMNS]
        values = [ROUTED_COLUMNS.get(f.column, f"%(default_{f.column})s") for f in item_fields]
        service_table = qn(Service._meta.db_table)
        config_table = qn(ServiceEventConfig._meta.db_table)
        # Identifiers from the models' metadata, quoted; every value is a parameter.
        _create_items["sql"] = f"""
SELECT {", ".join(qn(f.column) for f in service_fields)} FROM {service_table}
WHERE id IN (
    SELECT service_id FROM {config_table} WHERE enabled AND event_type = ANY(%(types)s::text[])
);
WITH incoming AS (
    SELECT e.event_id, e.event_type, e.for_host, e.ord
    FROM unnest(%(event_ids)s::bigint[], %(event_types)s::text[], %(for_host)s::boolean[])
        WITH ORDINALITY AS e(event_id, event_type, for_host, ord)
)
INSERT INTO {qn(QueueItem._meta.db_table)} ({", ".join(qn(f.column) for f in item_fields)})
SELECT {", ".join(values)}
FROM incoming i
JOIN {config_table} c ON c.event_type = i.event_type AND c.enabled AND (i.for_host OR c.guest_gifts)
JOIN {service_table} s ON s.id = c.service_id AND s.is_active
ORDER BY i.ord, s.name, s.id
ON CONFLICT (live_event_id, service_id) DO NOTHING
RETURNING id, live_event_id, service_id, priority, discardable
"""  # noqa: S608
        _create_items["service_fields"] = [f.attname for f in service_fields]
        _create_items["defaulted"] = defaulted
    return _create_items["sql"], _create_items["service_fields"]


# The commit of this one does not wait for the WAL flush (see mark_dispatched).
MARK_DISPATCHED_SQL = f"""
UPDATE {QueueItem._meta.db_table} SET dispatched_at = %(now)s, updated_at = %(now)s
WHERE id = ANY(%(ids)s::bigint[]) AND dispatched_at IS NULL
"""  # noqa: S608 - the table name comes from the model


def mark_dispatched(ids: list[int]) -> None:
    """Set ``dispatched_at`` on confirmed items (never before the confirm; never twice).

    Outside a transaction the commit does not wait for the WAL flush
    (``synchronous_commit`` off for this one statement): a dispatched_at lost
    in a database crash only makes ``redispatch_pending`` publish the item once
    more, which is harmless (a finished item is never run twice), whereas
    waiting for the disk costs a flush per batch. Inside a caller's
    transaction it is a plain UPDATE (the setting would apply to their commit).
    """
    sql = MARK_DISPATCHED_SQL if db_connection.in_atomic_block else ASYNC_COMMIT + MARK_DISPATCHED_SQL
    now = timezone.now()
    with db_connection.cursor() as cursor:
        cursor.execute(sql, {"now": now, "ids": array_literal(ids)})


def redispatch_pending(
    slugs: list[str] | None = None,
    *,
    older_than: float = 0.0,
    created_before: datetime | None = None,
    dispatcher: EventDispatcher | None = None,
) -> DispatchResult:
    """Publish every pending item that was never confirmed (broker down at dispatch time).

    ``older_than`` (seconds), or ``created_before``, leaves alone items a running capture is publishing
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
            if created_before is not None:
                query = query.filter(created_at__lt=created_before)
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
