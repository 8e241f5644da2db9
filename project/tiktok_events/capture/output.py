"""What the capture prints: the seeds' lines (in English, like the rest of the product's output)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    # normalize imports TikTokLive's protobufs (about 2 s): the capture command starts the
    # simulator before it needs them, so both load at once.
    from project.tiktok_events.capture.normalize import CapturedEvent


def event_line(event: CapturedEvent) -> str | None:
    """One console line per event, as in the seeds (``💬 usuario123: Hola!``, ``🎁 usuario456 sent Rose x1``).

    None for what is not news: TikTok's history (sent again on connect) and a
    subscription already announced another way.
    """
    from project.tiktok_events.capture.normalize import is_news

    if not is_news(event):
        return None
    who = event.user_nickname or event.user_unique_id or "?"
    data = event.event_data
    match event.event_type:
        case "CommentEvent":
            return f"💬 {who}: {data.get('comment', '')}"
        case "GiftEvent":
            return f"🎁 {who} sent {data.get('gift', {}).get('name', '?')} x{event.repeat_count}{_to_guest(data)}"
        case "LikeEvent":
            count = int(data.get("count", 1))
            return f"❤️ {who} liked" if count == 1 else f"❤️ {who} sent {count} likes"
        case "FollowEvent":
            return f"➕ {who} followed"
        case "ShareEvent":
            return f"🔁 {who} shared the live"
        case "JoinEvent":
            return f"👋 {who} joined"
        case "SubscribeEvent":
            return f"⭐ {who} subscribed"
        case "LiveEndEvent":
            return "🔚 The LIVE has ended"
    return None


def _to_guest(data: dict) -> str:
    """`` to @guest`` for a gift sent to a guest of a multi-guest LIVE, else nothing."""
    to_user = data.get("to_user") or {}
    if to_user.get("is_host", True):
        return ""
    name = to_user.get("unique_id")
    return f" to @{name}" if name else f" to {to_user.get('nickname') or 'a guest'}"


class CaptureOutput:
    """Console output of a capture run; ``events=False`` keeps only the status lines."""

    def __init__(self, stream: TextIO | None = None, *, events: bool = True) -> None:
        self.stream = stream or sys.stdout
        self.events = events

    def line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def event(self, event: CapturedEvent) -> None:
        if self.events:
            text = event_line(event)
            if text:
                self.line(text)

    def starting(self, username: str) -> None:
        self.line(f"🔌 Starting event capture for @{username}...")

    def connected(self, username: str, room_id: str) -> None:
        self.line(f"✅ Connected to @{username} - Room ID: {room_id}")

    def session_created(self, session_id: int, name: str) -> None:
        self.line(f"📝 Session created: #{session_id} - {name or 'Unnamed'}")

    def reconnecting(self, reason: str, delay: float, attempt: int) -> None:
        self.line(f"🔄 Connection lost ({reason}). Reconnect attempt {attempt} in {delay:.1f} s...")

    def reconnected(self, username: str, room_id: str) -> None:
        self.line(f"✅ Reconnected to @{username} - Room ID: {room_id}")

    def warning(self, text: str) -> None:
        self.line(f"⚠️  {text}")

    def behind(self, change: str, seconds: float) -> None:
        if change == "behind":
            self.warning(
                f"The capture is {seconds:.1f} s behind the live: events arrive faster than this machine "
                "stores and queues them, or the connection held them up. Services react that much later; "
                "check the CPU, PostgreSQL and RabbitMQ (python manage.py doctor)."
            )
        else:
            self.line(f"✅ The capture caught up with the live (now {seconds:.1f} s behind)")

    def finished(self, session_id: int, stored: int, reason: str, likes_room_total: int = 0) -> None:
        likes = f", {likes_room_total} likes in the room (TikTok's total)" if likes_room_total else ""
        self.line(f"🏁 Session #{session_id} ended ({reason}): {stored} events stored{likes}")
