"""OverlaysService on the real Redis: one card per event, held for its display time."""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.db import connection

from project.queue_system.base_service import TransientError
from project.services.overlays.services import OverlaysService
from project.services.overlays.stream import publisher
from tests.service_events import gift, live_event, live_session

pytestmark = pytest.mark.django_db


def cards_in(stream: str) -> list[dict]:
    return [json.loads(fields["card"]) for _, fields in publisher().xrange(stream)]


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


def test_it_asks_for_a_retry_when_redis_is_down(overlay_stream, settings):
    event = gift(live_session(), "Rose")
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens on port 9
    service = OverlaysService(display_times={"GiftEvent": 1})
    with pytest.raises(TransientError, match="Redis unavailable for the overlay push") as raised:
        service.process_event(event, None)
    assert raised.value.retry_after == 2
