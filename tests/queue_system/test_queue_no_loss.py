"""Gifts caught in a flood of likes are never lost, on the real broker."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from project.queue_system.models import QueueItem
from tests.support.queueing import all_settled, dispatch_in_batches, make_events, make_service, make_session
from tests.support.recording_service import records
from tests.support.waiting import wait_for
from tests.support.worker_processes import running_workers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

LIKES, GIFTS = 1000, 200


def test_it_completes_every_gift_interleaved_in_a_flood_of_likes(vhost):
    service = make_service("noloss", max_queue_size=50)
    types = ["LikeEvent"] * LIKES + ["GiftEvent"] * GIFTS
    random.Random(11).shuffle(types)
    events = make_events(make_session(), types, sleep=0.02)
    key = f"rec:{vhost.name}"

    with running_workers(vhost, ["noloss"], extra_env={"TTE_TEST_RECORD_KEY": key}, discards=True):
        dispatch_in_batches(events, size=10, pause=0.01)
        wait_for(lambda: all_settled(service), timeout=240, what="the flood was not settled")

    by_type = Counter(QueueItem.objects.filter(service=service).values_list("event_type", "status"))
    print(f"statuses by type: {dict(by_type)}")
    assert by_type[("GiftEvent", "completed")] == GIFTS
    assert by_type[("LikeEvent", "completed")] + by_type[("LikeEvent", "discarded")] == LIKES
    assert by_type[("LikeEvent", "discarded")] > 0  # the likes really overflowed around the gifts
    assert sum(by_type.values()) == LIKES + GIFTS

    gift_items = set(QueueItem.objects.filter(service=service, event_type="GiftEvent").values_list("pk", flat=True))
    gift_ends = Counter(r["item"] for r in records(key) if r["phase"] == "end" and r["item"] in gift_items)
    assert set(gift_ends) == gift_items and set(gift_ends.values()) == {1}  # each gift ran exactly once
