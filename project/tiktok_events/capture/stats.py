"""What a capture run counts and measures: the summary's figures, how far behind the live it is."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from project.tiktok_events.capture.latency import LatencyHistogram

BEHIND_WARN_SECONDS = 3.0  # say so when the capture is this far behind the live
CAUGHT_UP_SECONDS = 1.0  # ... and again once it is back under this
BEHIND_REPEAT_SECONDS = 30.0  # while it stays behind, at most one warning per this many seconds


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
    priority_batches: int = 0  # of them, through the priority lane (pipeline.py)
    write_retries: int = 0
    spilled: int = 0  # events written to the spill file while PostgreSQL was away
    backlog_max: int = 0  # the most events waiting in memory at once
    # Likes: TikTok's room-wide total (WebcastLikeMessage.total, the highest seen: exact,
    # as TikTok counts it) and the sum of the like messages' counts (a lower bound:
    # TikTok batches likes into messages and does not send every one).
    likes_room_total: int = 0
    likes_counted: int = 0
    # Milliseconds from the frame's send time (ProtoMessageFetchResult.now) to the
    # broker's confirmation of its QueueItems; and from our handler to the same.
    # Histograms: fixed memory however long the live (see latency.py).
    frame_to_confirm_ms: LatencyHistogram = field(default_factory=LatencyHistogram)
    handler_to_confirm_ms: LatencyHistogram = field(default_factory=LatencyHistogram)
    # Per batch, in the writer: its transaction (rows, QueueItems, commit), and publishing its
    # items until RabbitMQ confirmed them: where a slow disk or a busy broker shows.
    store_ms: LatencyHistogram = field(default_factory=LatencyHistogram)
    confirm_ms: LatencyHistogram = field(default_factory=LatencyHistogram)
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
            "priority_batches": self.priority_batches,
            "write_retries": self.write_retries,
            "events_spilled": self.spilled,
            "backlog_max_events": self.backlog_max,
            "likes_room_total": self.likes_room_total,
            "likes_counted": self.likes_counted,
            "events_per_s": round(confirmed / span, 1) if span > 0 else None,
            "frame_to_confirm_ms": self.frame_to_confirm_ms.summary(),
            "handler_to_confirm_ms": self.handler_to_confirm_ms.summary(),
            "store_ms": self.store_ms.summary(),
            "confirm_ms": self.confirm_ms.summary(),
            "behind_max_ms": round(self.behind.max_ms, 1),
            "behind_warnings": self.behind.warnings,
        }
