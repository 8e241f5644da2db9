"""The rule of a broker restart: queued discardable messages are transient and may be dropped,
their items then end discarded ("broker restarted"); gifts and follows are persistent and kept."""

from __future__ import annotations

import pytest

from project.queue_system import restarts
from project.queue_system.dispatcher import EventDispatcher
from project.queue_system.models import QueueItem
from tests.support.broker import depth
from tests.support.outages import rabbitmq_stopped
from tests.support.queueing import make_events, make_service, make_session

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_a_restart_drops_the_queued_likes_marks_them_discarded_and_keeps_the_gifts(vhost):
    make_service("dino", max_queue_size=100)  # no worker: everything stays queued
    session = make_session()
    before = make_events(session, ["LikeEvent"] * 5 + ["GiftEvent", "FollowEvent"] + ["CommentEvent"] * 3)
    dispatcher = EventDispatcher()
    assert dispatcher.dispatch_many(before).confirmed == 10
    assert depth(vhost, "svc.dino.discardable.LikeEvent") == 5

    with rabbitmq_stopped(vhost):
        pass

    # Nothing has connected since: the items still look queued.
    assert QueueItem.objects.filter(status="pending").count() == 10
    after = make_events(session, ["LikeEvent", "GiftEvent"])
    # The dispatcher's connection died with the broker: it connects again, reconciles, then publishes.
    result = dispatcher.dispatch_many(after)
    assert result.confirmed == 2, result.error

    items = {i.live_event_id: i for i in QueueItem.objects.all()}
    for event in before:
        item = items[event.pk]
        if event.event_type in ("GiftEvent", "FollowEvent"):
            assert (item.status, item.error) == ("pending", ""), event.event_type
        else:
            assert (item.status, item.error) == ("discarded", restarts.REASON), event.event_type
            assert item.finished_at is not None
    # What was published after the restart waits in its queues, with the persistent tasks kept.
    assert [(items[e.pk].status, items[e.pk].error) for e in after] == [("pending", "")] * 2
    assert depth(vhost, "svc.dino.discardable.LikeEvent") == 1
    assert depth(vhost, "svc.dino") >= 3  # the gift and follow from before, the gift after (and tickets)
    # A second connection finds the epoch queue: nothing more is marked.
    assert EventDispatcher().dispatch_many(make_events(session, ["LikeEvent"])).confirmed == 1
    assert QueueItem.objects.filter(error=restarts.REASON).count() == 8
