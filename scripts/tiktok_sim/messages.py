"""Webcast messages built with TikTokLive's own protobuf classes.

One *message spec* (a small dict, see ``scenarios.py``) becomes one
``BaseProtoMessage`` (method name + serialized payload), exactly what TikTok
puts in ``ProtoMessageFetchResult.messages``.

Serializing with betterproto2 is slow (a ``User`` alone takes ~0.4 ms), so the
user part of a payload is serialized once per (message class, user) and
concatenated with the per-message part: protobuf defines the concatenation of
two encodings as the merge of the two messages, so the client parses the same
message it would parse from a single ``bytes(...)`` call.
"""

from __future__ import annotations

import itertools
import time
import zlib
from dataclasses import dataclass
from typing import Any

from TikTokLive.proto import (
    BaseProtoMessage,
    CommonMessageData,
    Gift,
    User,
    WebcastBarrageMessage,
    WebcastChatMessage,
    WebcastControlMessage,
    WebcastGiftMessage,
    WebcastLikeMessage,
    WebcastMemberMessage,
    WebcastRoomUserSeqMessage,
    WebcastSocialMessage,
    WebcastSubNotifyMessage,
)
from TikTokLiveProto.v3.webcast.im import ControlAction, MemberMessageAction
from TikTokLiveProto.v3.webcast.model.message.common import Text


@dataclass(frozen=True)
class GiftInfo:
    id: int
    name: str
    diamond_count: int
    streakable: bool  # TikTok gift type 1 = combo gift that streaks


# A few real gifts (ids and prices as TikTok lists them).
GIFTS: dict[str, GiftInfo] = {
    "rose": GiftInfo(5655, "Rose", 1, True),
    "tiktok": GiftInfo(5269, "TikTok", 1, True),
    "finger heart": GiftInfo(5487, "Finger Heart", 5, True),
    "doughnut": GiftInfo(5879, "Doughnut", 30, True),
    "galaxy": GiftInfo(11046, "Galaxy", 1000, False),
    "lion": GiftInfo(6369, "Lion", 29999, False),
    "universe": GiftInfo(7312, "TikTok Universe", 44999, False),
}

# Display-text keys TikTok puts on social messages; TikTokLive turns a
# WebcastSocialMessage into FollowEvent / ShareEvent by looking for
# "follow" / "share" in this key.
FOLLOW_KEY = "pm_main_follow_message_viewer_2"
SHARE_KEY = "pm_mt_guidance_share"

# How TikTok marks its Super Fan barrages (display type, text, sub type), as a real
# LIVE sends them: a viewer who became a Super Fan (a subscription), and an existing
# Super Fan entering the LIVE (not one).
SUPER_FAN_BECAME = ("ttlive_superFan_commentNotif_someoneBecameSuperFan", "{0:user} just became a Super Fan")
SUPER_FAN_JOINED = ("ttlive_superFan_commentNotif_superFanJoined", "Super Fan {0:user} joined")
SUBSCRIBE_VIA = ("subnotify", "superfan", "member")


def gift_info(spec: dict[str, Any]) -> GiftInfo:
    name = str(spec.get("gift", "Rose"))
    base = GIFTS.get(
        name.lower(), GiftInfo(spec.get("gift_id", 9000 + zlib.crc32(name.encode()) % 1000), name, 1, True)
    )
    return GiftInfo(
        id=int(spec.get("gift_id", base.id)),
        name=base.name if name.lower() in GIFTS else name,
        diamond_count=int(spec.get("diamond_count", base.diamond_count)),
        streakable=bool(spec.get("streakable", base.streakable)),
    )


def user_id_for(unique_id: str) -> int:
    """A stable numeric id for a handle, shaped like TikTok's 19-digit ids."""
    return 6_900_000_000_000_000_000 + zlib.crc32(unique_id.encode("utf-8", "surrogatepass"))


