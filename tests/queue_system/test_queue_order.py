"""Priority order on the real broker with a real SYNC worker."""

from __future__ import annotations

import random

import pytest

from project.queue_system.dispatcher import EventDispatcher
from project.queue_system.models import QueueItem
from tests.support.figures import priority_inversions
from tests.support.queueing import all_settled, make_events, make_service, make_session
from tests.support.recording_service import records
from tests.support.waiting import wait_for
from tests.support.worker_processes import running_workers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_it_serves_a_backlog_strictly_by_priority(vhost):
    service = make_service("order", max_queue_size=50)
    types = ["LikeEvent"] * 30 + ["CommentEvent"] * 10 + ["FollowEvent"] * 5 + ["GiftEvent"] * 5
    random.Random(3).shuffle(types)
    events = make_events(make_session(), types)
    dispatcher = EventDispatcher()
    for start in range(0, len(events), 7):  # several batches, as the capture sends them
        dispatcher.dispatch_many(events[start : start + 7])

    key = f"rec:{vhost.name}"
    with running_workers(vhost, ["order"], extra_env={"TTE_TEST_RECORD_KEY": key}):
        wait_for(lambda: all_settled(service), timeout=120, what="the backlog was not processed")

    items = list(QueueItem.objects.filter(service=service))
    assert {i.status for i in items} == {"completed"}
    assert len(items) == 50
    assert len(priority_inversions(items)) == 0
    started = [r for r in records(key) if r["phase"] == "start"]
    assert [r["priority"] for r in started] == [10] * 5 + [8] * 5 + [6] * 10 + [3] * 30
    assert len({r["pid"] for r in started}) == 1
