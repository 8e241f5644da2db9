"""DispatchPipeline on the real broker, no worker running: batches streamed, confirmed, armed, marked."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest
from django.db import transaction

from project.queue_system import publisher
from project.queue_system.models import QueueItem
from project.queue_system.streaming import DispatchPipeline
from tests.support.broker import depth, peek, publishing_blocked
from tests.support.queueing import make_events, make_service, make_session
from tests.support.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

MIX = ["LikeEvent", "GiftEvent", "LikeEvent", "CommentEvent", "FollowEvent", "LikeEvent", "CommentEvent"]


@pytest.fixture
def pipeline(vhost):
    created = DispatchPipeline(window=3)
    yield created
    created.close()


def test_many_batches_are_all_confirmed_marked_and_armed_once(vhost, pipeline):
    make_service("dino", max_queue_size=1000)
    make_service("pool", mode="ASYNC", concurrency=3, max_queue_size=1000)
    session = make_session()
    events = make_events(session, MIX * 30)  # 210 events, 420 items

    created = sum(
        pipeline.dispatch_many(events[start : start + 10], number) for number, start in enumerate(range(0, 210, 10))
    )
    outcomes = pipeline.finish()

    assert created == 420
    assert sorted(o.number for o in outcomes) == list(range(21))
    assert all((o.items, o.unconfirmed, o.error) == (20, 0, "") for o in outcomes)
    assert all(o.publish_ms > 0 and o.confirmed_at > 0 for o in outcomes)
    assert not QueueItem.objects.filter(dispatched_at__isnull=True).exists()
    # Every discardable event waits in its queue, in the order it was submitted.
    for slug, event_type, count in (("dino", "LikeEvent", 90), ("pool", "CommentEvent", 60)):
        waiting = [m["body"]["queue_item_id"] for m in peek(vhost, f"svc.{slug}.discardable.{event_type}")]
        ids = QueueItem.objects.filter(service__slug=slug, event_type=event_type).order_by("pk")
        assert waiting == list(ids.values_list("pk", flat=True))
        assert len(waiting) == count
    # SYNC: one ticket per type; ASYNC: up to its concurrency. The gifts and follows as tasks.
    dino = [(m["task"], m["args"][-1] if m["task"] == "tasks.drain" else None) for m in peek(vhost, "svc.dino")]
    assert sorted(t for t in dino if t[0] == "tasks.drain") == [
        ("tasks.drain", "CommentEvent"),
        ("tasks.drain", "LikeEvent"),
    ]
    assert dino.count(("tasks.process_event", None)) == 60
    pool = [m["args"] for m in peek(vhost, "svc.pool") if m["task"] == "tasks.drain"]
    assert sorted(pool) == [["pool", "CommentEvent"]] * 3 + [["pool", "LikeEvent"]] * 3
    assert (depth(vhost, "svc.dino.armed.LikeEvent"), depth(vhost, "svc.pool.armed.LikeEvent")) == (1, 3)


def test_inside_a_transaction_nothing_is_published_before_the_commit(vhost, pipeline):
    make_service("dino")
    with transaction.atomic():
        assert pipeline.dispatch_many(make_events(make_session(), ["GiftEvent", "GiftEvent"])) == 2
        time.sleep(0.3)
        assert depth(vhost, "svc.dino") in (None, 0)
    assert [o.unconfirmed for o in pipeline.finish()] == [0]
    assert len(peek(vhost, "svc.dino")) == 2


@pytest.mark.slow
def test_with_the_broker_down_items_stay_pending_and_go_once_it_is_back(vhost, pipeline, settings):
    make_service("dino")
    good_url = settings.CELERY_BROKER_URL
    settings.CELERY_BROKER_URL = good_url.replace(":5672/", ":1/")  # nothing listens there
    session = make_session()
    pipeline.dispatch_many(make_events(session, ["GiftEvent", "LikeEvent", "FollowEvent"]), 1)
    (outcome,) = pipeline.finish()
    assert (outcome.number, outcome.items, outcome.unconfirmed) == (1, 3, 3)
    assert "cannot connect to RabbitMQ" in outcome.error and "guest:guest" not in outcome.error
    assert QueueItem.objects.filter(dispatched_at__isnull=True, status="pending").count() == 3

    settings.CELERY_BROKER_URL = good_url
    pipeline.dispatch_many(make_events(session, ["GiftEvent"]), 2)
    assert [(o.number, o.unconfirmed, o.error) for o in pipeline.finish()] == [(2, 0, "")]
    # The batch confirmed, the pipeline publishes what the broker missed by itself.
    wait_for(lambda: not QueueItem.objects.filter(dispatched_at__isnull=True).exists(), timeout=20)
    assert sorted(m["task"] for m in peek(vhost, "svc.dino")) == ["tasks.drain"] + ["tasks.process_event"] * 3
    assert depth(vhost, "svc.dino.discardable.LikeEvent") == 1


@pytest.mark.slow
def test_a_connection_closed_under_it_is_retried_on_a_fresh_one(vhost, pipeline):
    make_service("dino", max_queue_size=1000)
    session = make_session()
    pipeline.dispatch_many(make_events(session, ["GiftEvent"] * 5), 1)
    assert [o.unconfirmed for o in pipeline.finish()] == [0]
    names: list[str] = []

    def listed() -> bool:
        path = f"/api/vhosts/{quote(vhost.name, safe='')}/connections"
        names[:] = [c["name"] for c in vhost.api("GET", path).json()]
        return bool(names)

    wait_for(listed, timeout=30, what="the pipeline's connection never showed in the management API")
    for name in names:
        vhost.api("DELETE", f"/api/connections/{quote(name, safe='')}")

    for number in range(2, 6):
        pipeline.dispatch_many(make_events(session, ["GiftEvent", "LikeEvent"] * 5), number)
    outcomes = pipeline.finish()

    assert [(o.number, o.unconfirmed, o.error) for o in outcomes] == [(n, 0, "") for n in range(2, 6)]
    assert not QueueItem.objects.filter(dispatched_at__isnull=True).exists()
    assert len([m for m in peek(vhost, "svc.dino") if m["task"] == "tasks.process_event"]) == 25
    assert depth(vhost, "svc.dino.discardable.LikeEvent") == 20


@pytest.mark.slow
def test_a_broker_that_stops_confirming_times_out_and_leaves_the_items_pending(vhost, pipeline, monkeypatch):
    make_service("dino")
    monkeypatch.setattr(publisher, "CONFIRM_TIMEOUT", 1.5)
    session = make_session()
    with publishing_blocked(vhost):
        started = time.monotonic()
        pipeline.dispatch_many(make_events(session, ["GiftEvent"] * 3), 1)
        # A caller that cannot wait (the capture, idle) gets what settled so far: nothing.
        assert pipeline.finish(timeout=0.2) == []
        assert time.monotonic() - started < 1.0
        (outcome,) = pipeline.finish()
        waited = time.monotonic() - started
    # One wait, one retry on a fresh connection, then given up.
    assert 3.0 <= waited < 20
    assert (outcome.unconfirmed, outcome.error) == (3, "ConfirmTimeout: 3 publish(es) not confirmed within 2 s")
    assert QueueItem.objects.filter(dispatched_at__isnull=True, status="pending").count() == 3

    pipeline.dispatch_many(make_events(session, ["FollowEvent"]), 2)
    assert [(o.number, o.unconfirmed) for o in pipeline.finish()] == [(2, 0)]
    wait_for(lambda: not QueueItem.objects.filter(dispatched_at__isnull=True).exists(), timeout=20)
