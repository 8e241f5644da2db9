"""An ASYNC service runs `concurrency` items at the same time, on the real broker."""

from __future__ import annotations

import pytest

from project.queue_system.dispatcher import EventDispatcher
from project.queue_system.models import QueueItem
from tests.support.queueing import all_settled, make_events, make_service, make_session
from tests.support.recording_service import records
from tests.support.waiting import wait_for
from tests.support.worker_processes import running_workers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CONCURRENCY = 8
SLEEP = 2.0


# Gifts come as process_event tasks; comments (discardable) through up to `concurrency` drain tickets.
@pytest.mark.parametrize("event_type", ["GiftEvent", "CommentEvent"])
def test_it_runs_concurrency_items_at_the_same_time_on_distinct_threads(vhost, event_type):
    service = make_service("pool", mode="ASYNC", concurrency=CONCURRENCY)
    key = f"rec:{vhost.name}"

    with running_workers(vhost, ["pool"], extra_env={"TTE_TEST_RECORD_KEY": key}):
        events = make_events(make_session(), [event_type] * CONCURRENCY, sleep=SLEEP)
        EventDispatcher().dispatch_many(events)
        wait_for(lambda: all_settled(service), timeout=120, what="the items were not processed")

    assert set(QueueItem.objects.filter(service=service).values_list("status", flat=True)) == {"completed"}
    recorded = records(key)
    starts = {r["item"]: r for r in recorded if r["phase"] == "start"}
    ends = {r["item"]: r for r in recorded if r["phase"] == "end"}
    assert len(starts) == len(ends) == CONCURRENCY
    assert len({r["thread"] for r in starts.values()}) == CONCURRENCY
    assert len({r["pid"] for r in starts.values()}) == 1  # one worker process, a pool of threads
    # Every item started before any finished: all eight ran at the same time.
    assert max(r["t"] for r in starts.values()) < min(r["t"] for r in ends.values())
    assert [r["phase"] for r in recorded].count("on_start") == 1  # one service object shared by the threads
