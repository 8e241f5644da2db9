"""The ``start_event_system`` dashboard: the seeds' statistics block.

On a terminal it is a live view: the block stays pinned at the top of the
screen (the lines below it scroll inside a VT100 scroll region) and is
redrawn in place. Anywhere else (a pipe, a log file, docker logs) it is
printed as a plain block each time.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass, field
from typing import TextIO

from project.moderation.counts import ModerationCounts

LINE = "=" * 70


@dataclass
class LikeTotals:
    """A session's likes, two ways.

    ``room_total``: TikTok's own total for the room (``WebcastLikeMessage.total``),
    exact. ``counted``: the sum of the like messages' counts the capture received, a
    lower bound (TikTok batches likes into messages and does not send every one).
    """

    room_total: int
    counted: int

    @classmethod
    def of(cls, stats) -> LikeTotals | None:
        """From a capture's stats (``CaptureStats``); None before the session's first like."""
        if not (stats.likes_room_total or stats.likes_counted):
            return None
        return cls(room_total=stats.likes_room_total, counted=stats.likes_counted)


@dataclass
class ServiceRow:
    name: str
    worker_up: bool
    pending: int
    processing: int
    async_threads: int | None  # busy pool threads (ASYNC services only)


@dataclass
class DashboardData:
    uptime_seconds: float
    session_id: int | None
    events_captured: int
    services: list[ServiceRow] = field(default_factory=list)
    note: str = ""
    behind_seconds: float | None = None  # set while the capture is behind the live
    likes: LikeTotals | None = None  # set once the session has a like (LikeTotals.of)
    moderation: ModerationCounts | None = None  # the session's filtered items (docs/moderation.md)


def render(data: DashboardData) -> list[str]:
    seconds = int(data.uptime_seconds)
    lines = [
        LINE,
        "📊 SYSTEM STATISTICS",
        LINE,
        f"⏱️  Uptime: {seconds // 3600}h {seconds % 3600 // 60}m {seconds % 60}s",
        f"🆔 Session ID: {data.session_id if data.session_id is not None else '-'}",
        f"📊 Events captured: {data.events_captured}",
        f"🔧 Workers active: {sum(1 for s in data.services if s.worker_up)}/{len(data.services)}",
    ]
    if data.likes is not None:
        lines.insert(-1, f"❤️  Likes in the room: {data.likes.room_total:,} (TikTok's total, exact)")
        lines.insert(-1, f"❤️  Likes received: {data.likes.counted:,} (sum of like messages, a lower bound)")
    if data.moderation is not None:
        m = data.moderation
        lines.insert(
            -1,
            f"🛡️  Moderated: {m.total} ({m.comments} comment(s) blocked, {m.nicknames} nickname(s) masked, "
            f"{m.replies} reply(ies) dropped)",
        )
    if data.behind_seconds is not None:
        lines.insert(-1, f"⚠️  Capture behind the live: {data.behind_seconds:.1f} s")
    for service in data.services:
        lines.append(f"{'🟢' if service.worker_up else '🔴'} {service.name}")
        lines.append(f"  • Pending: {service.pending}   • Processing: {service.processing}")
        if service.async_threads is not None:
            lines[-1] += f"   • Async threads: {service.async_threads}"
    if data.note:
        lines.append(data.note)
    lines.append(LINE)
    return lines


class LockedStream:
    """A text stream shared by threads (worker output readers, capture, dashboard)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lock = threading.RLock()

    def write(self, text: str) -> int:
        with self.lock:
            written = self.stream.write(text)
            self.stream.flush()
            return written

    def flush(self) -> None:
        with self.lock:
            self.stream.flush()

    def isatty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())


class Dashboard:
    def __init__(self, stream: LockedStream, *, live: bool | None = None) -> None:
        self.stream = stream
        self.live = stream.isatty() if live is None else live
        self._height = 0

    def show(self, data: DashboardData) -> None:
        lines = render(data)
        if not self.live:
            self.stream.write("\n" + "\n".join(lines) + "\n")
            return
        rows = shutil.get_terminal_size((100, 40)).lines
        with self.stream.lock:
            if len(lines) != self._height:
                # Pin the block: everything else scrolls in the region below it.
                self._height = len(lines)
                self.stream.write(f"\x1b[{min(self._height + 1, rows - 1)};{rows}r\x1b[{rows};1H")
            # Save the cursor, draw at the top (clearing each line), restore.
            drawn = "".join(f"\x1b[{n};1H\x1b[2K{text}" for n, text in enumerate(lines, 1))
            self.stream.write(f"\x1b7{drawn}\x1b8")

    def close(self) -> None:
        if self.live and self._height:
            rows = shutil.get_terminal_size((100, 40)).lines
            self.stream.write(f"\x1b[r\x1b[{rows};1H\n")
            self._height = 0
