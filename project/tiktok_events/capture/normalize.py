"""TikTokLive events → ``CapturedEvent``: the seeds' type names, user fields, event_data.

``event_data`` keeps what services use (``event_data["gift"]["name"]``,
``event_data["comment"]`` as in the seeds' custom-service example) in plain
JSON; anything TikTok sends that we do not model is stored under its own
class name with a compact dump of its fields.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from typing import Any

from project.tiktok_events.capture.text_cleaning import clean_nickname, clean_text, db_safe

# TikTokLive's class names that the seeds call differently.
TYPE_NAMES = {"SubNotifyEvent": "SubscribeEvent"}

# Events TikTokLive emits about the connection itself, not about the live.
TRANSPORT_EVENTS = {"ConnectEvent", "DisconnectEvent", "WebsocketResponseEvent", "UnknownEvent"}

# Compact dumps of unmodelled events are capped so one odd message cannot bloat a row.
MAX_GENERIC_JSON = 4000


@dataclass
class CapturedEvent:
    """One TikTok message, normalised, waiting to be stored."""

    event_type: str
    msg_id: int | None
    user_id: str
    user_unique_id: str
    user_nickname: str
    user_nickname_raw: str
    event_data: dict[str, Any]
    received_at: dt.datetime
    received_mono: float = field(default_factory=time.monotonic)
    # ProtoMessageFetchResult.now of the frame that carried it (ms since epoch), if known.
    frame_sent_ms: int | None = None
    # Gift streak fields (GiftEvent only).
    streakable: bool = False
    streak_end: bool = True
    repeat_count: int = 1
    group_id: int = 0

    @property
    def streak_key(self) -> tuple[str, int, int]:
        return (self.user_id or self.user_unique_id, int(self.event_data.get("gift", {}).get("id", 0)), self.group_id)


def seeds_type_name(event: Any) -> str:
    name = type(event).__name__
    return TYPE_NAMES.get(name, name)


def normalize(event: Any, *, frame_sent_ms: int | None = None) -> CapturedEvent:
    """Build the ``CapturedEvent`` for one TikTokLive event object."""
    event_type = seeds_type_name(event)
    header = getattr(event, "common", None)
    msg_id = int(header.msg_id) if header is not None and header.msg_id else None
    user = getattr(event, "user", None)
    user_id = str(user.id) if user is not None and user.id else ""
    unique_id = db_safe(user.display_id) if user is not None and user.display_id else ""
    raw_nickname = user.nickname if user is not None and user.nickname else ""
    captured = CapturedEvent(
        event_type=event_type,
        msg_id=msg_id,
        user_id=user_id,
        user_unique_id=unique_id[:100],
        user_nickname=clean_nickname(raw_nickname, unique_id) if (raw_nickname or unique_id) else "",
        user_nickname_raw=db_safe(raw_nickname),
        event_data={},
        received_at=dt.datetime.now(dt.UTC),
        frame_sent_ms=frame_sent_ms,
    )
    extractor = _EXTRACTORS.get(event_type, _generic_data)
    captured.event_data = extractor(event, captured)
    return captured


def _gift_data(event: Any, captured: CapturedEvent) -> dict[str, Any]:
    gift = event.gift
    gift_id = int(event.gift_id or (gift.id if gift is not None else 0))
    name = db_safe(gift.name) if gift is not None and gift.name else f"gift {gift_id}"
    diamonds = int(gift.diamond_count) if gift is not None else 0
    # TikTok gift type 1 is a combo gift: it arrives as a streak of repeats.
    captured.streakable = bool(gift is not None and gift.type == 1)
    captured.streak_end = bool(event.repeat_end) or not captured.streakable
    captured.repeat_count = max(1, int(event.repeat_count or 1))
    captured.group_id = int(event.group_id or 0)
    return {
        "gift": {"id": gift_id, "name": name, "diamond_count": diamonds, "streakable": captured.streakable},
        "repeat_count": captured.repeat_count,
        "repeat_end": captured.streak_end,
        "group_id": str(captured.group_id),
        "diamonds_total": diamonds * captured.repeat_count,
    }


def _comment_data(event: Any, captured: CapturedEvent) -> dict[str, Any]:
    raw = event.content or ""
    data: dict[str, Any] = {"comment": clean_text(raw), "comment_raw": db_safe(raw)}
    if event.content_language:
        data["language"] = event.content_language
    return data


def _like_data(event: Any, captured: CapturedEvent) -> dict[str, Any]:
    # user_total / session_total are added by the pipeline, which keeps the running totals.
    return {"count": int(event.count or 0), "room_total": int(event.total or 0)}


def _follow_data(event: Any, captured: CapturedEvent) -> dict[str, Any]:
    return {"follow_count": int(event.follow_count or 0)}


def _share_data(event: Any, captured: CapturedEvent) -> dict[str, Any]:
    return {"share_type": int(event.share_type or 0), "users_joined": event.users_joined}


def _join_data(event: Any, captured: CapturedEvent) -> dict[str, Any]:
    return {"member_count": int(event.member_count or 0)}


def _subscribe_data(event: Any, captured: CapturedEvent) -> dict[str, Any]:
    return {"sub_month": int(event.sub_month or 0)}


def _control_data(event: Any, captured: CapturedEvent) -> dict[str, Any]:
    action = getattr(event, "action", None)
    return {"action": getattr(action, "name", str(action)), "tips": db_safe(getattr(event, "tips", "") or "")}


def _viewers_data(event: Any, captured: CapturedEvent) -> dict[str, Any]:
    return {"viewers": int(event.total or 0), "total_user": int(event.total_user or 0)}


def _generic_data(event: Any, captured: CapturedEvent) -> dict[str, Any]:
    try:
        fields = event.to_dict()
    except Exception as exc:  # an odd message must not stop the capture
        return {"unparsed": type(exc).__name__}
    fields.pop("common", None)
    fields.pop("user", None)
    text = db_safe(json.dumps(fields, ensure_ascii=False, default=str))
    if len(text) > MAX_GENERIC_JSON:
        return {"fields_truncated": True, "keys": sorted(fields)[:50]}
    return {"fields": json.loads(text)}


_EXTRACTORS = {
    "GiftEvent": _gift_data,
    "CommentEvent": _comment_data,
    "LikeEvent": _like_data,
    "FollowEvent": _follow_data,
    "ShareEvent": _share_data,
    "JoinEvent": _join_data,
    "SubscribeEvent": _subscribe_data,
    "LiveEndEvent": _control_data,
    "LivePauseEvent": _control_data,
    "LiveUnpauseEvent": _control_data,
    "ControlEvent": _control_data,
    "RoomUserSeqEvent": _viewers_data,
}
