"""What the capture has seen already: message ids (replays) and subscriptions (announced twice).

Both are answered on the event loop, message by message, before an event is queued.
"""

from __future__ import annotations

import collections

from project.tiktok_events.capture.normalize import CapturedEvent

DEDUP_WINDOW = 200_000  # message ids remembered; reconnect replays reach back seconds, not hours
# TikTok may announce one subscription several ways (SubNotify, a member message, a
# Super Fan barrage); within this window a viewer's later ones are stored, not dispatched.
SUBSCRIPTION_REPEAT_SECONDS = 60.0
SUBSCRIBERS_KEPT = 10_000  # past this many viewers remembered, those outside the window are forgotten


class RecentIds:
    """The last ``size`` message ids seen, for de-duplicating replays after a reconnect."""

    def __init__(self, size: int) -> None:
        self._order: collections.deque[int] = collections.deque()
        self._ids: set[int] = set()
        self._size = size

    def __contains__(self, msg_id: int) -> bool:
        return msg_id in self._ids

    def add(self, msg_id: int) -> bool:
        """Remember ``msg_id``; False if it was already there."""
        if msg_id in self._ids:
            return False
        self._ids.add(msg_id)
        self._order.append(msg_id)
        if len(self._order) > self._size:
            self._ids.discard(self._order.popleft())
        return True


class RecentSubscriptions:
    """Each viewer's last dispatched subscription: (message id, when received)."""

    def __init__(self, window: float = SUBSCRIPTION_REPEAT_SECONDS) -> None:
        self.window = window
        self._first: dict[str, tuple[int | None, float]] = {}

    def mark_repeat(self, captured: CapturedEvent) -> None:
        """A viewer's subscription again within the window: marked ``duplicate_of_msg_id``
        (the first one's message id), so it is stored but not dispatched."""
        viewer = captured.user_id or captured.user_unique_id
        if not viewer:
            return
        now = captured.received_mono
        first = self._first.get(viewer)
        if first is not None and now - first[1] < self.window:
            captured.event_data["duplicate_of_msg_id"] = first[0]
            return
        if len(self._first) >= SUBSCRIBERS_KEPT:
            self._first = {key: seen for key, seen in self._first.items() if now - seen[1] < self.window}
        self._first[viewer] = (captured.msg_id, now)
