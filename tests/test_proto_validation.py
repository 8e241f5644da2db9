"""The cached betterproto2 validator accepts and refuses exactly what the original does."""

from __future__ import annotations

import betterproto2
import pydantic_core
import pytest
from TikTokLive.proto import User, WebcastLikeMessage

from project.tiktok_events.capture import proto_validation


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