class MessageFactory:
    """Turns message specs into ``BaseProtoMessage`` for one room."""

    def __init__(self, room_id: int, first_msg_id: int) -> None:
        self.room_id = room_id
        self._msg_ids = itertools.count(first_msg_id)
        self._user_parts: dict[tuple[type, str, str, int], bytes] = {}
        self.like_total = 0

    def build(self, spec: dict[str, Any]) -> BaseProtoMessage:
        kind = spec["type"]
        builder = getattr(self, f"_build_{kind}", None)
        if builder is None:
            raise ValueError(f"unknown message type {kind!r}")
        return builder(spec)

    # -- helpers ---------------------------------------------------------------------------------

    def _common(self, method: str, display_key: str = "") -> tuple[int, CommonMessageData]:
        # Callers name the result ``header``, never ``common``: pydantic builds these
        # classes' schemas lazily and resolves their forward references (``common.Text``)
        # against the *caller's* local variables.
        msg_id = int(next(self._msg_ids))
        header = CommonMessageData(
            method=method,
            msg_id=msg_id,
            room_id=self.room_id,
            create_time=int(time.time() * 1000),
            display_text=Text(key=display_key) if display_key else None,
        )
        return msg_id, header

    def _user_part(self, cls: type, spec: dict[str, Any], field: str = "user") -> bytes:
        unique_id = str(spec.get("user", "viewer"))
        nickname = str(spec.get("nickname", unique_id))
        user_id = int(spec.get("user_id", user_id_for(unique_id)))
        key = (cls, unique_id, nickname, user_id)
        part = self._user_parts.get(key)
        if part is None:
            user = User(id=user_id, nickname=nickname, display_id=unique_id, sec_uid=f"MS4w{user_id:x}")
            part = bytes(cls(**{field: user}))
            self._user_parts[key] = part
        return part

    def _message(self, method: str, payload: bytes, msg_id: int) -> BaseProtoMessage:
        return BaseProtoMessage(method=method, payload=payload, msg_id=msg_id)

    # -- one builder per message spec type -------------------------------------------------------

    def _build_comment(self, spec: dict[str, Any]) -> BaseProtoMessage:
        msg_id, header = self._common("WebcastChatMessage")
        dynamic = bytes(WebcastChatMessage(common=header, content=str(spec.get("text", ""))))
        return self._message("WebcastChatMessage", self._user_part(WebcastChatMessage, spec) + dynamic, msg_id)

    def _build_gift(self, spec: dict[str, Any]) -> BaseProtoMessage:
        info = gift_info(spec)
        msg_id, header = self._common("WebcastGiftMessage")
        gift = Gift(id=info.id, name=info.name, diamond_count=info.diamond_count, type=1 if info.streakable else 2)
        message = WebcastGiftMessage(
            common=header,
            gift_id=info.id,
            gift=gift,
            repeat_count=int(spec.get("repeat_count", 1)),
            combo_count=int(spec.get("repeat_count", 1)),
            repeat_end=1 if spec.get("repeat_end", True) else 0,
            group_id=int(spec.get("group_id", 0)),
            fan_ticket_count=info.diamond_count,
        )
        if spec.get("to_user"):
            # A gift for someone on screen (a guest of a multi-guest LIVE, or the host named).
            handle = str(spec["to_user"])
            nickname = str(spec.get("to_nickname", handle))
            message.to_user = User(id=user_id_for(handle), nickname=nickname, display_id=handle)
            message.to_member_id = str(user_id_for(handle))
            message.to_member_nickname = nickname
        dynamic = bytes(message)
        return self._message("WebcastGiftMessage", self._user_part(WebcastGiftMessage, spec) + dynamic, msg_id)

    def _build_like(self, spec: dict[str, Any]) -> BaseProtoMessage:
        count = int(spec.get("count", 1))
        self.like_total += count
        # The room's total as TikTok states it: a running sum unless the step says otherwise
        # (``room_total``; an out-of-order or batched message can say less than the sum).
        total = int(spec.get("room_total", spec.get("total", self.like_total)))
        self.like_total = max(self.like_total, total)
        msg_id, header = self._common("WebcastLikeMessage")
        dynamic = bytes(WebcastLikeMessage(common=header, count=count, total=total))
        return self._message("WebcastLikeMessage", self._user_part(WebcastLikeMessage, spec) + dynamic, msg_id)

    def _build_follow(self, spec: dict[str, Any]) -> BaseProtoMessage:
        msg_id, header = self._common("WebcastSocialMessage", FOLLOW_KEY)
        dynamic = bytes(WebcastSocialMessage(common=header, action=1, follow_count=int(spec.get("follow_count", 1))))
        return self._message("WebcastSocialMessage", self._user_part(WebcastSocialMessage, spec) + dynamic, msg_id)

    def _build_share(self, spec: dict[str, Any]) -> BaseProtoMessage:
        msg_id, header = self._common("WebcastSocialMessage", SHARE_KEY)
        dynamic = bytes(WebcastSocialMessage(common=header, action=3, share_type=1, share_count=1))
        return self._message("WebcastSocialMessage", self._user_part(WebcastSocialMessage, spec) + dynamic, msg_id)

    def _build_join(self, spec: dict[str, Any]) -> BaseProtoMessage:
        msg_id, header = self._common("WebcastMemberMessage")
        dynamic = bytes(
            WebcastMemberMessage(
                common=header, action=MemberMessageAction.JOINED, member_count=int(spec.get("member_count", 0))
            )
        )
        return self._message("WebcastMemberMessage", self._user_part(WebcastMemberMessage, spec) + dynamic, msg_id)

    def _build_subscribe(self, spec: dict[str, Any]) -> BaseProtoMessage:
        via = spec.get("via", "subnotify")
        if via == "superfan":
            return self._super_fan(spec, SUPER_FAN_BECAME, "BecomingSuperFanLv1")
        if via == "member":
            msg_id, header = self._common("WebcastMemberMessage")
            dynamic = bytes(WebcastMemberMessage(common=header, action=MemberMessageAction.SUBSCRIBED))
            part = self._user_part(WebcastMemberMessage, spec)
            return self._message("WebcastMemberMessage", part + dynamic, msg_id)
        if via != "subnotify":
            raise ValueError(f"subscribe via {via!r}: use one of {', '.join(SUBSCRIBE_VIA)}")
        msg_id, header = self._common("WebcastSubNotifyMessage")
        dynamic = bytes(WebcastSubNotifyMessage(common=header, sub_month=int(spec.get("sub_month", 1))))
        return self._message(
            "WebcastSubNotifyMessage", self._user_part(WebcastSubNotifyMessage, spec) + dynamic, msg_id
        )

    def _build_superfan_join(self, spec: dict[str, Any]) -> BaseProtoMessage:
        return self._super_fan(spec, SUPER_FAN_JOINED, "fans_entrance")

    def _build_barrage(self, spec: dict[str, Any]) -> BaseProtoMessage:
        # A banner TikTokLive has no event of its own for (a BarrageEvent): a generic event.
        msg_id, header = self._common("WebcastBarrageMessage")
        text = Text(key=str(spec.get("display_type", "pm_mt_notice")), default_pattern=str(spec.get("text", "")))
        dynamic = bytes(WebcastBarrageMessage(common=header, content=text))
        return self._message("WebcastBarrageMessage", self._user_part(WebcastBarrageMessage, spec) + dynamic, msg_id)

    def _super_fan(self, spec: dict[str, Any], marker: tuple[str, str], sub_type: str) -> BaseProtoMessage:
        """A WebcastBarrageMessage with TikTok's Super Fan marker as its display type
        (``Text.key``: field 1, ``display_type`` in older protos) in both places it can be."""
        display_type, pattern = marker
        msg_id, header = self._common("WebcastBarrageMessage")
        dynamic = bytes(
            WebcastBarrageMessage(
                common=header,
                content=Text(key=display_type, default_pattern=pattern),
                common_barrage_content=Text(key=display_type, default_pattern=pattern),
                sub_type=sub_type,
            )
        )
        return self._message("WebcastBarrageMessage", self._user_part(WebcastBarrageMessage, spec) + dynamic, msg_id)

    def _build_viewers(self, spec: dict[str, Any]) -> BaseProtoMessage:
        msg_id, header = self._common("WebcastRoomUserSeqMessage")
        total = int(spec.get("total", 100))
        payload = bytes(WebcastRoomUserSeqMessage(common=header, total=total, total_user=total))
        return self._message("WebcastRoomUserSeqMessage", payload, msg_id)

    def _build_end(self, spec: dict[str, Any]) -> BaseProtoMessage:
        msg_id, header = self._common("WebcastControlMessage")
        payload = bytes(WebcastControlMessage(common=header, action=ControlAction.STREAM_ENDED, tips="LIVE ended"))
        return self._message("WebcastControlMessage", payload, msg_id)

    def _build_unknown(self, spec: dict[str, Any]) -> BaseProtoMessage:
        # A method TikTokLive has no class for: it must surface as UnknownEvent, not crash.
        msg_id, header = self._common(str(spec.get("method", "WebcastBrandNewFeatureMessage")))
        return self._message(header.method, bytes(WebcastChatMessage(common=header, content="?")), msg_id)

    def _build_truncated(self, spec: dict[str, Any]) -> BaseProtoMessage:
        # A chat payload cut inside a multi-byte character: the client's parse fails
        # (invalid UTF-8), logs the error and must skip only this message.
        msg_id, header = self._common("WebcastChatMessage")
        payload = bytes(WebcastChatMessage(common=header, content="cut here → 🌹🌹🌹"))
        return self._message("WebcastChatMessage", payload[:-2], msg_id)
