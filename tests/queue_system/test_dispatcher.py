"""EventDispatcher on the real broker, no worker running: what lands where."""

from __future__ import annotations

import time

import pytest
from django.db import transaction
from django.utils import timezone

from project.queue_system import publisher, queues
from project.queue_system.broker import Management
from project.queue_system.dispatcher import EventDispatcher, redispatch_pending
from project.queue_system.models import QueueItem
from project.queue_system.recovery import recover
from tests.support.broker import depth, peek, publishing_blocked
from tests.support.queueing import make_events, make_service, make_session

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dino(vhost):
    return make_service("dino", max_queue_size=50)


def test_it_creates_one_item_per_subscribed_active_service(vhost, dino):
    other = make_service("other", table=[("GiftEvent", 7, False), ("LikeEvent", 1, True)])
    make_service("sleeping", is_active=False)
    disabled = make_service("disabled", table=[("GiftEvent", 10, False)])
    disabled.event_configs.update(enabled=False)
    events = make_events(make_session(), ["GiftEvent", "LikeEvent", "ShareEvent"])

    result = EventDispatcher().dispatch_many(events)

    assert (result.events, result.created, result.confirmed, result.pending) == (3, 4, 4, 0)
    items = {(i.live_event.event_type, i.service.slug): i for i in QueueItem.objects.select_related("live_event")}
    assert set(items) == {("GiftEvent", "dino"), ("GiftEvent", "other"), ("LikeEvent", "dino"), ("LikeEvent", "other")}
    assert (items["GiftEvent", "other"].priority, items["GiftEvent", "other"].discardable) == (7, False)
    assert (items["LikeEvent", "dino"].priority, items["LikeEvent", "dino"].discardable) == (3, True)
    assert all(i.dispatched_at is not None and i.status == "pending" for i in items.values())
    assert other.pk


def test_an_event_type_nobody_subscribes_to_creates_nothing(vhost, dino):
    result = EventDispatcher().dispatch(make_events(make_session(), ["RoomUserSeqEvent"])[0])
    assert (result.created, result.confirmed) == (0, 0)
    assert not QueueItem.objects.exists()


def test_it_publishes_celery_tasks_with_the_config_priority(vhost, dino):
    gift, follow = make_events(make_session(), ["GiftEvent", "FollowEvent"])
    EventDispatcher().dispatch_many([follow, gift])

    messages = peek(vhost, "svc.dino")
    # The broker hands out the highest priority first.
    gift_item = QueueItem.objects.get(live_event=gift)
    follow_item = QueueItem.objects.get(live_event=follow)
    assert [(m["task"], m["args"], m["priority"]) for m in messages] == [
        ("tasks.process_event", [gift_item.pk], 10),
        ("tasks.process_event", [follow_item.pk], 8),
    ]
    assert all(m["persistent"] for m in messages)


def test_discardable_events_wait_in_their_queue_behind_one_ticket_per_sync_service(vhost, dino):
    likes = make_events(make_session(), ["LikeEvent"] * 12)
    dispatcher = EventDispatcher()
    dispatcher.dispatch_many(likes[:5])
    dispatcher.dispatch_many(likes[5:])
    dispatcher.dispatch(make_events(make_session(), ["LikeEvent"])[0])

    waiting = peek(vhost, "svc.dino.discardable.LikeEvent")
    # Transient: a broker restart may drop them (their items then end discarded, restarts.py).
    assert not any(m["persistent"] for m in waiting)
    assert [m["body"]["queue_item_id"] for m in waiting] == list(
        QueueItem.objects.order_by("pk").values_list("pk", flat=True)
    )
    tickets = peek(vhost, "svc.dino")
    assert [(t["task"], t["args"], t["priority"]) for t in tickets] == [("tasks.drain", ["dino", "LikeEvent"], 3)]
    assert depth(vhost, "svc.dino.armed.LikeEvent") == 1


def test_an_async_service_gets_up_to_concurrency_tickets_per_type(vhost):
    make_service("pool", mode="ASYNC", concurrency=3)
    dispatcher = EventDispatcher()
    dispatcher.dispatch_many(make_events(make_session(), ["CommentEvent"] * 2))
    assert len(peek(vhost, "svc.pool")) == 2
    dispatcher.dispatch_many(make_events(make_session(), ["CommentEvent"] * 10))
    assert [t["args"] for t in peek(vhost, "svc.pool")] == [["pool", "CommentEvent"]] * 3
    assert depth(vhost, "svc.pool.discardable.CommentEvent") == 12


@pytest.mark.slow
def test_with_the_broker_down_items_stay_pending_and_redispatch_publishes_them(vhost, dino, settings):
    good_url = settings.CELERY_BROKER_URL
    # Nothing listens on port 1: the same failure as a stopped RabbitMQ.
    settings.CELERY_BROKER_URL = good_url.replace(":5672/", ":1/")
    events = make_events(make_session(), ["GiftEvent", "GiftEvent", "LikeEvent"])
    result = EventDispatcher().dispatch_many(events)
    assert (result.created, result.confirmed, result.pending) == (3, 0, 3)
    assert "cannot connect to RabbitMQ" in result.error and "guest:guest" not in result.error
    assert QueueItem.objects.filter(dispatched_at__isnull=True, status="pending").count() == 3

    settings.CELERY_BROKER_URL = good_url
    result = redispatch_pending()
    assert (result.confirmed, result.pending) == (3, 0)
    assert not QueueItem.objects.filter(dispatched_at__isnull=True).exists()
    assert len(peek(vhost, "svc.dino")) == 3  # two gifts and the like's ticket
    assert depth(vhost, "svc.dino.discardable.LikeEvent") == 1
    assert redispatch_pending().confirmed == 0


