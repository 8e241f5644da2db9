"""LLMService on real PostgreSQL and Redis, with the LLM and ElevenLabs fakes."""

from __future__ import annotations

import time
import uuid

import pytest
from django.utils import timezone

from project.app_config.config import set_config
from project.integrations.llm.client import LLMClient
from project.integrations.llm.errors import LLMAuthError, LLMServerError
from project.integrations.llm.models import LLMReply
from project.integrations.llm.services import LLMService, trim_reply
from project.queue_system.base_service import TransientError
from project.queue_system.models import QueueItem, Service
from project.queue_system.service_loader import load_service_class
from project.tiktok_events.models import LiveEvent, LiveSession

pytestmark = pytest.mark.django_db


@pytest.fixture
def session() -> LiveSession:
    return LiveSession.objects.create(streamer="streamer", started_at=timezone.now(), status=LiveSession.Status.LIVE)


@pytest.fixture
def service(seeded, llm_fake) -> LLMService:
    row = Service.objects.get(slug="llm")
    instance = load_service_class(row.service_class)(row)
    instance.llm = LLMClient(backoff_seconds=0.01)  # the real client, with short waits between retries
    instance.on_start()
    return instance


def viewer() -> str:
    """A viewer id no other test (or earlier run) has used: the cooldown lives in Redis."""
    return f"viewer-{uuid.uuid4().hex[:10]}"


def make_event(session: LiveSession, event_type: str, user: str, data: dict | None = None, **fields) -> LiveEvent:
    return LiveEvent.objects.create(
        session=session,
        event_type=event_type,
        user_unique_id=user,
        user_nickname=fields.pop("nickname", "Ana"),
        event_data=data or {},
        received_at=timezone.now(),
        **fields,
    )


def process(service: LLMService, live_event: LiveEvent) -> bool:
    item, _ = QueueItem.objects.get_or_create(
        live_event=live_event, service=service.service, defaults={"event_type": live_event.event_type, "priority": 5}
    )
    return service.process_event(live_event, item)


def test_the_seeded_service_is_inactive_sync_and_answers_comments_gifts_and_follows(seeded):
    row = Service.objects.get(slug="llm")
    assert not row.is_active
    assert row.mode == "SYNC"
    assert issubclass(load_service_class(row.service_class), LLMService)
    configs = {c.event_type: (c.priority, c.discardable) for c in row.event_configs.all()}
    assert configs == {"GiftEvent": (10, False), "FollowEvent": (8, False), "CommentEvent": (6, True)}


def test_it_replies_to_comments_gifts_and_follows_and_stores_each_reply(service, session, llm_fake):
    llm_fake.replies.extend(["¡Es el dino, Ana!", "¡Gracias por la rosa, Luis!", "¡Bienvenida, Eva!"])
    comment = make_event(session, "CommentEvent", viewer(), {"comment": "¿qué juego es?"})
    gift = make_event(session, "GiftEvent", viewer(), {"gift": {"name": "Rosa"}}, nickname="Luis")
    follow = make_event(session, "FollowEvent", viewer(), nickname="Eva")
    for live_event in (comment, gift, follow):
        assert process(service, live_event) is True

    replies = {r.live_event_id: r for r in LLMReply.objects.all()}
    assert replies[comment.pk].reply == "¡Es el dino, Ana!"
    assert replies[gift.pk].reply == "¡Gracias por la rosa, Luis!"
    assert replies[follow.pk].reply == "¡Bienvenida, Eva!"
    for reply in replies.values():
        assert reply.status == LLMReply.Status.REPLIED
        assert reply.session == session and reply.service == service.service
        assert reply.model == "fake-model"
        assert reply.total_tokens == reply.prompt_tokens + reply.completion_tokens > 0
    asked = [r.json["messages"][-1]["content"] for r in llm_fake.chat_requests()]
    assert '"¿qué juego es?"' in asked[0]
    assert '"Rosa"' in asked[1] and "Luis" in asked[1]
    assert "Eva" in asked[2]
    body = llm_fake.chat_requests()[0].json
    assert body["max_tokens"] == 120


def test_a_viewer_gets_at_most_one_reply_per_interval(service, session, llm_fake):
    ana, luis = viewer(), viewer()
    first = make_event(session, "CommentEvent", ana, {"comment": "hola"})
    second = make_event(session, "CommentEvent", ana, {"comment": "¿me oyes?"})
    other = make_event(session, "CommentEvent", luis, {"comment": "buenas"})
    for live_event in (first, second, other):
        assert process(service, live_event) is True

    assert list(LLMReply.objects.order_by("id").values_list("live_event_id", flat=True)) == [first.pk, other.pk]
    assert len(llm_fake.chat_requests()) == 2


def test_a_zero_interval_answers_every_message(service, session, llm_fake):
    set_config("llm_reply_cooldown_seconds", "0")
    ana = viewer()
    for text in ("uno", "dos", "tres"):
        process(service, make_event(session, "CommentEvent", ana, {"comment": text}))
    assert LLMReply.objects.count() == 3


