# Design: docs/architecture.md#drain-tickets-and-tokens
"""DispatchPipeline: batches of QueueItems published as a stream, their confirms read as they come.

Design: docs/architecture.md ("Drain tickets and tokens", the streaming pipeline).

``EventDispatcher.publish_items`` publishes a batch and waits for it, so one
batch costs its insert, the broker's confirm round trip and the arming's round
trip, one after the other. Under a flood that chain, not the machine, sets the
pace (queue_flood.py: about 3,000 events/s with every worker stopped, half of
that with them running). The pipeline splits it across three threads:

- the caller creates the items (``create_items``, in its own transaction, or
  ``dispatch_many`` here) and ``submit``s them;
- the publishing thread writes each batch as soon as it arrives and reads the
  broker's confirms as they come back, with up to ``window`` batches
  unconfirmed. A batch whose items are all confirmed is *settled*: its
  discardable types are armed (tokens, then a ticket for each token taken,
  published into the same stream: arming costs no wait of its own) and its
  confirmed ids go to
- the marking thread (``mark_dispatched``).

The rules of ``publish_items`` hold: an item is marked only once the broker
confirmed it; a type is armed only after its batch's events are confirmed in
their queue (drain.py); a broker that went away gets one retry of the
unconfirmed items on a fresh connection, then they stay ``pending``, and once a
batch is confirmed again the pipeline runs ``redispatch_pending`` itself.
Batches are published in the order they were submitted.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from dataclasses import dataclass, field

from django.db import connection, transaction

from project.queue_system import publisher as publishing
from project.queue_system import topology
from project.queue_system.broker import CONNECTION_ERRORS, BrokerError
from project.queue_system.dispatcher import EventDispatcher, NewItem, mark_dispatched, publish_item, redispatch_pending
from project.queue_system.drain import (
    ItemKey,
    TicketKey,
    TokenKey,
    arming_requests,
    publish_ticket,
    publish_token,
    token_keys,
)
from project.queue_system.infrastructure import drop_connection, retry_database
from project.queue_system.models import QueueItem
from project.queue_system.publisher import ConfirmTimeout

log = logging.getLogger("queue.pipeline")

# Batches submitted and not yet published; a full queue makes ``submit`` wait
# (the broker sets the pace, memory stays bounded).
MAX_WAITING_BATCHES = 2
# Batches published and not yet settled.
WINDOW = 4
# How long one read of the confirm stream lasts before the thread looks for a new batch.
POLL_SECONDS = 0.002
# How long the marking thread retries a mark while PostgreSQL is away (a restart).
MARK_RETRY_SECONDS = 120.0

BROKER_ERRORS = (BrokerError, topology.TopologyError, *CONNECTION_ERRORS)


@dataclass
class BatchOutcome:
    """A batch whose publishing is over: every item confirmed, or the rest left pending."""

    number: int
    items: int
    unconfirmed: int = 0
    error: str = ""
    confirmed_at: float = 0.0  # time.time() when its last confirm was read
    publish_ms: float = 0.0  # from its first publish to its last confirm


@dataclass
class _Batch:
    seq: int
    number: int
    items: list[QueueItem | NewItem]
    started: float = field(default_factory=time.perf_counter)
    waiting: set[int] = field(default_factory=set)  # pks not confirmed yet
    delivered: list[int] = field(default_factory=list)
    attempts: int = 0


class ThreadWorker:
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
                    log.exception("%s failed", self._thread.name)
                    drop_connection()  # a dead connection would fail every later job
                finally:
                    self._queue.task_done()
        finally:
            connection.close()


def _mark(ids: list[int]) -> None:
    """Mark with retries on a new connection while PostgreSQL restarts (``MARK_RETRY_SECONDS``).

    A mark given up (PostgreSQL gone for longer) leaves the items undispatched:
    redispatch_pending publishes them once more, harmless (a finished item never runs twice).
    """
    retry_database(
        lambda: mark_dispatched(ids), "mark dispatched items", {"items": len(ids)}, give_up_after=MARK_RETRY_SECONDS
    )


_STOP = object()


class DispatchPipeline:
    def __init__(self, broker_url: str | None = None, *, window: int = WINDOW) -> None:
        self.dispatcher = EventDispatcher(broker_url)  # its connection is this pipeline's alone
        self.window = window
        self._jobs: queue.Queue = queue.Queue(maxsize=MAX_WAITING_BATCHES)
        self._settled: list[BatchOutcome] = []
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._open = 0  # batches submitted and not settled
        self._all_settled = threading.Condition(self._lock)
        self._in_flight: dict[int, _Batch] = {}
        self._control: set[TokenKey | TicketKey] = set()  # arming tokens and tickets not confirmed yet
        self._redispatch_due = False
        self._confirmed_at = time.perf_counter()  # the last confirm read, or when waiting began
        self._marker = ThreadWorker("dispatch-mark", _mark)
        self._thread = threading.Thread(target=self._run, name="dispatch-publish", daemon=True)
        self._thread.start()

    # -- the caller's side --------------------------------------------------

    def dispatch_many(self, events, number: int = 0) -> int:
        """Create the events' items (this thread) and submit them; how many were created.

        Inside a transaction they are submitted when it commits (a worker must find the rows).
        """
        items = self.dispatcher.create_items([e for e in events if e is not None])
        if connection.in_atomic_block:
            transaction.on_commit(lambda: self.submit(number, items))
        else:
            self.submit(number, items)
        return len(items)

    def submit(self, number: int, items: list[QueueItem | NewItem]) -> None:
        """Queue committed items for publishing (waits while ``MAX_WAITING_BATCHES`` are queued)."""
        if not items:
            self._report(BatchOutcome(number, 0, confirmed_at=time.time()))
            return
        with self._lock:
            self._open += 1
        self._jobs.put((number, list(items)))

    def take_settled(self) -> list[BatchOutcome]:
        with self._lock:
            settled, self._settled = self._settled, []
        return settled

    def finish(self, timeout: float | None = None) -> list[BatchOutcome]:
        """Wait until every submitted batch is settled and marked; what settled since the last take.

        With a ``timeout`` it returns what settled within it (a broker that stopped
        confirming must not stall the caller: the capture goes on storing meanwhile).
        """
        with self._all_settled:
            settled = self._all_settled.wait_for(lambda: self._open == 0, timeout)
        if settled:
            self._marker.join()
        return self.take_settled()

    def close(self) -> None:
        self._jobs.put(_STOP)
        self._thread.join(timeout=publishing.CONFIRM_TIMEOUT + 10)
        self._marker.stop()
        self.dispatcher.close()

    # -- the publishing thread ----------------------------------------------

    @property
    def _busy(self) -> bool:
        return bool(self._in_flight or self._control)

    def _run(self) -> None:
        stopping = False
        try:
            while True:
                job = None
                if not self._busy:
                    if stopping:
                        return
                    if self._redispatch_due:
                        self._redispatch()
                    job = self._jobs.get()
                elif not stopping and len(self._in_flight) < self.window:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        pass
                if job is _STOP:
                    stopping = True
                    self._jobs.task_done()
                    continue
                try:
                    if job is not None:
                        self._start(*job)
                    else:
                        self._read()
                except BROKER_ERRORS as exc:
                    self._broker_failed(exc)
                except Exception as exc:
                    log.exception("dispatch pipeline failed; its unconfirmed items stay pending")
                    drop_connection()
                    self._give_up(list(self._in_flight.values()), f"{type(exc).__name__}: {exc}")
        finally:
            connection.close()

    def _start(self, number: int, items: list) -> None:
        batch = _Batch(next(self._seq), number, items, waiting={item.pk for item in items})
        if not self._busy:
            self._confirmed_at = time.perf_counter()  # the confirm timeout counts from the first wait
        self._in_flight[batch.seq] = batch
        self._publish(batch)

    def _publish(self, batch: _Batch) -> None:
        batch.attempts += 1
        publisher = self.dispatcher.connect()
        self.dispatcher.declare_for(batch.items)
        for item in batch.items:
            if item.pk in batch.waiting:
                publish_item(publisher, item, key=ItemKey(batch.seq, item.pk))
        publisher.flush()

    def _read(self) -> None:
        publisher = self.dispatcher.connect()
        results = publisher.read(POLL_SECONDS)
        for key, delivered in results.items():
            if isinstance(key, ItemKey):
                batch = self._in_flight.get(key.batch)
                if batch is None:
                    continue
                batch.waiting.discard(key.pk)
                if delivered:
                    batch.delivered.append(key.pk)
                if not batch.waiting:
                    self._settle(batch)
                continue
            self._control.discard(key)
            if isinstance(key, TokenKey) and delivered:
                # A token taken: its ticket goes into the same stream (drain.arm_many waits instead).
                self._control.add(publish_ticket(publisher, key, seq=next(self._seq)))
            elif isinstance(key, TicketKey) and not delivered:
                # Its token is taken with no ticket behind it: the worker's watchdog repairs it.
                log.warning(
                    "a drain ticket was not confirmed", extra={"service": key.slug, "event_type": key.event_type}
                )
        now = time.perf_counter()
        if results:
            self._confirmed_at = now
        elif now - self._confirmed_at > publishing.CONFIRM_TIMEOUT:
            raise ConfirmTimeout(
                f"{publisher.unsettled} publish(es) not confirmed within {publishing.CONFIRM_TIMEOUT:.0f} s"
            )

    def _settle(self, batch: _Batch, error: str = "") -> None:
        del self._in_flight[batch.seq]
        if batch.delivered:
            self._marker.put(batch.delivered)
        if not error:
            self._arm(batch)
            if self.dispatcher.broker_down:
                self._redispatch_due = True  # the broker is back: what was left pending goes too
        self._report(
            BatchOutcome(
                batch.number,
                len(batch.items),
                unconfirmed=len(batch.items) - len(batch.delivered),
                error=error,
                confirmed_at=time.time(),
                publish_ms=(time.perf_counter() - batch.started) * 1000,
            ),
            submitted=True,
        )
        self._jobs.task_done()

    def _arm(self, batch: _Batch) -> None:
        requests = arming_requests(batch.items, set(batch.delivered))
        if not requests:
            return
        publisher = self.dispatcher.connect()
        for request in requests:
            for key in token_keys(request):
                if key not in self._control:  # the same token already asked for by an earlier batch
                    publish_token(publisher, key)
                    self._control.add(key)

    def _report(self, outcome: BatchOutcome, *, submitted: bool = False) -> None:
        with self._lock:
            self._settled.append(outcome)
            if submitted:
                self._open -= 1
                self._all_settled.notify_all()

    def _broker_failed(self, exc: Exception) -> None:
        """One retry of every unconfirmed item on a fresh connection, then they stay pending."""
        error = f"{type(exc).__name__}: {exc}"
        self.dispatcher.reset(failed=True)
        # Tokens taken without their ticket are the watchdog's to repair.
        self._control.clear()
        batches = list(self._in_flight.values())
        retry = [b for b in batches if b.attempts < 2 and not isinstance(exc, topology.TopologyError)]
        self._give_up([b for b in batches if b not in retry], error)
        self._confirmed_at = time.perf_counter()
        try:
            for batch in retry:
                self._publish(batch)
        except BROKER_ERRORS as again:
            self.dispatcher.reset(failed=True)
            self._give_up(retry, f"{type(again).__name__}: {again}")

    def _give_up(self, batches: list[_Batch], error: str) -> None:
        if not batches:
            return
        self.dispatcher.note_broker_failure()
        log.warning(
            "broker unavailable; items stay pending for redispatch_pending",
            extra={"items": sum(len(b.waiting) for b in batches), "error": error},
        )
        for batch in batches:
            self._settle(batch, error)

    def _redispatch(self) -> None:
        self._redispatch_due = False
        self.dispatcher.broker_back()
        self._marker.join()  # what was just confirmed is marked first, or it would go twice
        try:
            redispatch_pending(older_than=0, dispatcher=self.dispatcher)
        except Exception:
            log.exception("re-publishing the pending items failed; redispatch_pending will")
            drop_connection()