@pytest.mark.slow
def test_an_idle_service_publishes_items_left_unpublished_before_its_idle_evidence(vhost, dino, settings):
    """The capture that created them stopped before the broker was back: the watchdog's idle pass
    publishes them, but not items created after the idle evidence began (a capture publishing now)."""
    good_url = settings.CELERY_BROKER_URL
    settings.CELERY_BROKER_URL = good_url.replace(":5672/", ":1/")
    assert EventDispatcher().dispatch_many(make_events(make_session(), ["GiftEvent", "FollowEvent"])).pending == 2
    before = timezone.now()
    assert EventDispatcher().dispatch_many(make_events(make_session(), ["GiftEvent"])).pending == 1
    settings.CELERY_BROKER_URL = good_url

    assert recover("dino", before=before, discardable_types=[]) == 2
    stranded = QueueItem.objects.filter(dispatched_at__isnull=True)
    assert stranded.count() == 1 and stranded.get().created_at >= before
    assert len(peek(vhost, "svc.dino")) == 2
    assert recover("dino", before=before, discardable_types=[]) == 0


@pytest.mark.slow
def test_the_dispatcher_publishes_what_was_left_pending_once_the_broker_is_back(vhost, dino, settings):
    good_url = settings.CELERY_BROKER_URL
    dispatcher = EventDispatcher()
    settings.CELERY_BROKER_URL = good_url.replace(":5672/", ":1/")
    assert dispatcher.dispatch_many(make_events(make_session(), ["GiftEvent"] * 3)).pending == 3
    settings.CELERY_BROKER_URL = good_url
    assert dispatcher.dispatch_many(make_events(make_session(), ["FollowEvent"])).confirmed == 1
    assert not QueueItem.objects.filter(dispatched_at__isnull=True).exists()
    assert len(peek(vhost, "svc.dino")) == 4


def test_inside_a_transaction_it_publishes_only_after_the_commit(vhost, dino):
    events = make_events(make_session(), ["GiftEvent"])
    with transaction.atomic():
        result = EventDispatcher().dispatch_many(events)
        assert result.deferred and result.pending == 1
        assert depth(vhost, "svc.dino") in (None, 0)
    assert len(peek(vhost, "svc.dino")) == 1
    assert QueueItem.objects.get().dispatched_at is not None


def test_dispatching_the_same_event_twice_creates_no_second_item(vhost, dino):
    event = make_events(make_session(), ["GiftEvent"])[0]
    dispatcher = EventDispatcher()
    dispatcher.dispatch(event)
    assert dispatcher.dispatch(event).created == 0
    assert QueueItem.objects.count() == 1


def test_warm_up_declares_the_queues_and_policies_of_active_services_before_any_event(vhost, dino):
    make_service("asleep", is_active=False)
    dispatcher = EventDispatcher()
    assert dispatcher.warm_up() is True

    assert depth(vhost, "svc.dino") == 0
    assert depth(vhost, "svc.dino.discardable.LikeEvent") == 0
    assert depth(vhost, "svc.asleep") is None  # inactive: declared when it starts, not by the capture
    assert Management().get_policy(queues.discardable_policy_name("dino"))["definition"]["max-length"] == 50
    # The first batch then publishes without declaring anything.
    like = make_events(make_session(), ["LikeEvent"])
    assert dispatcher.dispatch_many(like).confirmed == 1
    assert depth(vhost, "svc.dino.discardable.LikeEvent") == 1


@pytest.mark.slow
def test_warm_up_with_the_broker_down_says_so_and_dispatching_still_works_later(vhost, dino, settings):
    good_url = settings.CELERY_BROKER_URL
    settings.CELERY_BROKER_URL = good_url.replace(":5672/", ":1/")
    dispatcher = EventDispatcher()
    assert dispatcher.warm_up() is False
    settings.CELERY_BROKER_URL = good_url
    assert dispatcher.dispatch_many(make_events(make_session(), ["GiftEvent"])).confirmed == 1


@pytest.mark.slow
def test_a_broker_that_stops_confirming_times_out_and_the_items_stay_pending(vhost, dino, monkeypatch):
    monkeypatch.setattr(publisher, "CONFIRM_TIMEOUT", 1.5)
    dispatcher = EventDispatcher()
    session = make_session()
    with publishing_blocked(vhost):
        started = time.monotonic()
        result = dispatcher.dispatch_many(make_events(session, ["GiftEvent", "GiftEvent"]))
        waited = time.monotonic() - started
    # One wait, one retry on a fresh connection (no closing handshake on the blocked one), then pending.
    assert 3.0 <= waited < 20
    assert (result.confirmed, result.pending) == (0, 2)
    assert result.error == "ConfirmTimeout: 2 publish(es) not confirmed within 2 s"
    assert QueueItem.objects.filter(dispatched_at__isnull=True, status="pending").count() == 2
    # The broker answers again: the next dispatch publishes the two as well.
    assert dispatcher.dispatch(make_events(session, ["FollowEvent"])[0]).confirmed == 1
    assert not QueueItem.objects.filter(dispatched_at__isnull=True).exists()