def test_a_transient_failure_is_retried_and_frees_the_viewer(service, session, llm_fake):
    llm_fake.set_mode("503")
    live_event = make_event(session, "CommentEvent", viewer(), {"comment": "hola"})
    with pytest.raises(LLMServerError) as caught:
        process(service, live_event)
    assert isinstance(caught.value, TransientError)  # the queue worker retries it
    failed = LLMReply.objects.get(live_event=live_event)
    assert failed.status == LLMReply.Status.FAILED and "failed (503" in failed.error

    llm_fake.set_mode("ok")
    assert process(service, live_event) is True  # the retry is not blocked by the cooldown
    replied = LLMReply.objects.get(live_event=live_event)
    assert replied.pk == failed.pk
    assert (replied.status, replied.error) == (LLMReply.Status.REPLIED, "")


def test_a_permanent_failure_fails_the_item_with_a_clear_message(service, session, llm_fake, monkeypatch):
    monkeypatch.setenv("LLM_KEY", "sk-wrong-key-000000000000")
    live_event = make_event(session, "FollowEvent", viewer())
    with pytest.raises(LLMAuthError, match="Set a valid key in Config llm_key") as caught:
        process(service, live_event)
    assert not isinstance(caught.value, TransientError)
    assert LLMReply.objects.get(live_event=live_event).status == LLMReply.Status.FAILED


def test_nothing_is_asked_for_an_open_streak_or_an_empty_comment(service, session, llm_fake):
    assert process(
        service, make_event(session, "GiftEvent", viewer(), {"gift": {"name": "Rosa"}}, streak_status="open")
    )
    assert process(service, make_event(session, "CommentEvent", viewer(), {"comment": ""}))
    assert llm_fake.chat_requests() == []
    assert not LLMReply.objects.exists()


def test_long_replies_are_cut_for_speech(service, session, llm_fake):
    set_config("llm_max_reply_characters", "30")
    llm_fake.replies.append("Gracias por venir. " + "Hoy jugamos al dino toda la tarde sin parar " * 3)
    process(service, make_event(session, "CommentEvent", viewer(), {"comment": "hola"}))
    assert LLMReply.objects.get().reply == "Gracias por venir."
    assert trim_reply("palabra " * 10, 20) == "palabra palabra"  # no sentence end: cut between words


@pytest.fixture
def player(tmp_path, monkeypatch):
    """A `paplay` on PATH that records what it was asked to play and exits at once."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "paplay"
    script.write_text(f'#!/bin/sh\necho "$1" >> {tmp_path}/played.log\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    return tmp_path / "played.log"


@pytest.mark.slow
def test_replies_are_spoken_through_tts_when_configured(service, session, llm_fake, elevenlabs_fake, player):
    set_config("llm_speak_replies", "true")
    llm_fake.replies.append("¡Gracias por el león, Ana!")
    live_event = make_event(session, "GiftEvent", viewer(), {"gift": {"name": "León"}})
    assert process(service, live_event) is True

    reply = LLMReply.objects.get(live_event=live_event)
    assert reply.spoken and reply.tts_error == ""
    (tts,) = elevenlabs_fake.tts_requests()
    assert tts.json["text"] == "¡Gracias por el león, Ana!"
    played = player.read_text().split()
    assert played == [str(service.tts.media_dir / reply.audio_file)]


@pytest.mark.slow
def test_a_retry_after_a_tts_failure_speaks_the_stored_reply_without_asking_again(
    service, session, llm_fake, elevenlabs_fake, player
):
    set_config("llm_speak_replies", "true")
    elevenlabs_fake.set_mode("429", times=1)
    live_event = make_event(session, "FollowEvent", viewer())
    with pytest.raises(TransientError):
        process(service, live_event)
    reply = LLMReply.objects.get(live_event=live_event)
    assert reply.status == LLMReply.Status.REPLIED and not reply.spoken
    assert "rate limiting" in reply.tts_error

    assert process(service, live_event) is True
    reply.refresh_from_db()
    assert reply.spoken and reply.tts_error == ""
    assert len(llm_fake.chat_requests()) == 1
    assert len(elevenlabs_fake.tts_requests()) == 2


@pytest.mark.slow
def test_a_permanent_tts_failure_keeps_the_reply_and_completes(service, session, llm_fake, elevenlabs_fake, player):
    set_config("llm_speak_replies", "true")
    elevenlabs_fake.set_mode("401")
    live_event = make_event(session, "FollowEvent", viewer())
    assert process(service, live_event) is True
    reply = LLMReply.objects.get(live_event=live_event)
    assert reply.status == LLMReply.Status.REPLIED and not reply.spoken
    assert "rejected the API key" in reply.tts_error


def test_a_bad_config_value_fails_with_its_name(service, session, llm_fake):
    set_config("llm_reply_cooldown_seconds", "soon")
    with pytest.raises(Exception, match="Config llm_reply_cooldown_seconds='soon' is not a whole number"):
        process(service, make_event(session, "FollowEvent", viewer()))


@pytest.mark.slow
def test_the_reply_and_its_speech_end_within_the_services_time_budget(service, session, llm_fake):
    Service.objects.filter(pk=service.service.pk).update(time_budget_seconds=10)
    service.service.refresh_from_db()
    llm_fake.set_mode("slow", delay=60)
    started = time.monotonic()
    with pytest.raises(TransientError):
        process(service, make_event(session, "FollowEvent", viewer()))
    took = time.monotonic() - started
    # 10 s budget less its 1 s margin: the handler gives up by itself, before the worker would kill it.
    assert 8.5 <= took <= 9.8, f"took {took:.1f} s"
