"""The DinoChrome action map: which event does what, overrides, and the documented table."""

from __future__ import annotations

import re

import pytest

from project.services.dinochrome.actions import (
    DEFAULT_ACTION_MAP,
    Action,
    ActionMapError,
    actions_for,
    build_action_map,
    render_text,
)
from tests.support import ROOT
from tests.support.service_events import gift, live_event, live_session

pytestmark = pytest.mark.django_db

DOCS = ROOT / "docs" / "services" / "dinochrome.md"


@pytest.fixture
def session():
    return live_session()


def kinds(actions: list[Action]) -> list[str]:
    return [str(a) for a in actions]


@pytest.mark.parametrize("name", ["Rose", "Rosa", "rose", " ROSA "])
def test_it_restarts_the_game_and_says_thanks_for_a_rose(session, name):
    actions = actions_for(gift(session, name), build_action_map())
    assert kinds(actions) == ["restart", "say:Thank you {nickname} for the rose! New game!"]


def test_it_thanks_for_any_other_gift_by_name(session):
    event = gift(session, "Galaxy", nickname="Carlos")
    [action] = actions_for(event, build_action_map())
    assert render_text(action.text, event) == "Thank you Carlos for the Galaxy!"


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [
        ("LikeEvent", ["jump"]),
        ("ShareEvent", ["jump"]),
        ("CommentEvent", ["duck"]),
        ("FollowEvent", ["say:Thanks for the follow, {nickname}!"]),
        ("SubscribeEvent", ["say:{nickname}, thank you for subscribing!"]),
        ("JoinEvent", []),
        ("RoomPinEvent", []),
    ],
)
def test_it_maps_each_event_type(session, event_type, expected):
    assert kinds(actions_for(live_event(session, event_type), build_action_map())) == expected


def test_it_merges_the_streamers_override_over_the_defaults(session):
    action_map = build_action_map('{"LikeEvent": [], "GiftEvent:Lion": ["restart", "jump"], "JoinEvent": ["jump"]}')
    assert actions_for(live_event(session, "LikeEvent"), action_map) == []
    assert kinds(actions_for(gift(session, "lion"), action_map)) == ["restart", "jump"]
    assert kinds(actions_for(live_event(session, "JoinEvent"), action_map)) == ["jump"]
    assert kinds(actions_for(gift(session, "Rose"), action_map))[0] == "restart"  # untouched default


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["jump"]', "expected a JSON object"),
        ('{"LikeEvent": "jump"}', "LikeEvent: expected a list of actions"),
        ('{"LikeEvent": ["fly"]}', "unknown action 'fly'"),
        ('{"LikeEvent": ["say:"]}', "unknown action 'say:'"),
        ('{"likes": ["jump"]}', "'likes' is not an event type"),
        ('{"LikeEvent:Rose": ["jump"]}', "is not an event type"),
    ],
)
def test_it_explains_an_override_it_cannot_use(override, message):
    with pytest.raises(ActionMapError, match=re.escape(message)):
        build_action_map(override)


def test_it_fills_placeholders_without_evaluating_user_text(session):
    event = live_event(session, "CommentEvent", "{comment}", event_data={"comment": "{nickname.__class__}"})
    text = render_text("{nickname} said {comment} ({gift}{count}) {unknown}", event)
    assert text == "{comment} said {nickname.__class__} (1) {unknown}"


def test_it_documents_the_action_map_in_the_docs():
    text = DOCS.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([A-Z]\w*Event(?::[^`]+)?)` \| `(.+)` \|$", text, flags=re.M)
    assert {key: actions.split("`, `") for key, actions in rows} == DEFAULT_ACTION_MAP
