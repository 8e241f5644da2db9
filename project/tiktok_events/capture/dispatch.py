"""The one door from the capture to the queue system.

``write_and_dispatch`` stores a batch and creates its QueueItems in the *same
transaction*, then hands the committed items to a publishing thread and
returns. So a crash can never leave an event stored without its QueueItems,
and anything stored but not confirmed by the broker stays ``pending`` with no
``dispatched_at`` — exactly what ``manage.py redispatch_pending`` publishes
again.

The publishing thread (``PublishStage``) publishes the batches in order and
waits for their confirms (a third thread marks them dispatched) while the next
batch is being stored: under a flood the writer costs the slower of PostgreSQL and RabbitMQ
per batch, not their sum. Its results (``Settled``, stamped when the confirms
arrived) come back with the next ``write_and_dispatch`` or from ``finish``.

(``EventDispatcher.dispatch_many`` called inside a transaction would defer the
publishing to the commit too, but it then reloads the items without their
services, one query per item; creating and publishing separately keeps a
batch at a handful of queries.)
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from django.db import connection, transaction

from project.tiktok_events.capture.batches import Settled, WriteBatch, WriteResult
from project.tiktok_events.capture.store import DUPLICATE_ERRORS, write_batch

log = logging.getLogger("capture.dispatch")

# Batches stored and waiting for the publishing thread; a full queue makes the
# next store wait (the broker sets the pace, memory stays bounded).
MAX_WAITING_BATCHES = 2

_local = threading.local()


class _Worker:
    """A thread running ``handle(job)`` for each job, in order, with its own PostgreSQL connection."""

    def __init__(self, name: str, handle, maxsize: int = 0) -> None:
        self._handle = handle
        self._queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, job) -> None:
        self._queue.put(job)

    def join(self) -> None:
        """Until every job put so far is done."""
        self._queue.join()

    def stop(self) -> None:
        self._queue.join()
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            while True:
                job = self._queue.get()
                try:
                    if job is None:
                        return
                    self._handle(job)
                except Exception:
                    log.exception("capture %s failed", self._thread.name)
                finally:
                    self._queue.task_done()
        finally:
            connection.close()


class PublishStage:
    """Publishes stored batches in the order they were stored (one thread), and marks the confirmed
    items ``dispatched_at`` on another, so the broker's next batch does not wait for that UPDATE."""

    def __init__(self) -> None:
        from project.queue_system.dispatcher import EventDispatcher

        self.dispatcher = EventDispatcher()  # one publishing connection
        self._settled: list[Settled] = []
        self._lock = threading.Lock()
        self._marker = _Worker("capture-mark", self._mark)
        self._publisher = _Worker("capture-publish", self._publish, maxsize=MAX_WAITING_BATCHES)

    def submit(self, number: int, items: list) -> None:
        self._publisher.put((number, items))

    def take_settled(self) -> list[Settled]:
        with self._lock:
            settled, self._settled = self._settled, []
        return settled

    def finish(self) -> list[Settled]:
        """Wait until every submitted batch is settled and marked; returns what was settled since the last take."""
        self._publisher.join()
        self._marker.join()
        return self.take_settled()

    def close(self) -> None:
        self._publisher.stop()
        self._marker.stop()
        self.dispatcher.close()

    def _publish(self, job: tuple[int, list]) -> None:
        number, items = job
        started = time.perf_counter()
        try:
            outcome = self.dispatcher.publish_items(items, mark=False)
            publish_ms = (time.perf_counter() - started) * 1000
            settled = Settled(number, outcome.pending, outcome.error, time.time(), publish_ms=publish_ms)
            if outcome.confirmed_ids:
                self._marker.put(outcome.confirmed_ids)
        except Exception as exc:
            # The items are pending (or in the broker unmarked): redispatch_pending repairs either way.
            log.exception("publishing a batch failed", extra={"items": len(items)})
            settled = Settled(number, len(items), f"{type(exc).__name__}: {exc}", time.time())
        with self._lock:
            self._settled.append(settled)

    @staticmethod
    def _mark(ids: list[int]) -> None:
        from project.queue_system.dispatcher import mark_dispatched

        # A mark lost here (PostgreSQL gone) leaves the items undispatched: redispatch_pending
        # publishes them once more, harmless (a finished item never runs twice).
        mark_dispatched(ids)


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


def finish() -> list[Settled]:
    """Every batch written so far, settled."""
    return _stage().finish()


def close() -> None:
    stage = getattr(_local, "stage", None)
    if stage is not None:
        stage.close()
        _local.stage = None
