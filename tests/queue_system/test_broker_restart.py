"""A RabbitMQ restart, on the real broker: queued gifts and follows survive it; queued likes
and comments, transient, are dropped and their items end discarded, "broker restarted".

The restart is ``rabbitmqctl stop_app`` / ``start_app`` on the local node: every
connection drops and the broker recovers its durable queues and persistent messages
from disk. Other tests using the local broker at that moment lose it for a few seconds.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from project.queue_system import queues
from project.queue_system.broker import BrokerError, open_connection
from project.queue_system.models import QueueItem
from tests.support.broker import broker_stopped, depth
from tests.support.queueing import all_settled, dispatch_in_batches, make_events, make_service, make_session
from tests.support.waiting import wait_for
from tests.support.worker_processes import running_workers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

MAX_QUEUE_SIZE = 20
TYPES = {"GiftEvent": 15, "FollowEvent": 10, "CommentEvent": 30, "LikeEvent": 40}


def queue_depths(vhost) -> dict[str, int | None]:
    names = [queues.main_queue_name("restart"), queues.DISCARDED_QUEUE] + [
        queues.discardable_queue_name("restart", t) for t in ("CommentEvent", "LikeEvent")
    ]
    return {name: depth(vhost, name) for name in names}


def test_a_restart_keeps_every_queued_gift_and_follow_and_discards_the_queued_likes(vhost):
    service = make_service("restart", max_queue_size=MAX_QUEUE_SIZE)
    types = [t for t, n in TYPES.items() for _ in range(n)]
    random.Random(5).shuffle(types)
    dispatch_in_batches(make_events(make_session(), types), size=10)
    assert not QueueItem.objects.filter(service=service, dispatched_at__isnull=True).exists()

    before = queue_depths(vhost)
    with broker_stopped(vhost):
        with pytest.raises(BrokerError):
            open_connection(timeout=2)  # it is really down
    after = queue_depths(vhost)
    print(f"depths before the restart {before}, after {after}")
    main = queues.main_queue_name("restart")
    # Before: the tasks and the tickets, likes and comments waiting, and what the policy dropped.
    assert before[main] > TYPES["GiftEvent"] + TYPES["FollowEvent"]
    assert before[queues.DISCARDED_QUEUE] > 0
    # After: the gift and follow tasks (persistent); the tickets, the waiting likes and comments
    # and the dropped ones (transient) are gone.
    assert after[main] == TYPES["GiftEvent"] + TYPES["FollowEvent"]
    assert {name: n for name, n in after.items() if name != main} == dict.fromkeys(set(after) - {main}, 0)

    with running_workers(vhost, ["restart"], discards=True):
        wait_for(lambda: all_settled(service), timeout=180, what="the queued items were not processed")

    rows = QueueItem.objects.filter(service=service).values_list("event_type", "status", "error")
    by_type = Counter(rows)
    print(f"statuses by type: {dict(by_type)}")
    assert sum(by_type.values()) == sum(TYPES.values())
    for event_type in ("GiftEvent", "FollowEvent"):
        assert by_type[(event_type, "completed", "")] == TYPES[event_type]
    # The worker's start declared the topology and found the broker restarted (restarts.py).
    for event_type in ("CommentEvent", "LikeEvent"):
        assert by_type[(event_type, "discarded", "broker restarted")] == TYPES[event_type]
