# Design: docs/architecture.md#guarantees
"""From TikTokLive events to stored, dispatched LiveEvents, in batches.

TikTokLive emits events synchronously from its socket loop, one frame's
messages back to back. The handlers here only normalise and queue rows; a
single flusher task cuts everything queued into one batch and hands it to the
writer (one transaction: rows and QueueItems; then the items are published).
While a batch is being written the next one builds up, so batches grow with
the load and a flood costs one round trip per batch, not per event; and the
broker confirms one batch while the writer stores the next (see
``handoff.write_and_dispatch``): a batch's confirmation comes back with the
next write, or from ``finish`` when no batch follows.

The priority lane: the events some service keeps (a non-discardable config: gifts,
follows, subscriptions) go through a second writer of their own, in their own small
batches, so a gift that arrives in a flood never waits for a large batch of likes to
be stored and confirmed. Each lane keeps the order in which its events arrived (the
ones read back from disk after an outage included).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Coroutine
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from project.tiktok_events.capture.backlog import Backlog
from project.tiktok_events.capture.batches import WriteBatch, WriteResult

if TYPE_CHECKING:
    from project.queue_system.streaming import BatchOutcome
from project.tiktok_events.capture.normalize import (
    RAW_MESSAGE_TYPES,
    SUBSCRIBE,
    TRANSPORT_EVENTS,
    CapturedEvent,
    Host,
    is_news,
    normalize,
    raw_message,
)
from project.tiktok_events.capture.output import CaptureOutput
from project.tiktok_events.capture.repeats import DEDUP_WINDOW, RecentIds, RecentSubscriptions
from project.tiktok_events.capture.rows import EventRow, Streak
from project.tiktok_events.capture.stats import CaptureStats
from project.tiktok_events.capture.streaks import StreakTracker
from project.tiktok_events.capture.writer import BatchWriter

log = logging.getLogger("capture")

MAX_BATCH_ROWS = 5_000  # inserts per batch: a backlog is written in pieces, not in one huge COPY
WRITE_RETRY_SECONDS = (0.5, 1, 2, 5, 10)
IDLE_SETTLE_SECONDS = 0.05  # how long an idle flusher waits for the confirms in flight before looking again
# Stored for the record, never dispatched, whatever the configs say: no service can act on them.
NEVER_DISPATCHED = set(RAW_MESSAGE_TYPES.values())


def dispatchable(captured: CapturedEvent) -> bool:
    """False for what services must not react to: what is not news (``is_news``), a
    message no event came out of."""
    return captured.event_type not in NEVER_DISPATCHED and is_news(captured)


@dataclass(eq=False)
class Lane:
    """The rows waiting for one writer, and what that writer is doing with them."""

    name: str
    writer: BatchWriter
    new: list[EventRow] = field(default_factory=list)  # rows to insert, in arrival order
    updated: dict[int, EventRow] = field(default_factory=dict)  # rows stored, changed since
    dispatch: list[EventRow] = field(default_factory=list)  # rows to dispatch once written
    writing: list[EventRow] = field(default_factory=list)  # the inserts of the batch being written
    writing_number: int | None = None  # ... and its number
    task: asyncio.Task | None = None  # a write or a settling, one at a time
    awaiting: set[int] = field(default_factory=set)  # its batches whose confirms are still awaited

    @property
    def pending(self) -> int:
        return len(self.new) + len(self.updated) + len(self.dispatch)

    @property
    def waiting(self) -> int:
        return len(self.new) + len(self.updated) + len(self.writing)


class CapturePipeline:
    def __init__(
        self,
        output: CaptureOutput,
        writer: BatchWriter,
        *,
        streak_timeout: float,
        backlog: Backlog | None = None,
        host_username: str = "",
        priority_writer: BatchWriter | None = None,
    ) -> None:
        self.output = output
        self.main = Lane("main", writer)
        self.priority = Lane("priority", priority_writer) if priority_writer is not None else None
        self._lanes = [lane for lane in (self.priority, self.main) if lane is not None]
        # The event types the priority lane takes: those some active service keeps (refreshed
        # from every batch's result; see handoff.priority_types).
        self.priority_types: frozenset[str] = frozenset()
        self.backlog = backlog or Backlog(output)
        self.session_id: int | None = None
        self.streaks = StreakTracker(streak_timeout)
        self.stats = CaptureStats()
        self.live_ended = False
        self.last_activity = time.monotonic()
        self._seen = RecentIds(DEDUP_WINDOW)
        self._frame_sent_ms: int | None = None
        self._history = False  # the message being parsed is TikTok's history (sent on connect)
        self._message: Any = None  # ... the BaseProtoMessage itself
        self.host = Host(host_username)
        self._subscriptions = RecentSubscriptions()
        self._like_totals: collections.Counter[str] = collections.Counter()
        self._like_session_total = 0
        self._wakeup = asyncio.Event()
        self._closing = False
        self._tick = min(1.0, max(0.1, streak_timeout / 4))
        self._batch_number = 0
        self._rows_queued = 0  # rows ever queued for insert (their ``seq`` numbers them)
        self._streaks_closed = False
        # Batches stored whose confirms are still awaited: number → (dispatched rows, items).
        self._awaiting: dict[int, tuple[list[EventRow], int]] = {}

    def set_session(self, session_id: int) -> None:
        """Events received before the session row existed are written from now on."""
        self.session_id = session_id
        self._wakeup.set()

    # -- TikTokLive handlers (synchronous, on the event loop) --------------------------------------

    def on_frame(self, event: Any) -> None:
        """WebsocketResponseEvent: once per message, carrying the whole frame."""
        self.last_activity = time.monotonic()
        now_ms = getattr(getattr(event, "raw", None), "now", 0)
        self._frame_sent_ms = int(now_ms) if now_ms else None

    def on_message(self, message: Any) -> None:
        """CaptureClient.message_listener: a message, before the events parsed from it."""
        self._history = bool(getattr(message, "is_history", False))
        self._message = message

    def on_raw(self, message: Any, reason: str) -> None:
        """CaptureClient.raw_listener: a message no event came out of ("unknown" or "unparsed"):
        stored with its raw payload as UnknownEvent / UnparsedEvent, never dispatched."""
        self.last_activity = time.monotonic()
        if reason == "unknown":
            self.stats.unknown += 1
        else:
            self.stats.unreadable += 1
        log.info("a TikTok message gave no event", extra={"method": message.method, "reason": reason})
        self._take(raw_message(message, reason, frame_sent_ms=self._frame_sent_ms))

    def on_event(self, event: Any) -> None:
        self.last_activity = time.monotonic()
        if type(event).__name__ in TRANSPORT_EVENTS:
            return
        header = getattr(event, "common", None)
        if header is not None and header.msg_id and int(header.msg_id) in self._seen:
            # The raw event TikTokLive emits after its custom one (see _take), or a replay: not
            # normalised at all (an unmodelled event's fields cost milliseconds to read).
            self.stats.duplicates += 1
            return
        message = self._message
        payload = message.payload if message is not None else None
        try:
            captured = normalize(event, frame_sent_ms=self._frame_sent_ms, host=self.host, payload=payload)
        except Exception:
            self.stats.unreadable += 1
            log.exception("could not normalise a TikTok event", extra={"event_type": type(event).__name__})
            if message is None:
                return
            captured = raw_message(message, "unparsed", frame_sent_ms=self._frame_sent_ms)
        self._take(captured)

    def _take(self, captured: CapturedEvent) -> None:
        # TikTokLive emits a custom event (FollowEvent, ShareEvent, LiveEndEvent...) *before*
        # the raw one it was derived from (SocialEvent, ControlEvent); both carry the same
        # message id, so the first wins and the message is stored once, under the seeds' name.
        # The same check drops messages replayed after a reconnect (history included).
        if captured.msg_id is not None and not self._seen.add(captured.msg_id):
            self.stats.duplicates += 1
            return
        if self._history:
            # TikTok's recent messages, sent again on connect: kept, not news to react to.
            captured.event_data["is_history"] = True
        elif captured.event_type == SUBSCRIBE:
            self._subscriptions.mark_repeat(captured)
        self.receive(captured)

    def receive(self, captured: CapturedEvent) -> None:
        """Into the queue in memory; past the backlog's bound (PostgreSQL away), onto disk."""
        waiting = self.waiting
        if waiting > self.stats.backlog_max:
            self.stats.backlog_max = waiting
        if self.backlog.must_spill(self.session_id, waiting):
            assert self.session_id is not None
            if self.backlog.put(captured, self.session_id, waiting):
                self.stats.spilled += 1
                if self.stats.first_received is None:
                    self.stats.first_received = captured.received_mono
                if captured.event_type == "LiveEndEvent":
                    self.live_ended = True  # the run must know now, not once the file is read back
                return
        self.accept(captured)

    def accept(self, captured: CapturedEvent) -> None:
        if self.stats.first_received is None:
            self.stats.first_received = captured.received_mono
        dispatch = dispatchable(captured)
        if captured.event_type == "GiftEvent" and dispatch:
            outcome = self.streaks.gift(captured, time.monotonic())
            if outcome.new:
                outcome.row.priority = self._takes_priority(captured)
            self._queue(outcome.row, new=outcome.new, dispatch=outcome.dispatch)
        else:
            # (A gift of TikTok's history is stored as it came, outside the streaks.)
            if captured.event_type == "LikeEvent":
                self._add_like_totals(captured)
            elif captured.event_type == "LiveEndEvent":
                self.live_ended = True
            row = EventRow(captured)
            # Not dispatched (history, a repeated subscription) still by its type: stored in
            # order with the events of its type (a repeat must come after its first).
            row.priority = self._takes_priority(captured)
            self._queue(row, new=True, dispatch=dispatch)
        self._wakeup.set()

    def _takes_priority(self, captured: CapturedEvent) -> bool:
        """A row goes through the priority lane for good (its insert, its updates, its dispatch:
        one writer, in order) when a service keeps its type. By type only, whatever else goes
        on: events read back from disk too, so each lane always gets its events in order."""
        return self.priority is not None and captured.event_type in self.priority_types

    def _add_like_totals(self, captured: CapturedEvent) -> None:
        """The capture's running sums of per-message counts (lower bounds: TikTok batches
        likes and under-reports ``count``) and the highest room total TikTok stated (exact)."""
        if "user_total" in captured.event_data:
            return  # counted by the run that received it (an event kept on disk at its end)
        room_total = int(captured.event_data.get("room_total", 0))
        if room_total > self.stats.likes_room_total:
            # Never lowered by a message that arrives out of order.
            self.stats.likes_room_total = room_total
        if captured.event_data.get("is_history"):
            return  # sent before this capture (or already counted): not in its sums
        count = int(captured.event_data.get("count", 0))
        key = captured.user_id or captured.user_unique_id
        self._like_totals[key] += count
        self._like_session_total += count
        captured.event_data["user_total"] = self._like_totals[key]
        captured.event_data["session_total"] = self.stats.likes_counted = self._like_session_total

    def _queue(self, row: EventRow, *, new: bool, dispatch: bool) -> None:
        lane = self.priority if row.priority and self.priority is not None else self.main
        if new:
            row.seq = self._rows_queued
            self._rows_queued += 1
            lane.new.append(row)
        else:
            lane.updated[id(row)] = row
        if dispatch:
            lane.dispatch.append(row)
            if lane is self.priority and lane.task is None and self.session_id is not None:
                # At once: TikTokLive parses a backlog of frames back to back, and the flusher
                # would only get its turn between them.
                self._write_now(lane)

    def _write_now(self, lane: Lane) -> None:
        cut = self._cut(lane)
        self._start(lane, self._write(lane, cut, lane.writer.submit(cut[0])), wake=True)

    # -- the flusher ------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return sum(lane.pending for lane in self._lanes)

    @property
    def waiting(self) -> int:
        """Events held in memory until stored: queued, and in the batches being written."""
        return sum(lane.waiting for lane in self._lanes)

    def _unstored_heads(self) -> list[EventRow]:
        """The oldest row not stored yet of each list (each list is in arrival order)."""
        return [rows[0] for lane in self._lanes for rows in (lane.writing, lane.new) if rows]

    def _oldest_waiting(self) -> float | None:
        heads = self._unstored_heads()
        return min(row.event.received_mono for row in heads) if heads else None

    def _stored_through(self) -> tuple[int, int]:
        """(n, b): every row queued before the n-th one is stored, and every batch up to b."""
        heads = self._unstored_heads()
        rows = min(row.seq for row in heads) if heads else self._rows_queued
        writing = [lane.writing_number for lane in self._lanes if lane.writing_number is not None]
        return rows, (min(writing) - 1 if writing else self._batch_number)

    async def run(self) -> None:
        """Write batches until ``close()`` and everything queued is written."""
        while True:
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=self._tick)
            except TimeoutError:
                pass
            self._wakeup.clear()
            on_disk = self.backlog.spill is not None and self.backlog.spill.unread
            if not on_disk:
                # (While older events wait on disk, the streaks' clock stands still: a streak's
                # next repeat may be in the file.)
                for row in self.streaks.expire(time.monotonic()):
                    self._queue(row, new=False, dispatch=True)
            self._read_back()
            if self._closing and not self._streaks_closed and not on_disk:
                # Open streaks are closed (their end never came) once nothing waits on disk.
                self._streaks_closed = True
                for row in self.streaks.close_all(time.monotonic()):
                    self._queue(row, new=False, dispatch=True)
            self.backlog.report(self.waiting, self._oldest_waiting())
            for lane in self._lanes:
                if lane.task is not None:
                    continue
                if self.session_id is not None and lane.pending:
                    self._write_now(lane)
                elif lane.awaiting:
                    # Idle: collect the confirmations of what is in flight (their times were
                    # taken when they arrived; only the counting waits). Briefly, unless
                    # closing: a broker that stopped confirming must not keep the next events
                    # from being stored.
                    self._start(lane, self._settle(lane, None if self._closing else IDLE_SETTLE_SECONDS), wake=False)
            if any(lane.task is not None for lane in self._lanes):
                continue
            self.backlog.release_if_stored(*self._stored_through())
            if self._closing and (self.session_id is None or not self.pending) and self.backlog.spill is None:
                return

    def _start(self, lane: Lane, work: Coroutine[None, None, None], *, wake: bool) -> None:
        """Run ``work`` as the lane's one task; ``wake``: look again as soon as it is done."""

        def done(task: asyncio.Task) -> None:
            lane.task = None
            if not task.cancelled() and task.exception() is not None:
                log.error("a capture lane's task failed", exc_info=task.exception(), extra={"lane": lane.name})
            if wake or self._closing:
                self._wakeup.set()

        lane.task = asyncio.create_task(work, name=f"capture-{lane.name}")
        lane.task.add_done_callback(done)

    async def stop_tasks(self) -> None:
        """Cancel what the lanes are doing (the run was given up; see ``keep_unstored_on_disk``)."""
        tasks = [lane.task for lane in self._lanes if lane.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def keep_unstored_on_disk(self) -> int:
        """For a run that ends before PostgreSQL is back (``run`` given up): every event not
        stored goes to the spill file, in order, for the next start; how many are kept.

        A row already stored whose later update (a streak's count) is lost is the one thing
        not kept; a batch the writer was storing may commit after all: the next start finds
        its messages already stored and keeps them once.
        """
        if self.session_id is None:
            return 0
        rows = [row for lane in self._lanes for row in lane.writing + lane.new if row.pk is None]
        unstored = [row.event for row in sorted(rows, key=lambda row: row.seq)]
        try:
            return self.backlog.keep_for_next_start(unstored, self.session_id)
        except OSError:
            log.exception("could not keep the events not stored on disk", extra={"events": len(unstored)})
            return 0

    def _read_back(self) -> None:
        """Spilled events back into memory, in order, while the backlog has room."""
        events = self.backlog.take(self.waiting)
        for captured in events:
            self.accept(captured)
        if events:
            self.backlog.taken(self._rows_queued, self._batch_number + 1)

    async def close(self) -> None:
        """Let ``run`` close the open streaks and finish the queue (and the spill file)."""
        self._closing = True
        self._wakeup.set()

    def _cut(self, lane: Lane) -> tuple[WriteBatch, list[EventRow], list[EventRow]]:
        """The lane's batch to write, the rows of its inserts (in order) and the rows it dispatches.

        A row's insert, updates and dispatch all go through its one lane, whose batches are
        written one at a time: a row updated here was inserted by an earlier batch, done.
        """
        assert self.session_id is not None
        self._batch_number += 1
        batch = WriteBatch(self.session_id, self._batch_number)
        # At most MAX_BATCH_ROWS inserts (a backlog after an outage goes in several batches);
        # the rest stay queued, their updates and dispatches carried by their own insert.
        later = {id(row) for row in lane.new[MAX_BATCH_ROWS:]}
        inserted: list[EventRow] = []
        position: dict[int, int] = {}
        for row in lane.new[:MAX_BATCH_ROWS]:
            position[id(row)] = len(batch.inserts)
            batch.inserts.append(row.snapshot())
            inserted.append(row)
        update_position: dict[int, int] = {}
        for key, row in lane.updated.items():
            # Updated since its insert was cut: its values go in this update. A row with
            # no primary key was a duplicate the database refused: nothing to update.
            if key not in position and key not in later and row.pk is not None:
                update_position[key] = len(batch.updates)
                batch.updates.append((row.pk, row.snapshot()))
        dispatched: list[EventRow] = []
        keep: list[EventRow] = []
        for row in lane.dispatch:
            if row.dispatched:
                continue
            if id(row) in position:
                batch.dispatch_inserts.append(position[id(row)])
            elif id(row) in update_position:
                batch.dispatch_updates.append(update_position[id(row)])
            else:
                if id(row) in later:
                    keep.append(row)
                continue
            row.dispatched = True
            dispatched.append(row)
        lane.new, lane.updated, lane.dispatch = lane.new[MAX_BATCH_ROWS:], {}, keep
        lane.writing, lane.writing_number = inserted, batch.number
        return batch, inserted, dispatched

    async def _write(
        self, lane: Lane, cut: tuple[WriteBatch, list[EventRow], list[EventRow]], submitted: asyncio.Future | None
    ) -> None:
        batch, inserted, dispatched = cut
        attempt = 0
        while True:
            try:
                result = await lane.writer.write(batch, submitted)
                break
            except Exception as exc:
                if isinstance(exc, BrokenProcessPool):
                    self._lose_in_flight(lane)
                # PostgreSQL unreachable, the writer process died...: keep the batch and
                # try again (nothing is dropped).
                delay = WRITE_RETRY_SECONDS[min(attempt, len(WRITE_RETRY_SECONDS) - 1)]
                attempt += 1
                self.stats.write_retries += 1
                submitted = None  # each retry submits the batch again
                log.error(
                    "writing a batch failed; retrying",
                    extra={"error": str(exc)[:300], "rows": len(batch), "lane": lane.name},
                )
                if attempt == 1:
                    self.output.warning(f"Could not store a batch of events ({exc}); retrying...")
                await asyncio.sleep(delay)
                self.backlog.report(self.waiting, self._oldest_waiting())
        for row, pk in zip(inserted, result.ids, strict=True):
            row.pk = pk
        lane.writing, lane.writing_number = [], None
        if result.priority_types is not None:
            self.priority_types = result.priority_types
        self._after_write(lane, batch.number, inserted, dispatched, result)
        self.backlog.release_if_stored(*self._stored_through())

    async def _settle(self, lane: Lane, timeout: float | None = None) -> None:
        try:
            settled = await lane.writer.finish(timeout)
        except BrokenProcessPool:
            self._lose_in_flight(lane)
            return
        except Exception as exc:
            log.error("settling a batch in flight failed", extra={"error": str(exc)[:300], "lane": lane.name})
            if self._closing:
                self._lose_in_flight(lane)  # nothing follows to settle them
            else:
                await asyncio.sleep(self._tick)  # settled by the lane's next batch, or the next look
            return
        for done in settled:
            self._after_confirm(lane, done)

    def _lose_in_flight(self, lane: Lane) -> None:
        """A writer process died: the confirms of its batches in flight will never be read.

        Their items are stored; the new writer publishes them first (``writer._recover``).
        """
        items = sum(self._awaiting.pop(number, ([], 0))[1] for number in lane.awaiting)
        lane.awaiting.clear()
        if items:
            self.output.warning(
                f"The writer process died with {items} deliveries unconfirmed; "
                "a new writer publishes them again before going on."
            )

    def _after_write(
        self, lane: Lane, number: int, inserted: list[EventRow], dispatched: list[EventRow], result: WriteResult
    ) -> None:
        stats = self.stats
        stats.batches += 1
        stats.items_created += result.items_created
        stats.dispatched_events += result.dispatched_events
        if result.items_created:
            stats.store_ms.add(result.store_ms)
        # A gift is announced when it is dispatched (a streak: at its end), the rest when stored.
        dispatched_gifts = {id(row) for row in dispatched if row.event.event_type == "GiftEvent"}
        for row in inserted:
            if row.pk is not None:
                stats.stored[row.event.event_type] += 1
                if row.event.event_type != "GiftEvent" or id(row) in dispatched_gifts:
                    self.output.event(row.event)
                    dispatched_gifts.discard(id(row))
        for row in dispatched:
            if id(row) in dispatched_gifts:
                self.output.event(row.event)
        self._awaiting[number] = (dispatched, result.items_created)
        lane.awaiting.add(number)
        if lane is self.priority:
            stats.priority_batches += 1
        for done in result.settled:
            self._after_confirm(lane, done)

    def _after_confirm(self, lane: Lane, settled: BatchOutcome) -> None:
        lane.awaiting.discard(settled.number)
        dispatched, _ = self._awaiting.pop(settled.number, ([], 0))
        stats = self.stats
        stats.items_unconfirmed += settled.unconfirmed
        if settled.error or settled.unconfirmed:
            self.output.warning(
                f"RabbitMQ did not confirm {settled.unconfirmed} deliveries ({settled.error or 'no answer'}); "
                "they stay pending and are published again by: python manage.py redispatch_pending"
            )
            return
        # When the confirms arrived (in the writer), on this process's monotonic clock too:
        # the results may be counted a while later, when the capture is idle.
        now_wall = time.time()
        confirmed_wall = settled.confirmed_at or now_wall
        confirmed_mono = time.monotonic() - max(0.0, now_wall - confirmed_wall)
        stats.last_confirmed = max(stats.last_confirmed or 0.0, confirmed_mono)
        if settled.publish_ms:
            stats.confirm_ms.add(settled.publish_ms)
        behind: list[float] = []  # a streak closed by its timeout waited on purpose: not lag
        for row in dispatched:
            if row.pk is None:
                continue
            if row.event.frame_sent_ms:
                delay = confirmed_wall * 1000 - row.event.frame_sent_ms
                stats.frame_to_confirm_ms.add(delay)
                if row.streak_status != Streak.TIMED_OUT:
                    behind.append(delay)
            stats.handler_to_confirm_ms.add((confirmed_mono - row.event.received_mono) * 1000)
        change = stats.behind.observe(behind, confirmed_mono)
        if change is not None:
            self.output.behind(*change)
