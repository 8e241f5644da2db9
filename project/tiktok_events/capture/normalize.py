"""TikTokLive events → ``CapturedEvent``: the seeds' type names, user fields, event_data.

``event_data`` keeps what services use (``event_data["gift"]["name"]``,
``event_data["comment"]`` as in the seeds' custom-service example) in plain
JSON; anything TikTok sends that we do not model is stored under its own
class name with its fields, and a message no event came out of (a method
TikTokLive does not know, a payload it could not parse) as ``UnknownEvent`` /
``UnparsedEvent`` with its raw payload: nothing TikTok sends is dropped.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from TikTokLiveProto.v3.webcast.im import MemberMessageAction

from project.tiktok_events.capture.text_cleaning import clean_nickname, clean_text, db_safe

log = logging.getLogger("capture")

# Every way TikTok says "subscribed" is one SubscribeEvent, so a service reacts to
# all of them with one config; the class TikTokLive emitted is kept in
# event_data["tiktok_type"]. A WebcastMemberMessage with action SUBSCRIBED is
# emitted as JoinEvent (see ``seeds_type_name``). Not subscriptions, so kept under
# their own names: SuperFanJoinEvent (an existing Super Fan entering the LIVE, as
# TikTokLive's own docstring says) and SuperFanBoxEvent (a treasure box of coins).
SUBSCRIBE = "SubscribeEvent"
SUBSCRIPTION_CLASSES = {"SubNotifyEvent", "SuperFanEvent"}

# The Super Fan markers TikTok puts in a WebcastBarrageMessage's display type
# (``ttlive_superFan_commentNotif_someoneBecameSuperFan`` / ``..._superFanJoined``),
# compared in lower case as TikTokLive does.
SUPER_FAN_JOINED = "ttlive_superfan_commentnotif_superfanjoined"
SUPER_FAN = "ttlive_superfan"
SUPER_FAN_BOX = "ttlive_superfanbox"

# Events TikTokLive emits about the connection itself, not about the live. (Its
# UnknownEvent is one too: the message behind it is stored by ``raw_message``.)
TRANSPORT_EVENTS = {"ConnectEvent", "DisconnectEvent", "WebsocketResponseEvent", "UnknownEvent"}

# Messages no event came out of, by CaptureClient's reason: stored, never dispatched.
RAW_MESSAGE_TYPES = {"unknown": "UnknownEvent", "unparsed": "UnparsedEvent"}

# An unmodelled event keeps all its fields up to this much JSON (UTF-8 bytes). A
# bigger one keeps its field names and the raw protobuf payload instead (smaller
# than its JSON, and parseable again with TikTokLive's class), up to the same size
# in base64; only a payload beyond that is cut (``payload_truncated``).
MAX_GENERIC_JSON = 64 * 1024
MAX_RAW_PAYLOAD = MAX_GENERIC_JSON * 3 // 4  # bytes whose base64 is MAX_GENERIC_JSON long


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


@dataclass
class Host:
    """The streamer the capture watches: tells a gift for the host from one for a guest.

    Known by @handle; the numeric id is learnt from the first recipient with that
    handle, for gifts that name their recipient by id only (``to_member_id``).
    Without a handle every gift counts as the host's (services react as before).
    """

    username: str = ""
    user_ids: set[str] = field(default_factory=set)

    def owns(self, user_id: str, unique_id: str) -> bool:
        handle = self.username.lstrip("@").lower()
        if not handle:
            return True
        if unique_id:
            if unique_id.lower() != handle:
                return False
            if user_id:
                self.user_ids.add(user_id)
            return True
        return user_id in self.user_ids


def seeds_type_name(event: Any) -> str:
    name = tiktok_type(event)
    if name in SUBSCRIPTION_CLASSES:
        return SUBSCRIBE
    if name == "JoinEvent" and getattr(event, "action", None) == MemberMessageAction.SUBSCRIBED:
        return SUBSCRIBE
    return name


def tiktok_type(event: Any) -> str:
    """TikTokLive's class for the event; for a BarrageEvent, the Super Fan class it derives from it.

    TikTokLive 7.0.1 reads the Super Fan marker from ``Text.display_type``, a field its
    v3 protos renamed ``key``: it never emits SuperFanEvent / SuperFanJoinEvent, only the
    BarrageEvent. The marker is read here from both names, so a fixed TikTokLive (which
    emits the Super Fan event first, the BarrageEvent after it with the same message id)
    and this one store the same row.
    """
    name = type(event).__name__
    if name == "BarrageEvent":
        return super_fan_class(event) or name
    return name


def super_fan_class(event: Any) -> str | None:
    markers = [_display_type(event.content).lower(), _display_type(event.common_barrage_content).lower()]
    if any(SUPER_FAN_JOINED in marker for marker in markers):
        return "SuperFanJoinEvent"
    if any(SUPER_FAN in marker and SUPER_FAN_BOX not in marker for marker in markers):
        return "SuperFanEvent"
    return None


def _display_type(text: Any) -> str:
    if text is None:
        return ""
    return str(getattr(text, "display_type", None) or getattr(text, "key", None) or "")


def normalize(
    event: Any, *, frame_sent_ms: int | None = None, host: Host | None = None, payload: bytes | None = None
) -> CapturedEvent:
    """Build the ``CapturedEvent`` for one TikTokLive event object.

    ``host``: who the live belongs to (a gift's ``to_user.is_host``); ``payload``: the
    raw message the event was parsed from, kept for an unmodelled event too big to
    keep as JSON.
    """
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
    extractor = _EXTRACTORS.get(event_type)
    if extractor is None:
        captured.event_data = generic_data(event, payload)
    else:
        captured.event_data = extractor(event, captured)
    if event_type == "GiftEvent":
        captured.event_data["to_user"] = recipient(event, host or Host())
    return captured


def is_news(captured: CapturedEvent) -> bool:
    """False for what is stored but not new to react to or announce: TikTok's history (sent
    again on every connect) and a subscription already announced another way."""
    data = captured.event_data
    return not data.get("is_history") and "duplicate_of_msg_id" not in data


def raw_message(message: Any, reason: str, *, frame_sent_ms: int | None = None) -> CapturedEvent:
    """The ``CapturedEvent`` of a message no event came out of (``reason``: unknown | unparsed)."""
    payload = bytes(message.payload or b"")
    return CapturedEvent(
        event_type=RAW_MESSAGE_TYPES[reason],
        msg_id=int(message.msg_id) if message.msg_id else None,
        user_id="",
        user_unique_id="",
        user_nickname="",
        user_nickname_raw="",
        event_data={"method": db_safe(message.method or ""), **_payload_fields(payload, limit=None)},
        received_at=dt.datetime.now(dt.UTC),
        frame_sent_ms=frame_sent_ms,
    )


def _payload_fields(payload: bytes, *, limit: int | None) -> dict[str, Any]:
    kept = payload if limit is None else payload[:limit]
    fields: dict[str, Any] = {"payload_b64": base64.b64encode(kept).decode("ascii"), "payload_bytes": len(payload)}
    if len(kept) < len(payload):
        fields["payload_truncated"] = True
    return fields


def recipient(event: Any, host: Host) -> dict[str, Any]:
    """Whom a gift is for: the host, or a guest of a multi-guest LIVE (``to_user`` or ``to_member_*``)."""
    to = event.to_user
    user_id = str(to.id) if to is not None and to.id else ""
    user_id = user_id or event.to_member_id or (str(event.to_member_id_int) if event.to_member_id_int else "")
    unique_id = db_safe(to.display_id)[:100] if to is not None and to.display_id else ""
    nickname = db_safe(to.nickname if to is not None and to.nickname else event.to_member_nickname or "")
    is_host = not (user_id or unique_id) or host.owns(user_id, unique_id)
    return {"id": user_id, "unique_id": unique_id, "nickname": nickname[:200], "is_host": is_host}


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
    kind = tiktok_type(event)
    if kind == "SubNotifyEvent":
        return {"tiktok_type": kind, "sub_month": int(event.sub_month or 0)}
    if kind == "JoinEvent":
        return {"tiktok_type": kind, "member_action": "SUBSCRIBED"}
    return _super_fan_data(event, captured)


def _super_fan_data(event: Any, captured: CapturedEvent) -> dict[str, Any]:
    """A Super Fan barrage: the class, TikTok's marker and its text ("{0:user} just became a Super Fan")."""
    text = event.content or event.common_barrage_content
    data: dict[str, Any] = {"tiktok_type": tiktok_type(event), "display_type": db_safe(_display_type(text))}
    if text is not None and text.default_pattern:
        data["text"] = db_safe(text.default_pattern)
    return data


