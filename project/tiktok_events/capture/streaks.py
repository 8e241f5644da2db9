"""Gift streaks: one LiveEvent per streak, dispatched once with the final count.

TikTok sends a combo gift (gift type 1, e.g. Rose) as a stream of repeats
sharing (user, gift, group_id), ``repeat_count`` growing and ``repeat_end``
set on the last. Services want one "Rose x5", not five events, so the first
repeat creates the row (status ``open``), later ones update it and the end
closes it and dispatches it. The end can be lost (a dropped socket, a lost
frame): a streak silent for ``timeout`` seconds is closed as ``timed_out`` and
dispatched then — once. A repeat arriving after that only corrects the count.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

from project.tiktok_events.capture.normalize import CapturedEvent
from project.tiktok_events.capture.rows import EventRow, Streak

# How long a closed streak is remembered, so a late repeat updates it rather
# than starting a second "streak" that would be dispatched again.
CLOSED_MEMORY_SECONDS = 300.0


@dataclass
class GiftOutcome:
    row: EventRow
    new: bool  # insert the row (else update it)
    dispatch: bool  # hand it to the queue system once written


class StreakTracker:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.open: dict[tuple, EventRow] = {}
        self._closed: collections.OrderedDict[tuple, tuple[EventRow, float]] = collections.OrderedDict()

    def gift(self, event: CapturedEvent, now: float) -> GiftOutcome:
        if not event.streakable:
            return GiftOutcome(EventRow(event, Streak.NONE, last_seen=now), new=True, dispatch=True)
        key = event.streak_key
        row = self.open.get(key)
        if row is not None:
            self._grow(row, event, now)
            if event.streak_end:
                row.streak_status = Streak.ENDED
                self._close(key, row, now)
                return GiftOutcome(row, new=False, dispatch=True)
            return GiftOutcome(row, new=False, dispatch=False)
        closed = self._closed.get(key)
        if closed is not None:
            row = closed[0]
            self._grow(row, event, now)
            row.event.event_data["late_repeat"] = True
            return GiftOutcome(row, new=False, dispatch=False)
        if event.streak_end:
            # A one-tap streak, or one whose start we never saw: complete as it is.
            row = EventRow(event, Streak.ENDED, last_seen=now)
            self._close(key, row, now)
            return GiftOutcome(row, new=True, dispatch=True)
        row = EventRow(event, Streak.OPEN, last_seen=now)
        self.open[key] = row
        return GiftOutcome(row, new=True, dispatch=False)

    def expire(self, now: float) -> list[EventRow]:
        """Close the streaks silent for longer than ``timeout``; they must be dispatched."""
        expired = [(key, row) for key, row in self.open.items() if now - row.last_seen >= self.timeout]
        for key, row in expired:
            row.streak_status = Streak.TIMED_OUT
            row.event.event_data["repeat_end"] = False
            self._close(key, row, now)
        self._forget_old(now)
        return [row for _, row in expired]

    def close_all(self, now: float) -> list[EventRow]:
        """At the end of the capture every open streak is closed as timed out (its end never came)."""
        for row in self.open.values():
            row.last_seen = now - self.timeout
        return self.expire(now)

    def _grow(self, row: EventRow, event: CapturedEvent, now: float) -> None:
        current = row.event
        if event.repeat_count > current.repeat_count:
            current.repeat_count = event.repeat_count
            current.event_data["repeat_count"] = event.repeat_count
            gift = current.event_data.get("gift", {})
            current.event_data["diamonds_total"] = int(gift.get("diamond_count", 0)) * event.repeat_count
        current.event_data["repeat_end"] = event.streak_end
        current.frame_sent_ms = event.frame_sent_ms
        current.received_mono = event.received_mono
        row.last_seen = now

    def _close(self, key: tuple, row: EventRow, now: float) -> None:
        self.open.pop(key, None)
        self._closed[key] = (row, now)
        self._closed.move_to_end(key)

    def _forget_old(self, now: float) -> None:
        while self._closed:
            key, (_, closed_at) = next(iter(self._closed.items()))
            if now - closed_at < CLOSED_MEMORY_SECONDS:
                break
            del self._closed[key]
