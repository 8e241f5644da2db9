"""What the capture stores and dispatches for each kind of TikTok message: subscriptions
however TikTok says them, gifts with their recipient, likes with TikTok's room total,
and nothing dropped (unknown and unparseable messages, big generic events, history).

Each test runs the real TikTokLive client against the simulator (``run_capture``), with
PostgreSQL and RabbitMQ; no worker runs, so a queue's depth counts what was published.
"""

from __future__ import annotations

import base64

import pytest
from TikTokLive.proto import WebcastBarrageMessage, WebcastChatMessage

from project.queue_system.models import QueueItem, ServiceEventConfig
from project.tiktok_events.dashboard import DashboardData, LikeTotals, render
from project.tiktok_events.models import LiveEvent
from tests.support.broker import depth
from tests.support.capture import (
    comment,
    gift,
    history,
    join,
    like,
    messages_by_type,
    run_capture,
    simulator_scenarios,
    subscribe,
    superfan_join,
    truncated,
    unknown,
)
from tests.support.queueing import make_service

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def services_of(event: LiveEvent) -> set[str]:
    return set(QueueItem.objects.filter(live_event=event).values_list("service__slug", flat=True))


def subscribed(event_type: str, **config) -> set[str]:
    """The active services with an enabled config for ``event_type`` (and ``config``)."""
    configs = ServiceEventConfig.objects.filter(event_type=event_type, enabled=True, service__is_active=True, **config)
    return set(configs.values_list("service__slug", flat=True))


def test_the_simulator_puts_history_in_the_first_fetch_and_refuses_an_unknown_way_to_subscribe():
    scenarios = simulator_scenarios()
    scenario = scenarios.compile_steps("t", [history(comment("old", "hola")), comment("new", "hola")])
    assert scenario.first_fetch == [history(comment("old", "hola"))]
    assert messages_by_type(scenario) == {"comment": 1}
    with pytest.raises(scenarios.ScenarioError, match="step 1: subscribe via 'pigeon': use one of subnotify"):
        scenarios.compile_steps("t", [subscribe("x", via="pigeon")])
    with pytest.raises(scenarios.ScenarioError, match="not in a frame"):
        scenarios.compile_steps("t", [{"type": "frame", "events": [history(comment("old", "hola"))]}])


# -- subscriptions ----------------------------------------------------------------------------------


def test_every_way_tiktok_says_subscribed_is_one_subscribe_event(vhost, seeded):
    make_service("subs", table=[("SubscribeEvent", 9, False)])
    steps = [
        subscribe("notified"),
        subscribe("super_fan", via="superfan"),
        subscribe("member_sub", via="member"),
        superfan_join("old_fan"),  # an existing Super Fan entering: not a subscription
        join("visitor"),
    ]
    run = run_capture(vhost, steps)
    assert run.returncode == 0, run.output

    subs = {e.user_unique_id: e for e in run.events().filter(event_type="SubscribeEvent")}
    assert {handle: e.event_data["tiktok_type"] for handle, e in subs.items()} == {
        "notified": "SubNotifyEvent",
        "super_fan": "SuperFanEvent",
        "member_sub": "JoinEvent",
    }
    assert subs["notified"].event_data["sub_month"] == 1
    assert subs["super_fan"].event_data["display_type"] == "ttlive_superFan_commentNotif_someoneBecameSuperFan"
    # The member message is stored once, as the subscription: never also as a join.
    assert list(run.events().filter(event_type="JoinEvent").values_list("user_unique_id", flat=True)) == ["visitor"]
    # The Super Fan barrages are stored once each, under their meaning, not as BarrageEvent.
    assert not run.events().filter(event_type="BarrageEvent").exists()
    joined = run.events().get(event_type="SuperFanJoinEvent")
    assert (joined.user_unique_id, joined.event_data["tiktok_type"]) == ("old_fan", "SuperFanJoinEvent")

    for event in subs.values():
        assert services_of(event) == subscribed("SubscribeEvent"), event
        assert f"⭐ {event.user_nickname} subscribed" in run.output
    assert not services_of(joined)
    assert depth(vhost, "svc.subs") == 3


