"""Moderation through the whole system: the simulator's demo live, through the real TikTokLive client,
the capture, RabbitMQ and the DinoChrome, Overlays and LLM workers, to the ElevenLabs and LLM fakes and
the overlay's Redis stream. The demo's "qué juego de m1erda" and its viewer "Pendejo_69" never reach a
voice, an LLM or the screen as written; the other comments and names still do."""

from __future__ import annotations

import json

import pytest

from project.app_config.config import set_config
from project.moderation.counts import ModerationCounts
from project.queue_system.models import QueueItem, Service
from project.services.overlays.stream import publisher
from tests.support.browser import dino_worker_env
from tests.support.capture import run_capture
from tests.support.queueing import all_settled
from tests.support.servers import free_port
from tests.support.waiting import wait_for
from tests.support.worker_processes import running_workers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BLOCKED_COMMENT = "qué juego de m1erda"
BLOCKED_NAME = "Pendejo_69"
# What must never reach the air, in any spelling the services could have produced.
NEVER = ("m1erda", "mierda", "Pendejo", "pendejo")


def test_a_blocked_comment_of_the_demo_is_never_spoken_sent_to_the_llm_or_shown_unmasked(
    vhost, seeded, live_server, llm_fake, elevenlabs_fake, overlay_stream
):
    Service.objects.filter(slug="llm").update(is_active=True)
    services = list(Service.objects.filter(slug__in=["dinochrome", "overlays", "llm"], is_active=True))
    assert len(services) == 3
    set_config("llm_speak_replies", "true")
    set_config("llm_reply_cooldown_seconds", "0")
    # DinoChrome reads every comment out loud (the riskiest override a streamer can make) and
    # plays no game, so the test waits for voices, not for the browser.
    set_config(
        "dinochrome_actions",
        json.dumps(
            {
                "CommentEvent": ["say:{nickname} says {comment}"],
                "GiftEvent:Rose": ["say:Thank you {nickname} for the rose!"],
                "LikeEvent": [],
                "ShareEvent": [],
            }
        ),
    )
    set_config(
        "overlays_display_times",
        json.dumps({t: 0.1 for t in ("CommentEvent", "LikeEvent", "JoinEvent", "GiftEvent", "FollowEvent")}),
    )
    with running_workers(
        vhost, ["dinochrome", "overlays", "llm"], extra_env=dino_worker_env(live_server, free_port())
    ) as workers:
        run = run_capture(vhost, "demo", args=["--duration", "8"])
        assert run.returncode == 0, run.output
        wait_for(lambda: all(all_settled(s) for s in services), timeout=240, what="the items did not settle")
        logs = {s.slug: workers.log(s.slug) for s in services}

    rude = run.events().filter(event_type="CommentEvent", event_data__comment=BLOCKED_COMMENT).first()
    rude_name = run.events().filter(event_type="FollowEvent", user_nickname=BLOCKED_NAME).first()
    assert rude is not None and rude_name is not None, "the demo sends both in its first seconds"

    # Spoken (DinoChrome's phrases and the LLM's replies, through ElevenLabs): never the words.
    spoken = [r.json["text"] for r in elevenlabs_fake.tts_requests()]
    assert not [text for text in spoken if any(word in text for word in NEVER)], spoken
    assert not any(text.startswith("Troll says") for text in spoken)
    assert "Thanks for the follow, friend!" in spoken
    clean = run.events().filter(event_type="CommentEvent").exclude(pk=rude.pk).first()
    assert f"{clean.user_nickname} says {clean.event_data['comment']}" in spoken  # a clean one still is

    # Sent to the LLM: never the comment nor the name; the clean comments were.
    prompts = [r.json["messages"][-1]["content"] for r in llm_fake.chat_requests()]
    assert prompts and not [p for p in prompts if any(word in p for word in NEVER)], prompts
    assert any(f'"{clean.event_data["comment"]}"' in p for p in prompts)
    assert any(p.startswith("espectador acaba de empezar a seguir") for p in prompts)

    # Shown on the overlay: masked.
    cards = {c["event_id"]: c for c in (json.loads(f["card"]) for _, f in publisher().xrange(overlay_stream))}
    assert not [c for c in cards.values() if any(word in c["nickname"] + c["text"] for word in NEVER)]
    assert cards[rude.pk]["text"] == "qué juego de m*****"
    assert cards[rude_name.pk]["nickname"] == "P******_69"
    assert cards[clean.pk]["text"] == clean.event_data["comment"]

    # Each item says why, completes, and the session's count is what the dashboard prints.
    why = dict(QueueItem.objects.filter(live_event=rude).values_list("service__slug", "moderation"))
    assert why == {
        "dinochrome": "comment blocked (matched 'mierda')",
        "overlays": "comment masked (matched 'mierda')",
        "llm": "comment blocked (matched 'mierda')",
    }
    assert set(QueueItem.objects.filter(live_event__in=[rude, rude_name]).values_list("status", flat=True)) == {
        QueueItem.Status.COMPLETED
    }
    counts = ModerationCounts.for_session(run.session_id)
    assert counts.comments == 1 and counts.nicknames == 1, counts
    assert "moderated: comment blocked (matched 'mierda')" in logs["llm"]
