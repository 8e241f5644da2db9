"""A discardable queue stays bounded under a flood, on the real broker."""

from __future__ import annotations

import time

import pytest

from project.queue_system.models import QueueItem
from project.queue_system.queues import discardable_queue_name
from tests.support.broker import DepthSampler
from tests.support.queueing import all_settled, dispatch_in_batches, make_events, make_service, make_session, statuses
from tests.support.recording_service import records
from tests.support.waiting import wait_for
from tests.support.worker_processes import running_workers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

LIKES = 1000
MAX_QUEUE_SIZE = 50


def test_it_never_holds_more_than_max_queue_size_likes_and_accounts_for_every_one(vhost):
    service = make_service("bound", max_queue_size=MAX_QUEUE_SIZE)
    events = make_events(make_session(), ["LikeEvent"] * LIKES, sleep=0.02)
    queue = discardable_queue_name("bound", "LikeEvent")
    key = f"rec:{vhost.name}"

    with running_workers(vhost, ["bound"], extra_env={"TTE_TEST_RECORD_KEY": key}, discards=True):
        sampler = DepthSampler([queue], url=vhost.broker_url)
        sampler.start()
        try:
            began = time.monotonic()
            dispatch_in_batches(events, size=10, pause=0.01)
            flood_seconds = time.monotonic() - began
            wait_for(lambda: all_settled(service), timeout=240, what="the flood was not settled")
        finally:
            sampler.stop()

    depths = sampler.samples[queue]
    counts = statuses(service)
    print(f"flood {flood_seconds:.1f}s, {len(depths)} depth samples, max {max(depths)}, statuses {counts}")
    # Bounded, and the bound was really reached (it was a flood, not a trickle).
    assert max(depths) == MAX_QUEUE_SIZE
    assert counts["pending"] == counts["processing"] == counts["failed"] == 0
    assert counts["completed"] + counts["discarded"] == LIKES
    assert counts["completed"] > 0 and counts["discarded"] > 0

    ended = [r["item"] for r in records(key) if r["phase"] == "end"]
    started = {r["item"] for r in records(key) if r["phase"] == "start"}
    discarded = set(QueueItem.objects.filter(service=service, status="discarded").values_list("pk", flat=True))
    assert len(ended) == len(set(ended)) == counts["completed"]  # each completed like ran once
    assert not started & discarded  # a discarded like never reached the service
    assert all(
        queue in error
        for error in QueueItem.objects.filter(service=service, status="discarded").values_list("error", flat=True)
    )
