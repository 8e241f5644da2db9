"""The avatar service within its time budget, and ``on_timeout`` releasing the HeyGen session of an overdue item.

``on_timeout`` is called here directly, from a fresh service instance (as the
worker does after killing a SYNC child, or beside an ASYNC thread still in its
handler); the worker's own timeout path is tested with the workers.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from django.db import connection
from django.utils import timezone

from project.queue_system.base_service import TransientError
from project.queue_system.models import QueueItem, Service
from project.services.avatar.item_sessions import KEY_PREFIX, ItemSessions
from project.services.avatar.services import AvatarService
from project.tiktok_events.models import LiveEvent, LiveSession
from tests.support.avatar import ROOT, browser_session
from tests.support.queueing import make_service
from tests.support.servers import subprocess_env
from tests.support.waiting import wait_for

AVATAR_CLASS = "project.services.avatar.services.AvatarService"
AVATAR_TABLE = [("GiftEvent", 10, False), ("FollowEvent", 8, False), ("CommentEvent", 5, True)]

# What the worker's SYNC child does with the item: run the real service on it until killed.
CHILD_CODE = """
from project.queue_system.models import QueueItem
from project.services.avatar.services import AvatarService
item = QueueItem.objects.select_related("live_event", "service").get(pk={pk})
service = AvatarService(item.service)
service.on_start()
service.process_event(item.live_event, item)
print("the handler returned", flush=True)
"""


def avatar_item(budget: int = 300, event_type: str = "FollowEvent") -> QueueItem:
    service = make_service(f"avatar-{time.monotonic_ns()}", service_class=AVATAR_CLASS, table=AVATAR_TABLE)
    Service.objects.filter(pk=service.pk).update(time_budget_seconds=budget)
    service.refresh_from_db()
    session = LiveSession.objects.create(streamer="tester", started_at=timezone.now())
    live_event = LiveEvent.objects.create(
        session=session, event_type=event_type, user_unique_id="ana_01", user_nickname="Ana", received_at=timezone.now()
    )
    return QueueItem.objects.create(live_event=live_event, service=service, event_type=event_type, priority=8)


def item_record_exists(item: QueueItem) -> bool:
    items = ItemSessions()
    try:
        return bool(items._redis.exists(KEY_PREFIX + str(item.pk)))
    finally:
        items.close()


@pytest.mark.slow
@pytest.mark.django_db
def test_a_speech_longer_than_the_budget_ends_the_handler_before_the_budget(heygen_env):
    item = avatar_item(budget=10)
    avatar = AvatarService(item.service)
    avatar.on_start()
    heygen_env.delay("streaming.task", 120)  # a sync task answers when the avatar is done: here, far too late
    try:
        started = time.monotonic()
        with pytest.raises(TransientError, match="time budget ran out"):
            avatar.process_event(item.live_event, item)
        took = time.monotonic() - started
        [session] = heygen_env.live_sessions()
        # The budget is 10 s; the handler gives up 1 s before it (the margin), on its own.
        assert 8.5 <= took <= 9.8, f"the handler took {took:.1f} s"
        assert heygen_env.interrupts == [session.session_id], "the unfinished speech must not go on under a retry"
        assert not item_record_exists(item), "a handler that returned leaves nothing for on_timeout"
    finally:
        avatar.on_stop()
    assert heygen_env.live_sessions() == []


@pytest.mark.django_db
@pytest.mark.slow
def test_a_skip_from_the_control_room_interrupts_the_speech_and_the_item_completes(heygen_env):
    item = avatar_item(budget=60)
    avatar = AvatarService(item.service)
    avatar.on_start()
    heygen_env.delay("streaming.task", 120)  # the avatar would talk for two minutes
    try:
        outcome: list[bool] = []
        handler = threading.Thread(target=lambda: outcome.append(avatar.process_event(item.live_event, item)))
        started = time.monotonic()
        handler.start()
        wait_for(lambda: any(name == "streaming.task" for name, _ in heygen_env.calls), timeout=30, what="the speech")
        avatar.cancel_current()
        handler.join(timeout=20)
        assert not handler.is_alive() and outcome == [True]
        assert time.monotonic() - started < 20
        [session] = heygen_env.live_sessions()
        assert heygen_env.interrupts == [session.session_id]
        assert not item_record_exists(item)
        assert avatar.speaker.skip() is False  # nothing is being said any more
    finally:
        avatar.on_stop()


@pytest.mark.django_db
def test_a_said_item_leaves_no_session_record(heygen_env):
    item = avatar_item()
    avatar = AvatarService(item.service)
    avatar.on_start()
    try:
        assert avatar.process_event(item.live_event, item) is True
        assert heygen_env.task_texts() == ["¡Gracias por seguirme, Ana!"]
        assert not item_record_exists(item)
    finally:
        avatar.on_stop()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_on_timeout_in_a_fresh_process_stops_the_session_a_killed_handler_opened(
    heygen_env, live_session_key, tmp_path
):
    item = avatar_item()
    heygen_env.delay("streaming.task", 120)
    output = tmp_path / "child.log"
    with output.open("w") as out:
        child = subprocess.Popen(
            [sys.executable, "manage.py", "shell", "-c", CHILD_CODE.format(pk=item.pk)],
            cwd=ROOT,
            env=subprocess_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: heygen_env.endpoint_calls("streaming.task") or child.poll() is not None,
            timeout=60,
            what="the handler to ask the avatar to speak",
        )
        assert child.poll() is None, output.read_text()
        [session] = heygen_env.live_sessions()
    finally:
        child.kill()  # what Celery's hard time limit does to a SYNC child
        child.wait(timeout=30)
    assert [s.session_id for s in heygen_env.live_sessions()] == [session.session_id], "killed, it stops nothing"
    assert live_session_key.current().session_id == session.session_id

    AvatarService(item.service).on_timeout(item.live_event, item)  # a new instance: no speaker, no memory

    assert heygen_env.endpoint_calls("streaming.stop") == [{"session_id": session.session_id}]
    assert heygen_env.sessions[session.session_id].closed_reason == "stopped"
    assert heygen_env.live_sessions() == []
    assert live_session_key.current() is None, "nobody may pick the stopped session"
    assert not item_record_exists(item)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_on_timeout_interrupts_a_browser_session_without_stopping_it(heygen_env, live_session_key):
    browser = browser_session(heygen_env)
    live_session_key.publish(browser, "server:test:1:1")
    item = avatar_item()
    heygen_env.delay("streaming.task", 5)
    avatar = AvatarService(item.service)
    avatar.on_start()
    outcome: list[object] = []

    def handler() -> None:  # an ASYNC worker's thread, still inside process_event when the budget ends
        try:
            outcome.append(avatar.process_event(item.live_event, item))
        except Exception as exc:
            outcome.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=handler)
    thread.start()
    try:
        wait_for(lambda: heygen_env.endpoint_calls("streaming.task"), timeout=30, what="the task")
        assert item_record_exists(item), "written before the task was sent"
        AvatarService(item.service).on_timeout(item.live_event, item)
        assert heygen_env.interrupts == [browser]
        assert heygen_env.endpoint_calls("streaming.stop") == []
        assert [s.session_id for s in heygen_env.live_sessions()] == [browser]
    finally:
        thread.join(timeout=60)
        avatar.on_stop()
    assert outcome == [True]
    assert heygen_env.sessions[browser].state == "connected", "the browser's session is not ours to stop"


@pytest.mark.django_db
def test_on_timeout_of_an_item_that_never_reached_heygen_calls_nothing(heygen_env):
    item = avatar_item()
    AvatarService(item.service).on_timeout(item.live_event, item)
    assert heygen_env.calls == []
