"""AvatarService and its speaker: which HeyGen session says the text, and that none is left running.

These call the service class directly (real PostgreSQL rows, real Redis, the
HeyGen fake); the path through the queue is in test_avatar_relay_end_to_end.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from project.integrations.heygen.client import HeyGenError
from project.queue_system.base_service import TransientError
from project.services.avatar.services import AvatarService
from project.tiktok_events.models import LiveEvent, LiveSession
from tests.support.avatar import browser_session
from tests.support.waiting import wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def service(heygen_env):
    avatar = AvatarService()
    avatar.on_start()
    yield avatar
    avatar.on_stop()


def event(event_type: str, **data) -> LiveEvent:
    session = LiveSession.objects.create(streamer="tester", started_at=timezone.now())
    return LiveEvent.objects.create(
        session=session,
        event_type=event_type,
        user_unique_id="ana_01",
        user_nickname="Ana",
        event_data=data,
        received_at=timezone.now(),
    )


@pytest.mark.slow
def test_it_opens_its_own_session_when_none_is_live_and_closes_it_when_idle(monkeypatch, heygen_env, live_session_key):
    monkeypatch.setenv("AVATAR_IDLE_SECONDS", "1")
    avatar = AvatarService()
    avatar.on_start()
    try:
        gift = event("GiftEvent", gift={"name": "Rosa"})
        gift.repeat_count = 3
        assert avatar.process_event(gift, None) is True
        [session] = heygen_env.live_sessions()
        assert heygen_env.task_texts() == ["¡Muchas gracias Ana por 3 Rosa!"]
        assert heygen_env.tasks[0]["task_mode"] == "sync" and heygen_env.tasks[0]["task_type"] == "repeat"
        shared = live_session_key.current()
        assert shared.session_id == session.session_id and shared.owner.startswith("service:")

        wait_for(lambda: not heygen_env.live_sessions(), timeout=30, what="the idle session to be stopped")
        assert heygen_env.sessions[session.session_id].closed_reason == "stopped"
        assert live_session_key.current() is None
    finally:
        avatar.on_stop()


def test_it_speaks_through_the_browser_session_when_one_is_live(service, heygen_env, live_session_key):
    browser = browser_session(heygen_env)
    live_session_key.publish(browser, "server:test:1:1")
    assert service.process_event(event("FollowEvent"), None) is True
    assert heygen_env.tasks == [
        {"session_id": browser, "text": "¡Gracias por seguirme, Ana!", "task_type": "repeat", "task_mode": "sync"}
    ]
    assert len(heygen_env.sessions) == 1, "no second paid session while a browser's is live"


def test_it_stops_its_own_session_once_a_browser_session_appears(service, heygen_env, live_session_key):
    service.process_event(event("FollowEvent"), None)
    [own] = heygen_env.live_sessions()
    browser = browser_session(heygen_env)
    live_session_key.publish(browser, "server:test:1:2")
    service.process_event(event("GiftEvent", gift={"name": "León"}), None)
    assert heygen_env.tasks[-1]["session_id"] == browser
    assert heygen_env.sessions[own.session_id].state == "closed"


def test_it_forgets_a_record_whose_session_is_gone(service, heygen_env, live_session_key):
    live_session_key.publish("session-of-a-crashed-server", "server:gone:1:1")
    service.process_event(event("FollowEvent"), None)
    [own] = heygen_env.live_sessions()
    assert heygen_env.tasks[-1]["session_id"] == own.session_id
    assert live_session_key.current().session_id == own.session_id


def test_it_reopens_its_session_after_heygen_closed_it(service, heygen_env):
    service.process_event(event("FollowEvent"), None)
    [first] = heygen_env.live_sessions()
    heygen_env.sessions[first.session_id].state = "closed"  # HeyGen's own idle timeout
    service.process_event(event("FollowEvent"), None)
    [second] = heygen_env.live_sessions()
    assert second.session_id != first.session_id
    assert heygen_env.tasks[-1]["session_id"] == second.session_id


def test_it_retries_later_when_heygen_is_at_its_limit(service, heygen_env):
    heygen_env.fail("streaming.new", status=400, code=10007, message="Concurrent limit reached")
    with pytest.raises(TransientError, match="concurrent session limit"):
        service.process_event(event("FollowEvent"), None)
    assert heygen_env.live_sessions() == []


def test_it_fails_for_good_on_a_refused_key(monkeypatch, heygen_env):
    monkeypatch.setenv("HEYGEN_API_KEY", "hg-not-the-right-key")
    avatar = AvatarService()
    avatar.on_start()
    try:
        with pytest.raises(HeyGenError, match="API key was refused") as refused:
            avatar.process_event(event("FollowEvent"), None)
        assert "hg-not-the-right-key" not in str(refused.value)
    finally:
        avatar.on_stop()


def test_it_stops_its_session_when_the_worker_stops(heygen_env):
    avatar = AvatarService()
    avatar.on_start()
    avatar.process_event(event("FollowEvent"), None)
    assert len(heygen_env.live_sessions()) == 1
    avatar.on_stop()
    assert heygen_env.live_sessions() == []


def test_it_says_what_is_missing_when_heygen_is_not_configured(monkeypatch):
    for name in ("HEYGEN_API_KEY", "HeyGen_API_KEY", "HEYGEN_AVATAR_ID"):
        monkeypatch.setenv(name, "")
    avatar = AvatarService()
    avatar.on_start()
    with pytest.raises(ValueError, match="heygen_api_key"):
        avatar.process_event(event("FollowEvent"), None)
