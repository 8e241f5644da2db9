"""From TikTokLive events to stored, dispatched LiveEvents, in batches.

TikTokLive emits events synchronously from its socket loop, one frame's
messages back to back. The handlers here only normalise and queue rows; a
single flusher task cuts everything queued into one batch and hands it to the
writer (one transaction: rows and QueueItems; then the items are published).
While a batch is being written the next one builds up, so batches grow with
the load and a flood costs one round trip per batch, not per event; and the
broker confirms one batch while the writer stores the next (see
``dispatch.write_and_dispatch``): a batch's confirmation comes back with the
next write, or from ``finish`` when no batch follows.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from project.tiktok_events.capture.batches import Settled, WriteBatch, WriteResult
from project.tiktok_events.capture.normalize import TRANSPORT_EVENTS, CapturedEvent, normalize
from project.tiktok_events.capture.output import CaptureOutput
from project.tiktok_events.capture.rows import EventRow, Streak
from project.tiktok_events.capture.streaks import StreakTracker
from project.tiktok_events.capture.writer import BatchWriter

log = logging.getLogger("capture")

DEDUP_WINDOW = 200_000  # message ids remembered; reconnect replays reach back seconds, not hours
WRITE_RETRY_SECONDS = (0.5, 1, 2, 5, 10)
BEHIND_WARN_SECONDS = 3.0  # say so when the capture is this far behind the live
CAUGHT_UP_SECONDS = 1.0  # ... and again once it is back under this
BEHIND_REPEAT_SECONDS = 30.0  # while it stays behind, at most one warning per this many seconds
IDLE_SETTLE_SECONDS = 0.05  # how long an idle flusher waits for the confirms in flight before looking again


class BehindMonitor:
    """How far the capture is behind the live, batch by batch.

    A frame's delay is TikTok's send time (``now`` of the push frame) → its events
    stored and confirmed by RabbitMQ. The smallest delay seen in the session stands
    for zero: it is the clock offset between TikTok and this machine plus the
    quickest path, so a constant clock skew cancels out. (A capture that starts
    behind counts from there.) ``observe`` says when to warn and when it caught up.
    """

    def __init__(self) -> None:
        self.floor_ms: float | None = None
        self.behind = False
        self.warned_at = 0.0
        self.max_ms = 0.0
        self.warnings = 0
        self.last_s = 0.0  # how far behind the last confirmed batch was

    def observe(self, delays_ms: list[float], now: float) -> tuple[str, float] | None:
        """One confirmed batch's delays → ("behind", seconds), ("caught-up", seconds) or None."""
        if not delays_ms:
            return None
        low = min(delays_ms)
        self.floor_ms = low if self.floor_ms is None else min(self.floor_ms, low)
        lag = self.last_s = (max(delays_ms) - self.floor_ms) / 1000
        self.max_ms = max(self.max_ms, lag * 1000)
        if lag >= BEHIND_WARN_SECONDS:
            if not self.behind or now - self.warned_at >= BEHIND_REPEAT_SECONDS:
                self.behind, self.warned_at = True, now
                self.warnings += 1
                return "behind", lag
        elif self.behind and lag < CAUGHT_UP_SECONDS:
            self.behind = False
            return "caught-up", lag
        return None


class RecentIds:
    """The last ``size`` message ids seen, for de-duplicating replays after a reconnect."""

    def __init__(self, size: int) -> None:
        self._order: collections.deque[int] = collections.deque()
        self._ids: set[int] = set()
        self._size = size

    def add(self, msg_id: int) -> bool:
        """Remember ``msg_id``; False if it was already there."""
        if msg_id in self._ids:
            return False
        self._ids.add(msg_id)
        self._order.append(msg_id)
        if len(self._order) > self._size:
            self._ids.discard(self._order.popleft())
        return True


@dataclass
class CaptureStats:
    stored: collections.Counter[str] = field(default_factory=collections.Counter)
    dispatched_events: int = 0
    items_created: int = 0
    items_unconfirmed: int = 0
    duplicates: int = 0
    unreadable: int = 0
    unknown: int = 0
    batches: int = 0
    write_retries: int = 0
    # Milliseconds from the frame's send time (ProtoMessageFetchResult.now) to the
    # broker's confirmation of its QueueItems; and from our handler to the same.
    frame_to_confirm_ms: list[float] = field(default_factory=list)
    handler_to_confirm_ms: list[float] = field(default_factory=list)
    # Per batch, in the writer: its transaction (rows, QueueItems, commit), and publishing its
    # items until RabbitMQ confirmed them: where a slow disk or a busy broker shows.
    store_ms: list[float] = field(default_factory=list)
    confirm_ms: list[float] = field(default_factory=list)
    first_received: float | None = None
    last_confirmed: float | None = None
    behind: BehindMonitor = field(default_factory=BehindMonitor)

    @property
    def total_stored(self) -> int:
        return sum(self.stored.values())

    def as_dict(self) -> dict[str, Any]:
        span = (self.last_confirmed or 0) - (self.first_received or 0)
        confirmed = self.total_stored
        return {
            "events_captured": dict(self.stored),
            "events_stored": confirmed,
            "events_dispatched": self.dispatched_events,
            "queue_items_created": self.items_created,
            "queue_items_unconfirmed": self.items_unconfirmed,
            "duplicates_skipped": self.duplicates,
            "unreadable_events": self.unreadable,
            "unknown_messages": self.unknown,
            "batches": self.batches,
            "events_per_s": round(confirmed / span, 1) if span > 0 else None,
            "frame_to_confirm_ms": percentiles(self.frame_to_confirm_ms),
            "handler_to_confirm_ms": percentiles(self.handler_to_confirm_ms),
            "store_ms": percentiles(self.store_ms),
            "confirm_ms": percentiles(self.confirm_ms),
            "behind_max_ms": round(self.behind.max_ms, 1),
            "behind_warnings": self.behind.warnings,
        }


def percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50": at(0.50), "p99": at(0.99), "max": round(ordered[-1], 1), "count": len(ordered)}


class CapturePipeline:
    def __init__(self, output: CaptureOutput, writer: BatchWriter, *, streak_timeout: float) -> None:
        self.output = output
        self.writer = writer
        self.session_id: int | None = None
        self.streaks = StreakTracker(streak_timeout)
        self.stats = CaptureStats()
        self.live_ended = False
        self.last_activity = time.monotonic()
        self._seen = RecentIds(DEDUP_WINDOW)
        self._frame_sent_ms: int | None = None
        self._new: list[EventRow] = []
        self._updated: dict[int, EventRow] = {}
        self._dispatch: list[EventRow] = []
        self._like_totals: collections.Counter[str] = collections.Counter()
        self._like_session_total = 0
        self._wakeup = asyncio.Event()
        self._closing = False
        self._tick = min(1.0, max(0.1, streak_timeout / 4))
        self._batch_number = 0
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

    def on_unknown(self, event: Any) -> None:
        """UnknownEvent: a message type TikTokLive has no class for; nothing to store."""
        self.stats.unknown += 1
        log.info("skipped a TikTok message of a type TikTokLive does not know")

    def on_event(self, event: Any) -> None:
        self.last_activity = time.monotonic()
        if type(event).__name__ in TRANSPORT_EVENTS:
            return
        try:
            captured = normalize(event, frame_sent_ms=self._frame_sent_ms)
        except Exception:
            self.stats.unreadable += 1
            log.exception("could not normalise a TikTok event", extra={"event_type": type(event).__name__})
            return
        # TikTokLive emits a custom event (FollowEvent, ShareEvent, LiveEndEvent...) *before*
        # the raw one it was derived from (SocialEvent, ControlEvent); both carry the same
        # message id, so the first wins and the message is stored once, under the seeds' name.
        # The same check drops messages replayed after a reconnect.
        if captured.msg_id is not None and not self._seen.add(captured.msg_id):
            self.stats.duplicates += 1
            return
        self.accept(captured)

    def accept(self, captured: CapturedEvent) -> None:
        if self.stats.first_received is None:
            self.stats.first_received = captured.received_mono
        if captured.event_type == "GiftEvent":
            outcome = self.streaks.gift(captured, time.monotonic())
            self._queue(outcome.row, new=outcome.new, dispatch=outcome.dispatch)
        else:
            if captured.event_type == "LikeEvent":
                self._add_like_totals(captured)
            elif captured.event_type == "LiveEndEvent":
                self.live_ended = True
            self._queue(EventRow(captured), new=True, dispatch=True)
        self._wakeup.set()

    def _add_like_totals(self, captured: CapturedEvent) -> None:
        count = int(captured.event_data.get("count", 0))
        key = captured.user_id or captured.user_unique_id
        self._like_totals[key] += count
        self._like_session_total += count
        captured.event_data["user_total"] = self._like_totals[key]
        captured.event_data["session_total"] = self._like_session_total

    def _queue(self, row: EventRow, *, new: bool, dispatch: bool) -> None:
        if new:
            self._new.append(row)
        else:
            self._updated[id(row)] = row
        if dispatch:
            self._dispatch.append(row)

    # -- the flusher ------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._new) + len(self._updated) + len(self._dispatch)

    async def run(self) -> None:
        """Write batches until ``close()`` and everything queued is written."""
        while True:
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=self._tick)
            except TimeoutError:
                pass
            self._wakeup.clear()
            for row in self.streaks.expire(time.monotonic()):
                self._queue(row, new=False, dispatch=True)
            if self.session_id is None or not self.pending:
                if self._awaiting:
                    # Idle: collect the confirmations of what is in flight (their
                    # times were taken when they arrived; only the counting waits).
                    # Briefly, unless closing: a broker that stopped confirming must
                    # not keep the next events from being stored.
                    await self._finish_in_flight(None if self._closing else IDLE_SETTLE_SECONDS)
                if self._closing and (self.session_id is None or not self.pending):
                    return
                continue
            await self._write(self._cut())

    async def close(self) -> None:
        """Close open streaks (their end never came) and let ``run`` finish the queue."""
        for row in self.streaks.close_all(time.monotonic()):
            self._queue(row, new=False, dispatch=True)
        self._closing = True
        self._wakeup.set()

    def _cut(self) -> tuple[WriteBatch, list[EventRow], list[EventRow]]:
        """The batch to write, the rows of its inserts (in order) and the rows it dispatches."""
        assert self.session_id is not None
        self._batch_number += 1
        batch = WriteBatch(self.session_id, self._batch_number)
        inserted: list[EventRow] = []
        position: dict[int, int] = {}
        for row in self._new:
            position[id(row)] = len(batch.inserts)
            batch.inserts.append(row.snapshot())
            inserted.append(row)
        update_position: dict[int, int] = {}
        for key, row in self._updated.items():
            # Updated since its insert was cut: its values go in this update. A row with
            # no primary key was a duplicate the database refused: nothing to update.
            if key not in position and row.pk is not None:
                update_position[key] = len(batch.updates)
                batch.updates.append((row.pk, row.snapshot()))
        dispatched: list[EventRow] = []
        for row in self._dispatch:
            if row.dispatched:
                continue
            if id(row) in position:
                batch.dispatch_inserts.append(position[id(row)])
            elif id(row) in update_position:
                batch.dispatch_updates.append(update_position[id(row)])
            else:
                continue
            row.dispatched = True
            dispatched.append(row)
        self._new, self._updated, self._dispatch = [], {}, []
        return batch, inserted, dispatched

    async def _write(self, cut: tuple[WriteBatch, list[EventRow], list[EventRow]]) -> None:
        batch, inserted, dispatched = cut
        attempt = 0
        while True:
            try:
                result = await self.writer.write(batch)
                break
            except Exception as exc:
                if isinstance(exc, BrokenProcessPool):
                    self._lose_in_flight()
                # PostgreSQL unreachable, the writer process died...: keep the batch and
                # try again (nothing is dropped).
                delay = WRITE_RETRY_SECONDS[min(attempt, len(WRITE_RETRY_SECONDS) - 1)]
                attempt += 1
                self.stats.write_retries += 1
                log.error("writing a batch failed; retrying", extra={"error": str(exc)[:300], "rows": len(batch)})
                if attempt == 1:
                    self.output.warning(f"Could not store a batch of events ({exc}); retrying...")
                await asyncio.sleep(delay)
        for row, pk in zip(inserted, result.ids, strict=True):
            row.pk = pk
        self._after_write(batch.number, inserted, dispatched, result)

    async def _finish_in_flight(self, timeout: float | None = None) -> None:
        try:
            settled = await self.writer.finish(timeout)
        except BrokenProcessPool:
            self._lose_in_flight()
            return
        except Exception as exc:
            # Settled by the next batch's call instead.
            log.error("settling a batch in flight failed", extra={"error": str(exc)[:300]})
            return
        for done in settled:
            self._after_confirm(done)

    def _lose_in_flight(self) -> None:
        """The writer process died: the confirms of its batches in flight will never be read.

        Their items are stored; the new writer publishes them first (``writer._recover``).
        """
        items = sum(created for _, created in self._awaiting.values())
        self._awaiting.clear()
        if items:
            self.output.warning(
                f"The writer process died with {items} deliveries unconfirmed; "
                "a new writer publishes them again before going on."
            )

    def _after_write(
        self, number: int, inserted: list[EventRow], dispatched: list[EventRow], result: WriteResult
    ) -> None:
        stats = self.stats
        stats.batches += 1
        stats.items_created += result.items_created
        stats.dispatched_events += result.dispatched_events
        if result.items_created:
            stats.store_ms.append(result.store_ms)
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
        for done in result.settled:
            self._after_confirm(done)

    def _after_confirm(self, settled: Settled) -> None:
        dispatched, _ = self._awaiting.pop(settled.number, ([], 0))
        stats = self.stats
        stats.items_unconfirmed += settled.items_unconfirmed
        if settled.error or settled.items_unconfirmed:
            self.output.warning(
                f"RabbitMQ did not confirm {settled.items_unconfirmed} deliveries ({settled.error or 'no answer'}); "
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
            stats.confirm_ms.append(settled.publish_ms)
        behind: list[float] = []  # a streak closed by its timeout waited on purpose: not lag
        for row in dispatched:
            if row.pk is None:
                continue
            if row.event.frame_sent_ms:
                delay = confirmed_wall * 1000 - row.event.frame_sent_ms
                stats.frame_to_confirm_ms.append(delay)
                if row.streak_status != Streak.TIMED_OUT:
                    behind.append(delay)
            stats.handler_to_confirm_ms.append((confirmed_mono - row.event.received_mono) * 1000)
        change = stats.behind.observe(behind, confirmed_mono)
        if change is not None:
            self.output.behind(*change)
