"""TikTokLive events for unit tests, made the way the client makes them: a
webcast message serialized with TikTokLive's protobuf classes, then parsed by
the event class the client would pick for it.

(Local variables are never called ``common``: pydantic resolves these
classes' forward references, such as ``common.Text``, in the caller's scope.)
"""

from __future__ import annotations

import itertools
import zlib

import betterproto2
from TikTokLive.events import BarrageEvent, CommentEvent, FollowEvent, GiftEvent, LikeEvent, SubNotifyEvent
from TikTokLive.proto import (
    CommonMessageData,
    Gift,
    User,
    WebcastBarrageMessage,
    WebcastChatMessage,
    WebcastGiftMessage,
    WebcastLikeMessage,
    WebcastSocialMessage,
    WebcastSubNotifyMessage,
)
from TikTokLiveProto.v3.webcast.model.message.common import Text

_ids = itertools.count(10_000)


def _header(method: str, msg_id: int | None = None, key: str = "") -> CommonMessageData:
    return CommonMessageData(
        method=method,
        msg_id=msg_id if msg_id is not None else next(_ids),
        room_id=7,
        display_text=Text(key=key) if key else None,
    )


def _user(handle: str, nickname: str | None = None, user_id: int = 0) -> User:
    return User(
        id=user_id or 6_900_000_000_000 + zlib.crc32(handle.encode()), nickname=nickname or handle, display_id=handle
    )


def comment(handle: str, text: str, nickname: str | None = None, msg_id: int | None = None) -> CommentEvent:
    message = WebcastChatMessage(
        common=_header("WebcastChatMessage", msg_id), user=_user(handle, nickname), content=text
    )
    return CommentEvent().parse(bytes(message))


def gift(
    handle: str,
    *,
    name: str = "Rose",
    gift_id: int = 5655,
    diamonds: int = 1,
    streakable: bool = True,
    repeat_count: int = 1,
    repeat_end: bool = True,
    group_id: int = 1,
    msg_id: int | None = None,
    to_user: str = "",
    to_member_id: str = "",
) -> GiftEvent:
    """``to_user``: the recipient's handle; ``to_member_id``: the recipient named by id only."""
    message = WebcastGiftMessage(
        common=_header("WebcastGiftMessage", msg_id),
        user=_user(handle),
        gift_id=gift_id,
        gift=Gift(id=gift_id, name=name, diamond_count=diamonds, type=1 if streakable else 2),
        repeat_count=repeat_count,
        repeat_end=1 if repeat_end else 0,
        group_id=group_id,
        to_user=_user(to_user) if to_user else None,
        to_member_id=to_member_id,
    )
    return GiftEvent().parse(bytes(message))


def like(handle: str, count: int, total: int = 0) -> LikeEvent:
    message = WebcastLikeMessage(common=_header("WebcastLikeMessage"), user=_user(handle), count=count, total=total)
    return LikeEvent().parse(bytes(message))


def follow(handle: str, msg_id: int | None = None) -> FollowEvent:
    message = WebcastSocialMessage(
        common=_header("WebcastSocialMessage", msg_id, "pm_main_follow_message_viewer_2"), user=_user(handle), action=1
    )
    return FollowEvent().parse(bytes(message))


def subscribe(handle: str) -> SubNotifyEvent:
    message = WebcastSubNotifyMessage(common=_header("WebcastSubNotifyMessage"), user=_user(handle), sub_month=3)
    return SubNotifyEvent().parse(bytes(message))


def barrage(handle: str, text: str, key: str = "pm_mt_notice") -> tuple[BarrageEvent, bytes]:
    """A banner (an event the capture stores generically) and its payload."""
    message = WebcastBarrageMessage(
        common=_header("WebcastBarrageMessage"), user=_user(handle), content=Text(key=key, default_pattern=text)
    )
    payload = bytes(message)
    return BarrageEvent().parse(payload), payload


def message_classes() -> list[type]:
    import TikTokLive.proto as proto

    return [
        c
        for c in vars(proto).values()
        if isinstance(c, type) and issubclass(c, betterproto2.Message) and c is not betterproto2.Message
    ]


def simulator_messages() -> list:
    from tests.support.capture import simulator_scenarios

    simulator_scenarios()  # puts scripts/ on the path
    from tiktok_sim.messages import MessageFactory

    factory = MessageFactory(room_id=7300825623513584053, first_msg_id=1)
    specs = [
        {"type": "like", "user": "fan1", "count": 15},
        {"type": "comment", "user": "fan2", "nickname": "𝓕𝓪𝓷𝓬𝔂 ✨", "text": "hola 👋"},
        {"type": "gift", "user": "fan3", "gift": "Rose", "repeat_count": 5, "repeat_end": False},
        {"type": "follow", "user": "fan4"},
        {"type": "share", "user": "fan5"},
        {"type": "join", "user": "fan6", "member_count": 12},
        {"type": "subscribe", "user": "fan7"},
        {"type": "viewers", "total": 340},
        {"type": "end"},
    ]
    return [factory.build(spec) for spec in specs]
