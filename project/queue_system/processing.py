# Design: docs/architecture.md#guarantees
"""Running one QueueItem through its service: claim, call ``process_event``, record the outcome.

Shared by the ``process_event`` task (non-discardable items) and the drain
ticket (discardable items), so both behave the same: status
``processing`` → ``completed`` | ``failed`` with timings and the error text, a
``TransientError`` retried a bounded number of times, a handler held to the
service's time budget (budget.py), and a redelivered or duplicate message never
runs a finished item again. Only the service's own outcome fails an item: a
database outage around it raises ``InfrastructureFault`` (infrastructure.py),
and the caller puts the message back on its queue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from project.queue_system import budget, runtime
from project.queue_system.base_service import TransientError
from project.queue_system.infrastructure import DB_ERRORS, InfrastructureFault, retry_database
from project.queue_system.models import QueueItem, Service
from project.queue_system.sql import ASYNC_COMMIT, array_literal
from project.tiktok_events.models import LiveEvent

logger = logging.getLogger("queue.events")

# Attempts (the first one included) before a transient error fails the item for good.
MAX_ATTEMPTS = 5
DEFAULT_RETRY_AFTER = 2.0

Status = QueueItem.Status


@dataclass
class Outcome:
    status: str  # a QueueItem status, or "skipped" / "retry"
    item: QueueItem | None = None
    retry_after: float | None = None
    detail: str = ""


# The claim's commit does not wait for the WAL flush: losing it in a database
# crash only puts the item back to its previous state while its message is
# still unacked (acks_late), so the redelivery claims it again; the outcome
# (_finish) is a normal, durable commit, which also flushes the claim before it.
# One round trip: the SET LOCAL and the claim run as one implicit transaction,
# and the claim returns the item with its event and service (what a
# select_related get would fetch in a second round trip).
CLAIMED_MODELS = (("c", QueueItem), ("e", LiveEvent), ("s", Service))
_claim: dict[str, object] = {}


def _claim_sql() -> str:
    sql = _claim.get("sql")
    if sql is None:
        qn = connection.ops.quote_name
        columns = ", ".join(
            f"{alias}.{qn(f.column)}" for alias, model in CLAIMED_MODELS for f in model._meta.concrete_fields
        )
        # Identifiers from the models' metadata, quoted; every value is a parameter.
        sql = _claim["sql"] = (
            f"WITH c AS (UPDATE {qn(QueueItem._meta.db_table)} SET status = %(processing)s, started_at = %(now)s, "  # noqa: S608
            "finished_at = NULL, attempts = attempts + 1, updated_at = %(now)s "
            "WHERE id = %(id)s AND status = ANY(%(allowed)s::text[]) RETURNING *) "
            f"SELECT {columns} FROM c JOIN {qn(LiveEvent._meta.db_table)} e ON e.id = c.live_event_id "
            f"JOIN {qn(Service._meta.db_table)} s ON s.id = c.service_id"
        )
    return sql


def _claimed_instances(row: tuple) -> QueueItem:
    """The QueueItem (with live_event and service) of one claim row, converted as the ORM would."""
    instances = {}
    offset = 0
    for alias, model in CLAIMED_MODELS:
        fields = model._meta.concrete_fields
        values = list(row[offset : offset + len(fields)])
        offset += len(fields)
        for n, field in enumerate(fields):
            for converter in field.get_db_converters(connection):
                values[n] = converter(values[n], None, connection)
        instances[alias] = model.from_db(connection.alias, [f.attname for f in fields], values)
    item = instances["c"]
    item.live_event = instances["e"]
    item.service = instances["s"]
    return item


def claim(queue_item_id: int, *, redelivered: bool) -> QueueItem | None:
    """Mark the item processing and return it, or None when it must not run.

    A pending item is claimed. An item already ``processing`` is taken over only
    by a *redelivered* message: the broker redelivers when the worker that held
    it died, whereas a fresh duplicate (a re-dispatch whose first confirm was
    lost) must not run it a second time beside the first.
    """
    allowed = array_literal([Status.PENDING, Status.PROCESSING] if redelivered else [Status.PENDING])
    params = {"processing": Status.PROCESSING, "now": timezone.now(), "id": queue_item_id, "allowed": allowed}
    with connection.cursor() as cursor:
        if connection.in_atomic_block:  # a caller's transaction: its commit is not ours to relax
            cursor.execute(_claim_sql(), params)
        else:
            cursor.execute(ASYNC_COMMIT + _claim_sql(), params)
            cursor.nextset()
        row = cursor.fetchone()
    return None if row is None else _claimed_instances(row)


def run_item(queue_item_id: int, *, redelivered: bool = False, queue: str = "") -> Outcome:
    """Claim, run and record one item; raises InfrastructureFault when the database failed around it."""
    try:
        item = claim(queue_item_id, redelivered=redelivered)
        if item is None:
            # Missing (deleted with its event) or already handled: a duplicate
            # delivery is acked as a no-op.
            current = QueueItem.objects.filter(pk=queue_item_id).values_list("status", flat=True).first()
    except DB_ERRORS as exc:
        raise InfrastructureFault(f"could not claim item {queue_item_id}: {exc}") from exc
    if item is None:
        detail = f"item {queue_item_id} is {current or 'gone'}; delivery ignored"
        logger.info(detail, extra={"queue_item": queue_item_id, "queue": queue})
        return Outcome("skipped", detail=detail)

    extra = {"service": item.service.slug, "event_id": item.live_event_id, "queue_item": item.pk, "queue": queue}
    label = f"[{item.service.name}] {item.event_type} (P:{item.priority})"
    service = None
    try:
        service = runtime.service_instance(item.service)
        result = budget.call(lambda: service.process_event(item.live_event, item), item.service.time_budget_seconds)
    except budget.TimedOut as exc:
        return _timed_out(service, item, exc, label, extra)
    except TransientError as exc:
        if item.attempts >= MAX_ATTEMPTS:
            return _finish(item, Status.FAILED, f"gave up after {item.attempts} attempts: {exc}", label, extra)
        retry_after = exc.retry_after if exc.retry_after is not None else DEFAULT_RETRY_AFTER * item.attempts
        error = f"attempt {item.attempts} failed, retrying: {exc}"
        retry_database(
            lambda: QueueItem.objects.filter(pk=item.pk).update(
                status=Status.PENDING, error=error, updated_at=timezone.now()
            ),
            f"record the retry of item {item.pk}",
            extra,
        )
        logger.warning(f"🔁 {label} will be retried in {retry_after:.1f}s: {exc}", extra=extra)
        return Outcome("retry", item, retry_after=retry_after, detail=str(exc))
    except DB_ERRORS as exc:
        # The handler's own queries met the outage: not the event's failure.
        raise InfrastructureFault(f"{label}: the database failed under the handler: {exc}") from exc
    except Exception as exc:
        logger.exception(f"❌ {label} raised", extra=extra)
        return _finish(item, Status.FAILED, f"{type(exc).__name__}: {exc}", label, extra)

    if result is True:
        return _finish(item, Status.COMPLETED, "", label, extra)
    reason = "process_event returned False" if result is False else f"process_event returned {result!r}, not True"
    return _finish(item, Status.FAILED, reason, label, extra)


def _timed_out(service, item: QueueItem, exc: budget.TimedOut, label: str, extra: dict) -> Outcome:
    """Fail the overdue item, let the service clean up, then free the slot (see budget.py)."""
    outcome = _finish(item, Status.FAILED, f"timed out after {exc.budget:g} s", label, extra)
    try:
        service.on_timeout(item.live_event, item)
    except Exception:
        logger.exception(f"{label}: on_timeout raised", extra=extra)
    sync = item.service.mode == item.service.Mode.SYNC
    budget.settle(exc, sync=sync, pool_size=item.service.worker_concurrency, label=label)
    return outcome


# The outcome in one plain statement, like the claim: the ORM's update() built and compiled
# a query for every item. A no-op ASYNC item cost the worker 1.94-2.27 ms of CPU with it and
# 1.29-2.00 ms with this, in four alternating pairs of 3,000-gift backlogs.
FINISH_SQL = (
    f"UPDATE {QueueItem._meta.db_table} SET status = %(status)s, error = %(error)s, finished_at = %(now)s, "  # noqa: S608
    "updated_at = %(now)s WHERE id = %(id)s"
)


def _finish(item: QueueItem, status: str, error: str, label: str, extra: dict) -> Outcome:
    now = timezone.now()
    params = {"status": status, "error": error[:5000], "now": now, "id": item.pk}

    def write() -> None:
        with connection.cursor() as cursor:
            cursor.execute(FINISH_SQL, params)

    retry_database(write, f"record the outcome of item {item.pk}", extra)
    item.status, item.error, item.finished_at = status, error, now
    if status == Status.COMPLETED:
        logger.info(f"✅ {label} completed", extra=extra)
    else:
        logger.warning(f"❌ {label} failed: {error}", extra=extra)
    return Outcome(status, item, detail=error)
