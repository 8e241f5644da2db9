"""LLM replies and TTS usage in the admin, and the replies on each LiveEvent's page."""

from __future__ import annotations

import pytest
from django.utils import timezone

from project.integrations.elevenlabs.models import TTSUsage
from project.integrations.llm.models import LLMReply
from project.tiktok_events.models import LiveEvent, LiveSession

pytestmark = pytest.mark.django_db


@pytest.fixture
def reply() -> LLMReply:
    session = LiveSession.objects.create(name="tarde", streamer="streamer", started_at=timezone.now())
    live_event = LiveEvent.objects.create(
        session=session,
        event_type="CommentEvent",
        user_nickname="Ana",
        user_unique_id="ana_99",
        event_data={"comment": "hola"},
        received_at=timezone.now(),
    )
    return LLMReply.objects.create(
        live_event=live_event,
        session=session,
        event_type="CommentEvent",
        viewer="Ana",
        viewer_id="ana_99",
        prompt='El espectador Ana ha escrito en el chat: "hola".',
        reply="¡Hola Ana, bienvenida al directo!",
        status=LLMReply.Status.REPLIED,
        prompt_tokens=40,
        completion_tokens=6,
        total_tokens=46,
    )


def test_replies_are_listed_filterable_and_searchable(admin_client_logged, reply):
    listing = admin_client_logged.get("/admin/llm/llmreply/?status__exact=replied&q=ana_99").content.decode()
    assert "¡Hola Ana, bienvenida al directo!" in listing
    assert "46" in listing
    empty = admin_client_logged.get("/admin/llm/llmreply/?status__exact=failed").content.decode()
    assert "bienvenida al directo" not in empty
    detail = admin_client_logged.get(f"/admin/llm/llmreply/{reply.pk}/change/").content.decode()
    assert "El espectador Ana ha escrito" in detail
    assert admin_client_logged.get("/admin/llm/llmreply/add/").status_code == 403


def test_the_reply_shows_on_its_live_event_page(admin_client_logged, reply):
    page = admin_client_logged.get(f"/admin/tiktok_events/liveevent/{reply.live_event_id}/change/").content.decode()
    assert "LLM replies" in page
    assert "¡Hola Ana, bienvenida al directo!" in page
    # The LiveEvent admin keeps what its own app configured.
    listing = admin_client_logged.get("/admin/tiktok_events/liveevent/?event_type=CommentEvent").content.decode()
    assert "ana_99" in listing


def test_tts_usage_is_visible_per_session(admin_client_logged, reply):
    TTSUsage.objects.create(session=reply.session, characters=1234, credits=617, requests=9, refused=2)
    listing = admin_client_logged.get("/admin/elevenlabs/ttsusage/").content.decode()
    assert "1234" in listing and "617" in listing
    assert admin_client_logged.get("/admin/elevenlabs/ttsusage/add/").status_code == 403