def test_a_subscription_announced_twice_is_stored_twice_and_dispatched_once(vhost, seeded):
    make_service("subs", table=[("SubscribeEvent", 9, False)])
    steps = [subscribe("twice"), subscribe("twice", via="member"), subscribe("other", via="member")]
    run = run_capture(vhost, steps)
    assert run.returncode == 0, run.output

    first, second = run.events().filter(user_unique_id="twice").order_by("id")
    assert (first.event_type, second.event_type) == ("SubscribeEvent", "SubscribeEvent")
    assert "duplicate_of_msg_id" not in first.event_data
    assert second.event_data["duplicate_of_msg_id"] == first.msg_id
    assert services_of(first) == subscribed("SubscribeEvent")
    assert not services_of(second)
    # Another viewer's subscription the same way is no repeat.
    assert services_of(run.events().get(user_unique_id="other")) == subscribed("SubscribeEvent")
    assert depth(vhost, "svc.subs") == 2
    assert run.output.count("⭐ twice subscribed") == 1


# -- gifts and their recipient ----------------------------------------------------------------------


def test_a_gift_for_a_guest_goes_only_to_services_that_take_guest_gifts(vhost, seeded):
    make_service("hostonly", table=[("GiftEvent", 10, False)])
    make_service("everyone", table=[("GiftEvent", 10, False)])
    ServiceEventConfig.objects.filter(service__slug="everyone").update(guest_gifts=True)
    steps = [
        gift("fan1", "Galaxy"),
        gift("fan2", "Galaxy", to_user="guest_handle", to_nickname="Guest ✨"),
        gift("fan3", "Rose", repeat=3, to_user="guest_two"),
    ]
    run = run_capture(vhost, steps)
    assert run.returncode == 0, run.output

    gifts = {e.user_unique_id: e for e in run.events().filter(event_type="GiftEvent")}
    assert gifts["fan1"].event_data["to_user"] == {"id": "", "unique_id": "", "nickname": "", "is_host": True}
    to_guest = gifts["fan2"].event_data["to_user"]
    assert (to_guest["unique_id"], to_guest["nickname"], to_guest["is_host"]) == ("guest_handle", "Guest ✨", False)
    assert to_guest["id"].isdigit()
    assert (gifts["fan3"].repeat_count, gifts["fan3"].event_data["to_user"]["unique_id"]) == (3, "guest_two")

    assert services_of(gifts["fan1"]) == subscribed("GiftEvent") >= {"hostonly", "everyone"}
    assert services_of(gifts["fan2"]) == services_of(gifts["fan3"]) == {"everyone"}
    assert subscribed("GiftEvent", guest_gifts=True) == {"everyone"}
    assert (depth(vhost, "svc.hostonly"), depth(vhost, "svc.everyone")) == (1, 3)
    assert "🎁 fan2 sent Galaxy x1 to @guest_handle" in run.output
    assert "🎁 fan3 sent Rose x3 to @guest_two" in run.output
    assert "🎁 fan1 sent Galaxy x1\n" in run.output


def test_a_gift_naming_the_streamer_as_recipient_is_for_the_host(vhost, seeded):
    make_service("hostonly", table=[("GiftEvent", 10, False)])
    run = run_capture(vhost, [gift("fan", "Galaxy", to_user="Simulated_Streamer")])
    assert run.returncode == 0, run.output
    rose = run.events().get(event_type="GiftEvent")
    assert rose.event_data["to_user"]["is_host"] is True
    assert rose.event_data["to_user"]["unique_id"] == "Simulated_Streamer"
    assert "hostonly" in services_of(rose)
    assert "🎁 fan sent Galaxy x1\n" in run.output


# -- likes ------------------------------------------------------------------------------------------


def test_likes_keep_tiktoks_room_total_never_lowered_by_a_late_message(vhost, seeded):
    steps = [
        like("ana", 5),  # room total: the running sum, 5
        like("ben", 10, room_total=1000),
        like("cy", 2),  # 1002
        like("ana", 3, room_total=900),  # an older count arriving late
    ]
    run = run_capture(vhost, steps)
    assert run.returncode == 0, run.output

    likes = list(run.events().filter(event_type="LikeEvent").order_by("id"))
    assert [e.event_data["room_total"] for e in likes] == [5, 1000, 1002, 900]  # as TikTok stated each
    assert [e.event_data["session_total"] for e in likes] == [5, 15, 17, 20]
    assert (run.summary["likes_room_total"], run.summary["likes_counted"]) == (1002, 20)
    assert "1002 likes in the room (TikTok's total)" in run.output

    totals = LikeTotals(room_total=run.summary["likes_room_total"], counted=run.summary["likes_counted"])
    dashboard = DashboardData(uptime_seconds=60, session_id=run.session_id, events_captured=4, likes=totals)
    text = "\n".join(render(dashboard))
    assert "❤️  Likes in the room: 1,002 (TikTok's total, exact)" in text
    assert "❤️  Likes received: 20 (sum of like messages, a lower bound)" in text