def _control_data(event: Any, captured: CapturedEvent) -> dict[str, Any]:
    action = getattr(event, "action", None)
    return {"action": getattr(action, "name", str(action)), "tips": db_safe(getattr(event, "tips", "") or "")}


def _viewers_data(event: Any, captured: CapturedEvent) -> dict[str, Any]:
    return {"viewers": int(event.total or 0), "total_user": int(event.total_user or 0)}


def generic_data(event: Any, payload: bytes | None = None) -> dict[str, Any]:
    """An unmodelled event's fields (its user and header are columns already), or, past
    MAX_GENERIC_JSON, their names and the raw payload (see MAX_GENERIC_JSON)."""
    try:
        fields = _fields(event, payload)
    except Exception as exc:  # an odd message must not stop the capture
        log.warning("could not read an event's fields", extra={"event_type": type(event).__name__}, exc_info=True)
        data: dict[str, Any] = {"unparsed": type(exc).__name__}
        return data | (_payload_fields(payload, limit=MAX_RAW_PAYLOAD) if payload is not None else {})
    fields.pop("common", None)
    fields.pop("user", None)
    text = db_safe(json.dumps(fields, ensure_ascii=False, default=str))
    if len(text.encode()) <= MAX_GENERIC_JSON:
        return {"fields": json.loads(text)}
    data = {"fields_truncated": True, "keys": sorted(fields), "json_bytes": len(text.encode())}
    return data | (_payload_fields(payload, limit=MAX_RAW_PAYLOAD) if payload is not None else {})


def _fields(event: Any, payload: bytes | None) -> dict[str, Any]:
    """``to_dict()`` of the message as TikTokLiveProto's own class parses it.

    TikTokLive's event classes retype their user fields as ``ExtendedUser``, whose
    ``to_dict`` fails (betterproto2 resolves ``User``'s annotations in the module of
    the subclass, which lacks ``typing``): every generic event with a user would be
    kept as a NameError. The protobuf class the event extends has plain ``User``s.
    """
    proto = next((cls for cls in type(event).__mro__ if cls.__module__.startswith("TikTokLiveProto.")), None)
    if proto is None or payload is None:
        return event.to_dict()
    return proto().parse(payload).to_dict()


_EXTRACTORS = {
    "GiftEvent": _gift_data,
    "CommentEvent": _comment_data,
    "LikeEvent": _like_data,
    "FollowEvent": _follow_data,
    "ShareEvent": _share_data,
    "JoinEvent": _join_data,
    "SubscribeEvent": _subscribe_data,
    "SuperFanJoinEvent": _super_fan_data,
    "LiveEndEvent": _control_data,
    "LivePauseEvent": _control_data,
    "LiveUnpauseEvent": _control_data,
    "ControlEvent": _control_data,
    "RoomUserSeqEvent": _viewers_data,
}
