"""Test events from the control room: real LiveEvents in a test session, through the real dispatcher.

The form posts as a browser does (Django's client with CSRF checks on); the events go to a
fresh RabbitMQ vhost through ``EventDispatcher``, and a real worker (``python -m workers``)
processes them.
"""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from project.queue_system.models import QueueItem
from project.tiktok_events.models import LiveEvent, LiveSession
from tests.support.broker import peek
from tests.support.queueing import make_service, make_session
from tests.support.recording_service import records
from tests.support.waiting import wait_for
from tests.support.worker_processes import running_workers

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_client(django_user_model):
    """Logged in as staff, with CSRF enforced: the form's token must be sent, as a browser does."""
    user = django_user_model.objects.create_user("mod", "mod@example.com", "pw", is_staff=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def post_form(client: Client, **data) -> object:
    page = client.get("/control/test-events/")
    assert page.status_code == 200
    return client.post("/control/test-events/send/", {"csrfmiddlewaretoken": page.context["csrf_token"], **data})


@pytest.mark.slow
def test_a_rose_from_the_form_is_a_test_session_event_dispatched_to_rabbitmq(vhost, staff_client):
    service = make_service("recorder")
    real = make_session()  # a real live going on: the test event must not land in it

    response = post_form(staff_client, kind="rose", nickname="Lucía ✨")
    assert response.status_code == 302

    session = LiveSession.objects.get(is_test=True)
    assert session.pk != real.pk and session.status == LiveSession.Status.ENDED  # never the "live" one
    gift = LiveEvent.objects.get(session=session)
    assert gift.event_type == "GiftEvent"
    assert gift.user_nickname == "Lucía ✨"
    assert gift.event_data["gift"] == {"id": 5655, "name": "Rose", "diamond_count": 1, "streakable": True}
    assert gift.event_data["diamonds_total"] == 1
    assert gift.event_data["to_user"]["is_host"] is True
    assert not real.events.exists()

    item = QueueItem.objects.get(live_event=gift)
    assert (item.service_id, item.priority, item.discardable, item.status) == (service.pk, 10, False, "pending")
    assert item.dispatched_at is not None  # confirmed by the broker
    [message] = peek(vhost, "svc.recorder")
    assert (message["task"], message["args"], message["priority"]) == ("tasks.process_event", [item.pk], 10)

    follow = staff_client.get("/control/test-events/")
    assert "1 queue item(s), 1 confirmed by RabbitMQ" in follow.content.decode()


@pytest.mark.slow
def test_every_one_click_button_makes_the_capture_types(vhost, staff_client):
    make_service("recorder")
    for kind in ("big_gift", "follow", "subscribe", "comment", "likes"):
        assert post_form(staff_client, kind=kind, text="¡Hola, mundo!").status_code == 302
    events = {e.event_type: e for e in LiveEvent.objects.filter(session__is_test=True)}
    assert sorted(events) == ["CommentEvent", "FollowEvent", "GiftEvent", "LikeEvent", "SubscribeEvent"]
    assert events["GiftEvent"].event_data["diamonds_total"] == 29999
    assert events["CommentEvent"].event_data["comment"] == "¡Hola, mundo!"
    assert events["LikeEvent"].event_data["count"] == 100
    assert LiveSession.objects.filter(is_test=True).count() == 1  # one test session, reused
    # The seed table takes gifts, follows, subscriptions, comments and likes: one item each.
    assert QueueItem.objects.filter(live_event__session__is_test=True, dispatched_at__isnull=False).count() == 5


@pytest.mark.slow
def test_a_flood_of_likes_and_comments_goes_in_discardable_queues(vhost, staff_client):
    make_service("recorder", max_queue_size=20)
    assert post_form(staff_client, kind="flood", count="120", new_session="on").status_code == 302
    session = LiveSession.objects.get(is_test=True)
    counts = {t: session.events.filter(event_type=t).count() for t in ("LikeEvent", "CommentEvent")}
    assert counts == {"LikeEvent": 60, "CommentEvent": 60}
    items = QueueItem.objects.filter(live_event__session=session)
    assert items.count() == 120 and items.filter(discardable=True, dispatched_at__isnull=False).count() == 120


def test_the_pages_require_staff_and_the_actions_post(client, django_user_model):
    assert client.get("/control/test-events/").status_code == 302  # to the admin's login
    user = django_user_model.objects.create_user("viewer", "v@example.com", "pw")  # not staff
    client.force_login(user)
    assert client.get("/control/test-events/").status_code == 302
    user.is_staff = True
    user.save()
    assert client.get("/control/test-events/send/").status_code == 405
    assert not LiveEvent.objects.exists()


@pytest.mark.slow
def test_deleting_a_test_session_takes_its_events_and_items_and_refuses_a_real_one(vhost, staff_client):
    make_service("recorder")
    real = make_session()
    real_event = LiveEvent.objects.create(session=real, event_type="GiftEvent", received_at=real.started_at)
    post_form(staff_client, kind="flood", count="10")
    session = LiveSession.objects.get(is_test=True)
    assert QueueItem.objects.filter(live_event__session=session).count() == 10

    token = staff_client.get("/control/test-events/").context["csrf_token"]
    response = staff_client.post(f"/control/sessions/{real.pk}/delete/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302 and LiveEvent.objects.filter(pk=real_event.pk).exists()

    data = {"csrfmiddlewaretoken": token, "next": "https://elsewhere.example/"}  # never off the site
    response = staff_client.post(f"/control/sessions/{session.pk}/delete/", data)
    assert (response.status_code, response["Location"]) == (302, "/control/test-events/")
    assert not LiveSession.objects.filter(pk=session.pk).exists()
    assert not LiveEvent.objects.filter(session_id=session.pk).exists()
    assert not QueueItem.objects.filter(event_type__in=["LikeEvent", "CommentEvent"]).exists()
    assert LiveSession.objects.filter(pk=real.pk).exists()

    post_form(staff_client, kind="follow")
    session = LiveSession.objects.get(is_test=True)
    data = {"csrfmiddlewaretoken": token, "next": "/control/sessions/?show=test"}
    response = staff_client.post(f"/control/sessions/{session.pk}/delete/", data)
    assert response["Location"] == "/control/sessions/?show=test"
    assert not LiveSession.objects.filter(is_test=True).exists()


@pytest.mark.slow
def test_a_test_rose_is_completed_by_the_service_worker(vhost, staff_client):
    service = make_service("recorder")
    key = f"tte-test-record-{uuid.uuid4().hex}"
    with running_workers(vhost, ["recorder"], extra_env={"TTE_TEST_RECORD_KEY": key}):
        assert post_form(staff_client, kind="rose", nickname="Rosa").status_code == 302
        gift = LiveEvent.objects.get(session__is_test=True)
        item = wait_for(
            lambda: QueueItem.objects.filter(live_event=gift, service=service, status="completed").first(),
            timeout=60,
            what="the test Rose completed by the worker",
        )
    ends = [r for r in records(key) if r["phase"] == "end"]
    assert [(r["event"], r["item"], r["type"], r["ok"]) for r in ends] == [(gift.pk, item.pk, "GiftEvent", True)]
    page = staff_client.get("/control/test-events/").content.decode()
    assert "Recorder: completed" in page
