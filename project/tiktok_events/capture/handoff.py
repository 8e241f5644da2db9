# Design: docs/architecture.md#guarantees
"""The capture's handoff to the queue system: a batch stored with its QueueItems, then published.

``write_and_dispatch`` stores a batch and creates its QueueItems in the *same
transaction*, then hands the committed items to a publishing thread and
returns. So a crash can never leave an event stored without its QueueItems,
and anything stored but not confirmed by the broker stays ``pending`` with no
``dispatched_at`` — exactly what ``manage.py redispatch_pending`` publishes
again.

The publishing thread (``queue_system.streaming.DispatchPipeline``) publishes
the batches in order and reads their confirms as they come (a third thread
marks them dispatched) while the next batches are being stored: under a flood
the writer costs the slower of PostgreSQL and RabbitMQ per batch, not their
sum. Its results (``BatchOutcome``, stamped when the confirms arrived) come back
with the next ``write_and_dispatch`` or from ``finish``.

(``EventDispatcher.dispatch_many`` called inside a transaction would defer the
publishing to the commit too, but it then reloads the items without their
services, one query per item; creating and publishing separately keeps a
batch at a handful of queries.)
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import DatabaseError, transaction

from project.queue_system.dispatcher import EventDispatcher
from project.queue_system.models import ServiceEventConfig
from project.queue_system.streaming import BatchOutcome, DispatchPipeline
from project.tiktok_events.capture.batches import WriteBatch, WriteResult
from project.tiktok_events.capture.store import DUPLICATE_ERRORS, write_batch

log = logging.getLogger("capture.writer")
_local = threading.local()

PRIORITY_TYPES_SECONDS = 5.0  # how old the priority lane's list of types may be
_priority_types: tuple[float, frozenset[str]] | None = None


def priority_types(*, fresh: bool = False) -> frozenset[str]:
    """The event types some active service keeps (an enabled, non-discardable config): what the
    capture's priority lane stores and publishes ahead of the rest. Read again every few seconds,
    so a config changed in the admin applies to the live under way; ``fresh``: read now (a
    capture's start)."""
    global _priority_types
    now = time.monotonic()
    if fresh or _priority_types is None or now - _priority_types[0] > PRIORITY_TYPES_SECONDS:
        kept = ServiceEventConfig.objects.filter(enabled=True, discardable=False, service__is_active=True)
        _priority_types = (now, frozenset(kept.values_list("event_type", flat=True).distinct()))
    return _priority_types[1]


def _pipeline() -> DispatchPipeline:
    # One pipeline (one publishing connection) per writer thread or process.
    pipeline = getattr(_local, "pipeline", None)
    if pipeline is None:
        pipeline = _local.pipeline = DispatchPipeline()
    return pipeline


def dispatcher() -> EventDispatcher:
    """The dispatcher whose connection this writer publishes on (to warm it up, to redispatch)."""
    return _pipeline().dispatcher


def write_and_dispatch(batch: WriteBatch) -> WriteResult:
    """Store the batch with its QueueItems (one transaction), then queue the items for publishing."""
    pipeline = _pipeline()
    started = time.perf_counter()
    try:
        ids, events, items = _store(batch, pipeline)
    except DUPLICATE_ERRORS:
        # A message of the batch is already stored (see write_batch): again, row by row.
        ids, events, items = _store(batch, pipeline, skip_duplicates=True)
    result = WriteResult(
        ids=ids,
        dispatched_events=len(events),
        items_created=len(items),
        store_ms=(time.perf_counter() - started) * 1000,
    )
    # A batch without items is settled at once (the pipeline reports it among the others).
    pipeline.submit(batch.number, items)
    result.settled += pipeline.take_settled()
    try:
        result.priority_types = priority_types()
    except DatabaseError as exc:  # the batch is stored and handed over: it must not be retried
        log.warning("could not read which event types the priority lane takes", extra={"error": str(exc)[:200]})
    return result


def _store(batch: WriteBatch, pipeline: DispatchPipeline, *, skip_duplicates: bool = False) -> tuple[list, list, list]:
    with transaction.atomic():
        ids, events = write_batch(batch, skip_duplicates=skip_duplicates)
        items = pipeline.dispatcher.create_items(events) if events else []
    return ids, events, items


def finish(timeout: float | None = None) -> list[BatchOutcome]:
    """Every batch written so far, settled (or what settled within ``timeout``)."""
    return _pipeline().finish(timeout)


def close() -> None:
    pipeline = getattr(_local, "pipeline", None)
    if pipeline is not None:
        pipeline.close()
        _local.pipeline = None
