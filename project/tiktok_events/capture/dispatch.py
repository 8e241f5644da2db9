"""The one door from the capture to the queue system.

``write_and_dispatch`` stores a batch and creates its QueueItems in the *same
transaction*, then hands the committed items to a publishing thread and
returns. So a crash can never leave an event stored without its QueueItems,
and anything stored but not confirmed by the broker stays ``pending`` with no
``dispatched_at`` — exactly what ``manage.py redispatch_pending`` publishes
again.

The publishing thread (``queue_system.pipeline.DispatchPipeline``) publishes
the batches in order and reads their confirms as they come (a third thread
marks them dispatched) while the next batches are being stored: under a flood
the writer costs the slower of PostgreSQL and RabbitMQ per batch, not their
sum. Its results (``Settled``, stamped when the confirms arrived) come back
with the next ``write_and_dispatch`` or from ``finish``.

(``EventDispatcher.dispatch_many`` called inside a transaction would defer the
publishing to the commit too, but it then reloads the items without their
services, one query per item; creating and publishing separately keeps a
batch at a handful of queries.)
"""

from __future__ import annotations

import threading
import time

from django.db import transaction

from project.tiktok_events.capture.batches import Settled, WriteBatch, WriteResult
from project.tiktok_events.capture.store import DUPLICATE_ERRORS, write_batch

_local = threading.local()


class PublishStage:
    """The capture's side of ``queue_system.pipeline.DispatchPipeline``: its outcomes as ``Settled``."""

    def __init__(self) -> None:
        from project.queue_system.pipeline import DispatchPipeline

        self.pipeline = DispatchPipeline()  # one publishing connection
        self.dispatcher = self.pipeline.dispatcher

    def submit(self, number: int, items: list) -> None:
        self.pipeline.submit(number, items)

    def take_settled(self) -> list[Settled]:
        return [self._settled(outcome) for outcome in self.pipeline.take_settled()]

    def finish(self, timeout: float | None = None) -> list[Settled]:
        """What was settled since the last take, once every submitted batch is (or ``timeout`` ran out)."""
        return [self._settled(outcome) for outcome in self.pipeline.finish(timeout)]

    def close(self) -> None:
        self.pipeline.close()

    @staticmethod
    def _settled(outcome) -> Settled:
        return Settled(outcome.number, outcome.unconfirmed, outcome.error, outcome.confirmed_at, outcome.publish_ms)


def _stage() -> PublishStage:
    # One stage (one publishing connection) per writer thread or process.
    stage = getattr(_local, "stage", None)
    if stage is None:
        stage = _local.stage = PublishStage()
    return stage


def _dispatcher():
    return _stage().dispatcher


def write_and_dispatch(batch: WriteBatch) -> WriteResult:
    """Store the batch with its QueueItems (one transaction), then queue the items for publishing."""
    stage = _stage()
    started = time.perf_counter()
    try:
        ids, events, items = _store(batch, stage)
    except DUPLICATE_ERRORS:
        # A message of the batch is already stored (see write_batch): again, row by row.
        ids, events, items = _store(batch, stage, skip_duplicates=True)
    result = WriteResult(
        ids=ids,
        dispatched_events=len(events),
        items_created=len(items),
        store_ms=(time.perf_counter() - started) * 1000,
    )
    if items:
        stage.submit(batch.number, items)
    else:
        result.settled.append(Settled(batch.number, 0, "", time.time()))
    result.settled += stage.take_settled()
    return result


def _store(batch: WriteBatch, stage: PublishStage, *, skip_duplicates: bool = False) -> tuple[list, list, list]:
    with transaction.atomic():
        ids, events = write_batch(batch, skip_duplicates=skip_duplicates)
        items = stage.dispatcher.create_items(events) if events else []
    return ids, events, items


def finish(timeout: float | None = None) -> list[Settled]:
    """Every batch written so far, settled (or what settled within ``timeout``)."""
    return _stage().finish(timeout)


def close() -> None:
    stage = getattr(_local, "stage", None)
    if stage is not None:
        stage.close()
        _local.stage = None
