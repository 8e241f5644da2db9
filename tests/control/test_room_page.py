"""The control room's live page through Django's test client: the server-rendered snapshot,
staff only, and the actions that need no worker (purge, retry) against a real RabbitMQ vhost."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from project.control import room_snapshot
from project.queue_system.models import QueueItem, Service
from project.tiktok_events.models import LiveEvent, LiveSession
from tests.support.queueing import make_events, make_service, make_session

pytestmark = pytest.mark.django_db

Status = QueueItem.Status


@pytest.fixture(autouse=True)
def _fresh_caches():
    room_snapshot.clear_caches()
    yield
    room_snapshot.clear_caches()


def _item(service, event, status, *, priority=5, discardable=False, started=None, finished=None, error=""):
    return QueueItem.objects.create(
        live_event=event,
        service=service,
        event_type=event.event_type,
        priority=priority,
        discardable=discardable,
        status=status,
        error=error,
        started_at=started,
        finished_at=finished,
    )


def _live_with_items():
    service = make_service("dinochrome")
    other = make_service("overlays")
    session = make_session()
    received = timezone.now() - timedelta(seconds=10)
    events = make_events(session, ["GiftEvent"] * 6 + ["CommentEvent"] * 3 + ["LikeEvent"] * 2, nickname="x")
    LiveEvent.objects.filter(pk__in=[e.pk for e in events]).update(received_at=received)
    for e in events:
        e.received_at = received
    gift = events[:6]
    # Two completed (1 s and 3 s to start, 2 s and 5 s to finish), one failed, one running, two waiting.
    _item(
        service,
        gift[0],
        Status.COMPLETED,
        priority=10,
        started=received + timedelta(seconds=1),
        finished=received + timedelta(seconds=2),
    )
    _item(
        service,
        gift[1],
        Status.COMPLETED,
        priority=10,
        started=received + timedelta(seconds=3),
        finished=received + timedelta(seconds=5),
    )
    _item(
        service,
        gift[2],
        Status.FAILED,
        priority=10,
        started=received + timedelta(seconds=3),
        finished=received + timedelta(seconds=4),
        error="process_event returned False",
    )
    _item(service, gift[3], Status.PROCESSING, priority=10, started=timezone.now() - timedelta(seconds=4))
    _item(service, gift[4], Status.PENDING, priority=10)
    _item(service, gift[5], Status.PENDING, priority=8)
    _item(service, events[6], Status.DISCARDED, priority=6, discardable=True, error="dropped: queue full")
    _item(service, events[7], Status.PENDING, priority=6, discardable=True)
    _item(other, events[0], Status.COMPLETED, priority=10, started=received, finished=received + timedelta(seconds=1))
    return service, other, session


def test_the_page_needs_staff(client, django_user_model):
    assert client.get("/control/").status_code == 302
    user = django_user_model.objects.create_user("viewer", password="pw")
    client.force_login(user)
    response = client.get("/control/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert client.get("/control/live/stream/").status_code == 302


def test_the_page_renders_the_snapshot(admin_client_logged, vhost):
    _live_with_items()
    session = LiveSession.objects.get()
    response = admin_client_logged.get("/control/")
    assert response.status_code == 200
    html = response.content.decode()
    # The shared layout's navigation.
    for href in ('href="/control/"', 'href="/control/test-events/"', 'href="/control/sessions/"'):
        assert href in html
    assert 'data-slug="dinochrome"' in html and 'data-slug="overlays"' in html
    assert "chart.umd.min.js" in html and "control/room.js" in html

    snap = json.loads(html.split('id="room-snapshot" type="application/json">')[1].split("</script>")[0])
    assert snap["live"]["session_id"] == session.pk
    assert snap["live"]["state"] == "connected"
    cards = {c["slug"]: c for c in snap["services"]}
    dino = cards["dinochrome"]
    assert (dino["completed"], dino["failed"], dino["discarded"]) == (2, 1, 1)
    assert dino["busy"] == 1 and dino["running"][0]["event_type"] == "GiftEvent"
    assert dino["running"][0]["seconds"] >= 4
    # Waiting per priority in svc.dinochrome: the pending non-discardable items only.
    assert dino["main_queue"]["by_priority"] == [{"priority": 10, "waiting": 1}, {"priority": 8, "waiting": 1}]
    assert [d["event_type"] for d in dino["discardable"]] == ["CommentEvent", "LikeEvent"]
    assert all(d["bound"] == 100 for d in dino["discardable"])
    # Latency: received → start over (1, 3, 3) s, received → finished over (2, 5, 4) s.
    assert dino["latency"]["n"] == 3
    assert dino["latency"]["start_p50"] == pytest.approx(3.0)
    assert dino["latency"]["finish_p50"] == pytest.approx(4.0)
    assert dino["latency"]["finish_p99"] == pytest.approx(4.98, abs=0.01)
    assert cards["overlays"]["completed"] == 1 and cards["overlays"]["failed"] == 0
    # No worker runs: the card says so; the vhost has no queue yet.
    assert dino["worker"] == "down" and dino["paused"] is False
    assert dino["can_skip"] is False and "Skip current" not in html
    # Feeds: reactions are completed/failed items, problems failed/discarded ones with their reason.
    assert {r["status"] for r in snap["reactions"]} == {"completed", "failed"} and len(snap["reactions"]) == 4
    reasons = {r["reason"] for r in snap["problems"]}
    assert reasons == {"process_event returned False", "dropped: queue full"}
    failed = next(r for r in snap["reactions"] if r["status"] == "failed")
    assert failed["latency"] == pytest.approx(4.0) and failed["start_latency"] == pytest.approx(3.0)
    # Rates: 11 events received in one second, by type.
    assert sum(sum(per.values()) for per in snap["rates"].values()) == 11
    assert sum(snap["rates"]["GiftEvent"].values()) == 6
    # Rendered server-side too, before any JavaScript runs.
    assert "process_event returned False" in html
    assert 'data-field="completed">2<' in html


def test_states_of_the_live(admin_client_logged):
    now = timezone.now()
    assert room_snapshot.live_state(None, None, now)["state"] == "none"
    session = make_session()
    assert room_snapshot.live_state(session, now, now)["state"] == "connected"
    quiet = room_snapshot.live_state(session, now - timedelta(seconds=45), now)
    assert quiet["state"] == "quiet" and "45 s" in quiet["reason"]
    session.connection_note = "connection lost (socket closed); reconnect attempt 2 in 4 s"
    assert room_snapshot.live_state(session, now, now) == {
        "state": "reconnecting",
        "label": "reconnecting",
        "reason": "connection lost (socket closed); reconnect attempt 2 in 4 s",
    }
    session.connection_note = ""
    session.status, session.end_reason = "ended", "the LIVE ended"
    assert room_snapshot.live_state(session, now, now) == {
        "state": "ended",
        "label": "ended",
        "reason": "the LIVE ended",
    }
    session.status = "connecting"
    assert room_snapshot.live_state(session, None, now)["state"] == "waiting"


def test_test_event_sessions_are_not_the_current_live(admin_client_logged):
    service = make_service("dinochrome")
    live = make_session()
    test_session = LiveSession.objects.create(
        streamer="streamer", started_at=timezone.now(), status="ended", is_test=True
    )
    (event,) = make_events(test_session, ["GiftEvent"])
    _item(service, event, Status.COMPLETED, started=timezone.now(), finished=timezone.now())
    snap = admin_client_logged.get("/control/live/snapshot.json").json()
    assert snap["live"]["session_id"] == live.pk and snap["live"]["state"] == "connected"
    # Its reactions still show: they happened during this live.
    assert [r["id"] for r in snap["reactions"]] == [QueueItem.objects.get().pk]


def test_viewers_come_from_the_latest_room_user_event(admin_client_logged):
    make_service("dinochrome")
    session = make_session()
    LiveEvent.objects.create(
        session=session,
        event_type="RoomUserSeqEvent",
        received_at=timezone.now() - timedelta(seconds=5),
        event_data={"viewers": 10},
    )
    LiveEvent.objects.create(
        session=session, event_type="RoomUserSeqEvent", received_at=timezone.now(), event_data={"viewers": 42}
    )
    snap = admin_client_logged.get("/control/live/snapshot.json").json()
    assert snap["live"]["viewers"] == 42


def test_actions_are_post_only_and_need_csrf(admin_client_logged, vhost):
    make_service("dinochrome")
    assert admin_client_logged.get("/control/services/dinochrome/pause/").status_code == 405
    from django.contrib.auth import get_user_model
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(get_user_model().objects.get(username="streamer"))
    assert strict.post("/control/services/dinochrome/pause/").status_code == 403
    assert Service.objects.get(slug="dinochrome").paused is False
    assert admin_client_logged.post("/control/services/nope/pause/").status_code == 404


def test_pause_and_resume_persist_the_flag_and_the_card_says_paused(admin_client_logged, vhost):
    make_service("dinochrome")
    response = admin_client_logged.post("/control/services/dinochrome/pause/", follow=True)
    assert response.status_code == 200
    assert Service.objects.get(slug="dinochrome").paused is True
    html = response.content.decode()
    assert "Dinochrome paused: its worker takes no new message" in html
    snap = admin_client_logged.get("/control/live/snapshot.json").json()
    card = snap["services"][0]
    # No worker: it is down, but paused is shown on the card (the Resume button).
    assert card["paused"] is True
    assert "service-card paused" in admin_client_logged.get("/control/").content.decode()
    admin_client_logged.post("/control/services/dinochrome/resume/")
    assert Service.objects.get(slug="dinochrome").paused is False


@pytest.mark.django_db(transaction=True)
def test_purge_and_retry_through_the_existing_admin_actions(admin_client_logged, vhost):
    from project.queue_system.dispatcher import EventDispatcher
    from project.queue_system.topology import declare_all

    service = make_service("dinochrome")
    declare_all([service.slug], strict_policies=False)
    session = make_session()
    events = make_events(session, ["CommentEvent"] * 3 + ["GiftEvent"])
    dispatcher = EventDispatcher()
    try:
        dispatcher.dispatch_many(events)
    finally:
        dispatcher.close()
    assert QueueItem.objects.filter(service=service, discardable=True, status=Status.PENDING).count() == 3

    def depths() -> dict[str, int | None]:
        room_snapshot.clear_caches()
        card = admin_client_logged.get("/control/live/snapshot.json").json()["services"][0]
        return {d["event_type"]: d["ready"] for d in card["discardable"]} | {"main": card["main_queue"]["ready"]}

    # Exact at once (passive declares), not the management API's counts of a few seconds ago.
    assert depths() == {"CommentEvent": 3, "LikeEvent": 0, "main": 2}  # the gift and a drain ticket
    response = admin_client_logged.post("/control/services/dinochrome/purge/", follow=True)
    html = response.content.decode()
    assert "3 message(s) purged, 3 item(s) marked discarded" in html, html.split("control-messages")[1][:300]
    assert QueueItem.objects.filter(service=service, status=Status.DISCARDED).count() == 3
    assert depths()["CommentEvent"] == 0

    gift = QueueItem.objects.get(service=service, event_type="GiftEvent")
    QueueItem.objects.filter(pk=gift.pk).update(status=Status.FAILED, error="boom", finished_at=timezone.now())
    # A failure from before this live is not the page's to retry.
    (old_event,) = make_events(session, ["FollowEvent"])
    old = _item(service, old_event, Status.FAILED, priority=8, error="old")
    QueueItem.objects.filter(pk=old.pk).update(created_at=session.started_at - timedelta(hours=1))
    response = admin_client_logged.post("/control/services/dinochrome/retry/", follow=True)
    assert "1 failed item(s) queued again" in response.content.decode()
    gift.refresh_from_db()
    assert gift.status == Status.PENDING and gift.error == "" and gift.dispatched_at is not None
    assert QueueItem.objects.get(pk=old.pk).status == Status.FAILED


@pytest.mark.slow
def test_the_stream_sends_snapshots(admin_client_logged, vhost, monkeypatch):
    from project.control import room_views

    make_service("dinochrome")
    monkeypatch.setattr(room_views, "STREAM_SECONDS", 1.5)
    response = admin_client_logged.get("/control/live/stream/")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/event-stream")
    body = b"".join(response.streaming_content).decode()
    snapshots = [line for line in body.splitlines() if line.startswith("data: ")]
    assert body.startswith("retry: ") and "event: snapshot" in body
    assert 1 <= len(snapshots) <= 3
    assert json.loads(snapshots[0][6:])["services"][0]["slug"] == "dinochrome"
    assert room_views.SLOTS.open == 0


def test_streams_are_bounded_per_process(admin_client_logged, monkeypatch):
    from project.control import room_views

    monkeypatch.setenv("CONTROL_MAX_STREAMS", "1")
    assert room_views.SLOTS.take()
    try:
        response = admin_client_logged.get("/control/live/stream/")
        assert response.status_code == 503 and response["Retry-After"] == "5"
    finally:
        room_views.SLOTS.give_back()


def test_the_snapshot_is_a_few_queries_whatever_the_number_of_services(admin_client_logged):
    _live_with_items()
    room_snapshot.clear_caches()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as first:
        room_snapshot.snapshot()
    with CaptureQueriesContext(connection) as cached:
        room_snapshot.snapshot()
    for n in range(5):
        make_service(f"more{n}")
    room_snapshot.clear_caches()
    with CaptureQueriesContext(connection) as more:
        room_snapshot.snapshot()
    assert len(first) == len(more) <= 12
    # Within SLOW_SECONDS the outcomes, latencies and feeds come from the process's cache.
    assert len(cached) <= 6


def test_the_seeded_services_each_get_a_card(admin_client_logged, seeded, vhost):
    response = admin_client_logged.get("/control/")
    assert response.status_code == 200
    html = response.content.decode()
    slugs = list(Service.objects.values_list("slug", flat=True))
    assert len(slugs) >= 4
    for slug in slugs:
        assert f'data-slug="{slug}"' in html


def test_viewer_text_is_escaped_on_the_page(admin_client_logged):
    service = make_service("dinochrome")
    (event,) = make_events(make_session(), ["GiftEvent"])
    LiveEvent.objects.filter(pk=event.pk).update(user_nickname="<img src=x onerror=alert(1)>")
    _item(service, event, Status.FAILED, started=timezone.now(), finished=timezone.now(), error="<script>x</script>")
    html = admin_client_logged.get("/control/").content.decode()
    assert "<img src=x" not in html and "<script>x</script>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html
