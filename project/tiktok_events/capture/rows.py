"""``EventRow``: a LiveEvent the capture owns between receiving and writing it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from project.tiktok_events.capture.normalize import CapturedEvent
from project.tiktok_events.models import LiveEvent

Streak = LiveEvent.Streak


@dataclass(eq=False)
class EventRow:
    """One LiveEvent row: inserted once, then possibly updated (a gift streak growing).

    Only the asyncio side touches it: the writer gets ``snapshot()`` copies
    taken when a batch is cut, and ``pk`` is set from the writer's result.
    """

    event: CapturedEvent
    streak_status: str = Streak.NONE
    pk: int | None = None
    last_seen: float = field(default_factory=time.monotonic)
    dispatched: bool = False
    seq: int = 0  # the pipeline's count of rows queued before this one (arrival order)
    priority: bool = False  # stored and published in the priority lane (pipeline.py)

    def snapshot(self) -> dict[str, Any]:
        event = self.event
        return {
            "event_type": event.event_type,
            "msg_id": event.msg_id,
            "user_id": event.user_id,
            "user_unique_id": event.user_unique_id,
            "user_nickname": event.user_nickname[:200],
            "user_nickname_raw": event.user_nickname_raw,
            "event_data": dict(event.event_data),
            "streak_status": self.streak_status,
            "repeat_count": event.repeat_count,
            "received_at": event.received_at,
        }
