"""What the overlay card of each event says, and how long it stays (defaults and Config)."""

from __future__ import annotations

import logging
import re

import pytest

from project.app_config.config import set_config
from project.services.overlays.cards import (
    DEFAULT_DISPLAY_SECONDS,
    FALLBACK_DISPLAY_SECONDS,
    DisplayTimesError,
    build_card,
    display_seconds,
    display_times,
    parse_display_times,
)
from tests.support import ROOT
from tests.support.service_events import gift, live_event, live_session

pytestmark = pytest.mark.django_db

DOCS = ROOT / "docs" / "services" / "overlays.md"


@pytest.fixture
def session():
    return live_session()


def test_it_builds_a_gift_card_with_name_count_and_image(session):
    event = gift(session, "Rose", nickname="Lucia", count=5, image="https://p16.tiktokcdn.com/rose.png")
    card = build_card(event, 8)
    assert card == {
        "id": f"event-{event.pk}",
        "event_id": event.pk,
        "type": "gift",
        "event_type": "GiftEvent",
        "nickname": "Lucia",
        "gift": "Rose",
        "count": 5,
        "image": "https://p16.tiktokcdn.com/rose.png",
        "text": "sent Rose ×5",
        "duration_ms": 8000,
    }


def test_it_drops_a_gift_image_that_is_not_a_web_address(session):
    event = gift(session, "Lion", image="javascript:alert(1)")
    card = build_card(event, 8)
    assert card["image"] == "" and card["text"] == "sent Lion"


def test_it_reads_tiktoklive_image_models(session):
    event = gift(session, "Galaxy", image={"url_list": ["https://cdn.example/galaxy.webp", "https://x"]})
    assert build_card(event, 8)["image"] == "https://cdn.example/galaxy.webp"


@pytest.mark.parametrize(
    ("event_type", "data", "card_type", "text"),
    [
        ("FollowEvent", {}, "follow", "followed the live"),
        ("SubscribeEvent", {}, "subscribe", "subscribed!"),
        ("ShareEvent", {}, "share", "shared the live"),
        ("CommentEvent", {"comment": "hola a todos"}, "comment", "hola a todos"),
        ("LikeEvent", {"count": 15}, "like", "sent 15 likes"),
        ("LikeEvent", {"count": 1}, "like", "sent a like"),
        ("JoinEvent", {}, "join", "joined"),
        ("RoomPinEvent", {}, "other", "RoomPin"),
    ],
)
def test_it_builds_a_card_for_each_event_type(session, event_type, data, card_type, text):
    card = build_card(live_event(session, event_type, "Pepe", event_data=data), 5)
    assert (card["type"], card["text"], card["nickname"]) == (card_type, text, "Pepe")


def test_it_falls_back_to_the_unique_id_without_a_nickname(session):
    event = live_event(session, "FollowEvent", "")
    event.user_unique_id = "pepe.mx"
    assert build_card(event, 5)["nickname"] == "pepe.mx"


def test_it_uses_the_documented_defaults_without_config():
    times = display_times()
    assert times == DEFAULT_DISPLAY_SECONDS
    assert display_seconds("GiftEvent", times) == 8
    assert display_seconds("RoomPinEvent", times) == FALLBACK_DISPLAY_SECONDS


def test_it_takes_display_times_from_config_then_options():
    set_config("overlays_display_times", '{"GiftEvent": 12, "LikeEvent": 1.5}')
    times = display_times()
    assert (times["GiftEvent"], times["LikeEvent"], times["FollowEvent"]) == (12, 1.5, 6)
    assert display_times({"display_times": {"GiftEvent": 2}})["GiftEvent"] == 2


def test_it_keeps_the_defaults_and_says_why_when_config_is_broken(caplog):
    set_config("overlays_display_times", '{"GiftEvent": "long"}')
    with caplog.at_level(logging.ERROR, logger="services.overlays"):
        assert display_times() == DEFAULT_DISPLAY_SECONDS
        display_times()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        "Config overlays_display_times ignored: GiftEvent: 'long' is not a number of seconds between 0 and 600"
    ]


@pytest.mark.parametrize("raw", ["[1, 2]", "{bad json", '{"GiftEvent": 0}', '{"GiftEvent": true}', '{"x": 601}'])
def test_it_rejects_display_times_it_cannot_use(raw):
    with pytest.raises(DisplayTimesError):
        parse_display_times(raw)


def test_it_documents_the_default_display_times_in_the_docs():
    text = DOCS.read_text(encoding="utf-8")
    documented = dict(re.findall(r"^\| `(\w+Event)` \| (\d+(?:\.\d+)?) s \|", text, flags=re.M))
    assert {k: float(v) for k, v in documented.items()} == DEFAULT_DISPLAY_SECONDS
