"""The cached betterproto2 validator accepts and refuses exactly what the original does."""

from __future__ import annotations

import betterproto2
import pydantic_core
import pytest
from TikTokLive.proto import User, WebcastLikeMessage

from project.tiktok_events.capture import proto_validation
from tests.support.tiktok_messages import message_classes, simulator_messages


@pytest.fixture
def cached():
    proto_validation.install()
    yield
    proto_validation.uninstall()


def like_bytes() -> bytes:
    return bytes(WebcastLikeMessage(count=15, total=300, user=User(nickname="𝓕𝓪𝓷 🌹", unique_id="fan1")))


def test_parse_gives_the_same_message(cached):
    parsed = WebcastLikeMessage().parse(like_bytes())
    proto_validation.uninstall()
    assert WebcastLikeMessage().parse(like_bytes()) == parsed
    assert (parsed.count, parsed.total, parsed.user.nickname) == (15, 300, "𝓕𝓪𝓷 🌹")


def errors_of(message) -> list:
    with pytest.raises(pydantic_core.ValidationError) as info:
        message._validate()
    return [(e["loc"], e["type"]) for e in info.value.errors()]


def test_same_errors_for_invalid_fields():
    message = WebcastLikeMessage(count=1)
    message.count = "not a number"  # pydantic does not re-validate on assignment
    message.total = 2**80  # out of uint64... and of int64
    original = errors_of(message)
    proto_validation.install()
    try:
        assert betterproto2.Message._validate is not proto_validation._original
        assert errors_of(message) == original
        assert original  # the bad fields are refused, not silently accepted
    finally:
        proto_validation.uninstall()


def test_one_validator_per_class(cached):
    WebcastLikeMessage().parse(like_bytes())
    first = proto_validation._validators[WebcastLikeMessage]
    WebcastLikeMessage().parse(like_bytes())
    assert proto_validation._validators[WebcastLikeMessage] is first
    assert User in proto_validation._validators  # nested messages too


# -- empty instances without pydantic's __init__ (Message.parse) -------------------------------


def test_an_empty_instance_is_what_the_constructor_makes():
    classes = message_classes()
    assert len(classes) > 100
    fast = 0
    for cls in classes:
        expected, made = cls(), proto_validation.empty(cls)
        assert list(made.__dict__.items()) == list(expected.__dict__.items()), cls
        assert [type(v) for v in made.__dict__.values()] == [type(v) for v in expected.__dict__.values()], cls
        again = proto_validation.empty(cls)
        for name, value in made.__dict__.items():
            if isinstance(value, list | dict):
                assert again.__dict__[name] is not value, f"{cls.__name__}.{name} shared between instances"
        fast += proto_validation._empty_specs[cls] is not None
    assert fast >= len(classes) - 5  # nearly all take the fast path...


def test_a_class_with_its_own_init_keeps_it():
    from TikTokLive.proto.custom_proto import ExtendedGift

    assert proto_validation._empty_spec(ExtendedGift) is None  # ...not TikTokLive's ExtendedGift
    assert "m_gift" in proto_validation.empty(ExtendedGift).__dict__


def rich_user() -> User:
    from typing import get_args, get_type_hints

    image_model = next(t for t in get_args(get_type_hints(User)["avatar_thumb"]) if t is not type(None))
    avatar = image_model(url_list=["https://p16.example/avatar.webp", "https://p77.example/avatar.jpeg"], uri="a/b")
    return User(
        id=7, nickname="Z̸̡a̶l̷g̵o 🌹 \u202edcba", display_id="fan_7", avatar_thumb=avatar,
        badge_image_list=[avatar, image_model(url_list=["https://p16.example/badge.png"])], verified=True,
    )  # fmt: skip


def test_parse_gives_the_same_messages_as_before():
    import TikTokLive.proto as proto
    from TikTokLive.proto import ProtoMessageFetchResult

    messages = simulator_messages()
    cases = [(getattr(proto, m.method), m.payload) for m in messages]  # each payload as its class
    cases.append((ProtoMessageFetchResult, bytes(ProtoMessageFetchResult(messages=messages, cursor="c1"))))
    cases.append((WebcastLikeMessage, bytes(WebcastLikeMessage(count=3, user=rich_user())) + b"\xf8\x07\x01"))

    original = [cls.parse(data) for cls, data in cases]
    proto_validation.install()
    try:
        assert WebcastLikeMessage.parse.__func__ is proto_validation._parse
        parsed = [cls.parse(data) for cls, data in cases]
    finally:
        proto_validation.uninstall()
    for before, after in zip(original, parsed, strict=True):
        assert after == before
        assert bytes(after) == bytes(before)
        assert after.__dict__ == before.__dict__
    liked = parsed[-1]
    assert liked.user.badge_image_list[1].url_list == ["https://p16.example/badge.png"]
    assert liked._unknown_fields == b"\xf8\x07\x01"  # a field this version does not know is kept