# -- nothing dropped --------------------------------------------------------------------------------


def test_unknown_and_unparseable_messages_are_stored_raw_and_never_dispatched(vhost, seeded):
    make_service("curious", table=[("UnknownEvent", 5, False), ("UnparsedEvent", 5, False)])
    steps = [comment("before", "hola"), unknown("WebcastBrandNewFeatureMessage"), truncated(), comment("after", "ok")]
    run = run_capture(vhost, steps)
    assert run.returncode == 0, run.output

    new = run.events().get(event_type="UnknownEvent")
    assert new.event_data["method"] == "WebcastBrandNewFeatureMessage"
    assert new.msg_id is not None
    payload = base64.b64decode(new.event_data["payload_b64"])
    assert len(payload) == new.event_data["payload_bytes"] > 0
    assert WebcastChatMessage().parse(payload).common.msg_id == new.msg_id  # the message as TikTok sent it

    broken = run.events().get(event_type="UnparsedEvent")
    assert broken.event_data["method"] == "WebcastChatMessage"
    assert len(base64.b64decode(broken.event_data["payload_b64"])) == broken.event_data["payload_bytes"] > 0
    assert broken.msg_id is not None and broken.msg_id != new.msg_id

    assert not QueueItem.objects.filter(live_event__in=[new, broken]).exists()
    assert depth(vhost, "svc.curious") in (0, None)
    assert run.summary["events_captured"]["UnknownEvent"] == run.summary["events_captured"]["UnparsedEvent"] == 1
    assert run.events().filter(event_type="CommentEvent").count() == 2


def test_a_generic_event_keeps_its_fields_or_past_64_kb_its_raw_payload(vhost, seeded):
    big_text = "\n" * 40_000  # 40 KB on the wire, twice that as JSON
    steps = [
        {"type": "barrage", "user": "banner", "text": "small notice"},
        {"type": "barrage", "user": "banner", "text": big_text},
    ]
    run = run_capture(vhost, steps)
    assert run.returncode == 0, run.output

    small, big = run.events().filter(event_type="BarrageEvent").order_by("id")
    assert small.event_data["fields"]["content"]["defaultPattern"] == "small notice"
    assert small.user_unique_id == "banner"
    assert big.event_data["fields_truncated"] is True
    assert "content" in big.event_data["keys"]
    assert "payload_truncated" not in big.event_data
    raw = base64.b64decode(big.event_data["payload_b64"])
    assert len(raw) == big.event_data["payload_bytes"]
    assert WebcastBarrageMessage().parse(raw).content.default_pattern == big_text  # nothing lost


def test_history_is_stored_marked_and_neither_dispatched_nor_printed(vhost, seeded):
    make_service("chat", table=[("CommentEvent", 5, False), ("GiftEvent", 10, False)])
    steps = [
        history(comment("old1", "said before the capture came")),
        history(gift("old2", "Galaxy")),
        comment("new1", "first live comment"),
        comment("new2", "second live comment"),
        {"type": "wait", "seconds": 0.3},
        {"type": "drop"},  # the reconnect's first fetch replays what was delivered, as history
        comment("new3", "after the reconnect"),
    ]
    run = run_capture(vhost, steps)
    assert run.returncode == 0, run.output

    old = {e.user_unique_id: e for e in run.events().filter(event_data__is_history=True)}
    assert set(old) == {"old1", "old2"}
    assert old["old1"].event_data["comment"] == "said before the capture came"
    assert old["old2"].event_data["gift"]["name"] == "Galaxy"
    assert not QueueItem.objects.filter(live_event__in=old.values()).exists()
    assert "old1" not in run.output and "old2" not in run.output

    live = {e.user_unique_id: e for e in run.events().filter(event_type="CommentEvent").exclude(user_unique_id="old1")}
    assert set(live) == {"new1", "new2", "new3"}  # each once, though new1 and new2 came again as history
    assert all("is_history" not in e.event_data and "chat" in services_of(e) for e in live.values())
    assert "💬 new1: first live comment" in run.output
    assert run.summary["reconnects"] >= 1 and run.summary["duplicates_skipped"] >= 2
    assert depth(vhost, "svc.chat") == 3
