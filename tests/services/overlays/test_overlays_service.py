"""OverlaysService on the real Redis: one card per event, held for its display time."""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.db import connection

from project.queue_system.base_service import TransientError
from project.queue_system.models import QueueItem
from project.services.overlays.services import OverlaysService
from project.services.overlays.stream import publisher
from tests.support.service_events import gift, live_event, live_session

pytestmark = pytest.mark.django_db


def cards_in(stream: str) -> list[dict]:
    return [json.loads(fields["card"]) for _, fields in publisher().xrange(stream)]


@pytest.mark.slow
def test_it_pushes_one_card_and_holds_it_for_the_display_time(overlay_stream):
    event = gift(live_session(), "Rose", nickname="Lucia", count=3)
    service = OverlaysService(display_times={"GiftEvent": 1.2})
    service.on_start()
    started = time.monotonic()
    assert service.process_event(event, None) is True
    held = time.monotonic() - started
    assert 1.2 <= held < 5, f"held the slot for {held:.2f} s"
    [card] = cards_in(overlay_stream)
    assert card["id"] == f"event-{event.pk}"
    assert (card["type"], card["nickname"], card["gift"], card["count"]) == ("gift", "Lucia", "Rose", 3)
    assert card["duration_ms"] == 1200


def test_it_holds_each_type_for_its_own_time(overlay_stream):
    session = live_session()
    service = OverlaysService(display_times={"LikeEvent": 0.2, "FollowEvent": 0.6})
    for event_type in ("LikeEvent", "FollowEvent"):
        service.process_event(live_event(session, event_type), None)
    assert [c["duration_ms"] for c in cards_in(overlay_stream)] == [200, 600]


def test_it_lets_go_of_held_cards_when_stopping(overlay_stream):
    event = live_event(live_session(), "FollowEvent")
    service = OverlaysService(display_times={"FollowEvent": 60})
    service.on_start()

    def hold() -> None:
        try:
            service.process_event(event, None)
        finally:
            connection.close()  # this thread's own database connection

    worker = threading.Thread(target=hold)
    worker.start()
    deadline = time.monotonic() + 10
    while not cards_in(overlay_stream):
        assert time.monotonic() < deadline, "no card was published"
        time.sleep(0.05)
    stopping = time.monotonic()
    service.on_stop()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert time.monotonic() - stopping < 5


@pytest.mark.slow
def test_it_waits_for_redis_then_asks_the_queue_for_a_retry(overlay_stream, settings):
    """Nothing listens on port 9: Redis stays away for the whole (shortened) wait."""
    event = gift(live_session(), "Rose")
    settings.REDIS_URL = "redis://127.0.0.1:9/0"
    settings.REDIS_OUTAGE_WAIT_SECONDS = 2
    service = OverlaysService(display_times={"GiftEvent": 1})
    started = time.monotonic()
    with pytest.raises(TransientError, match=r"^Redis unreachable for 2 s \(overlay card\): ConnectionError") as raised:
        service.process_event(event, None)
    assert 2 <= time.monotonic() - started < 4
    assert raised.value.retry_after == 2


def test_a_stopping_worker_does_not_wait_for_redis(overlay_stream, settings):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"
    settings.REDIS_OUTAGE_WAIT_SECONDS = 60
    service = OverlaysService(display_times={"GiftEvent": 1})
    service.on_start()
    threading.Timer(0.5, service.on_stop).start()
    started = time.monotonic()
    with pytest.raises(TransientError, match="Redis unreachable"):
        service.process_event(gift(live_session(), "Rose"), None)
    assert time.monotonic() - started < 4


def test_a_time_budget_shorter_than_the_wait_spreads_it_over_the_retries(settings):
    from project.queue_system.processing import MAX_ATTEMPTS
    from project.redis_outage import plan_for

    settings.REDIS_OUTAGE_WAIT_SECONDS = 120
    first = QueueItem(attempts=1)
    plan = plan_for(first, time_budget=30, reserve=10)
    assert plan.wait_seconds == 20
    # the five attempts from the first one cover the whole wait
    assert MAX_ATTEMPTS * plan.wait_seconds + (MAX_ATTEMPTS - 1) * plan.retry_after >= 120
    # the default budget: one attempt waits it all
    assert plan_for(first, time_budget=300, reserve=18).wait_seconds == 120
    # met on its fourth attempt: one retry left, the two attempts still cover it
    fourth = plan_for(QueueItem(attempts=4), time_budget=30, reserve=10)
    assert 2 * fourth.wait_seconds + fourth.retry_after >= 120
