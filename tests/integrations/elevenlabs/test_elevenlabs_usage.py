"""Characters counted per live session, and the per-session cap."""

from __future__ import annotations

import logging
import threading

import pytest
from django.db import connection
from django.utils import timezone

from project.app_config.config import set_config
from project.integrations.elevenlabs.client import ElevenLabsClient
from project.integrations.elevenlabs.errors import ElevenLabsServerError
from project.integrations.elevenlabs.models import TTSUsage
from project.integrations.elevenlabs.usage import resolve_session_id
from project.tiktok_events.models import LiveSession

pytestmark = pytest.mark.django_db


def make_session(name: str, status: str = LiveSession.Status.LIVE) -> LiveSession:
    return LiveSession.objects.create(name=name, streamer="streamer", started_at=timezone.now(), status=status)


def test_it_counts_characters_per_live_session(elevenlabs_fake):
    afternoon, evening = make_session("tarde"), make_session("noche")
    client = ElevenLabsClient()
    client.text_to_speech_and_save("Gracias Ana", session=afternoon)
    client.text_to_speech_and_save("Gracias Luis", session=afternoon.pk)
    client.text_to_speech_and_save("Hola", session=evening)
    client.text_to_speech_and_save("Gracias Ana", session=evening)  # cached: free

    first = TTSUsage.objects.get(session=afternoon)
    second = TTSUsage.objects.get(session=evening)
    assert (first.characters, first.credits, first.requests, first.cache_hits) == (23, 23, 2, 0)
    assert (second.characters, second.credits, second.requests, second.cache_hits) == (4, 4, 1, 1)


def test_the_live_session_being_captured_is_charged_by_default(elevenlabs_fake):
    make_session("ended", LiveSession.Status.ENDED)
    live = make_session("live")
    make_session("later but failed", LiveSession.Status.FAILED)
    assert resolve_session_id(None) == live.pk

    ElevenLabsClient().text_to_speech_and_save("hola")
    assert TTSUsage.objects.get().session == live


def test_the_cap_falls_back_to_no_speech_and_says_so(elevenlabs_fake, caplog):
    caplog.set_level(logging.WARNING)
    live = make_session("live")
    set_config("elevenlabs_session_char_cap", "25")
    client = ElevenLabsClient()

    spoken = client.text_to_speech_and_save("Gracias por la rosa")  # 19 characters
    refused = client.text_to_speech_and_save("Gracias por el león")  # 19 more would pass 25
    short = client.text_to_speech_and_save("Hola Ana")  # 8 still fit: 27 > 25, refused too
    tiny = client.text_to_speech_and_save("Hola")  # 4 fit: 23 <= 25
    cached = client.text_to_speech_and_save("Gracias por la rosa")  # already paid for: still spoken

    assert spoken is not None and spoken.is_file()
    assert refused is None and short is None
    assert tiny is not None
    assert cached == spoken
    assert [r.json["text"] for r in elevenlabs_fake.tts_requests()] == ["Gracias por la rosa", "Hola"]
    usage = TTSUsage.objects.get(session=live)
    assert (usage.characters, usage.refused, usage.cache_hits) == (23, 2, 1)
    assert "character cap of 25 would be passed (19 used, 19 needed)" in caplog.text


def test_the_cap_is_per_session(elevenlabs_fake):
    first, second = make_session("one"), make_session("two")
    set_config("elevenlabs_session_char_cap", "10")
    client = ElevenLabsClient()
    assert client.text_to_speech_and_save("diez letra", session=first) is not None
    assert client.text_to_speech_and_save("otra frase", session=first) is None
    assert client.text_to_speech_and_save("otra frase", session=second) is not None


def test_a_failed_call_gives_its_characters_back(elevenlabs_fake):
    live = make_session("live")
    elevenlabs_fake.set_mode("500", times=1)
    with pytest.raises(ElevenLabsServerError):
        ElevenLabsClient().text_to_speech_and_save("hola")
    assert TTSUsage.objects.get(session=live).characters == 0
    ElevenLabsClient().text_to_speech_and_save("hola")
    usage = TTSUsage.objects.get(session=live)
    assert (usage.characters, usage.requests) == (4, 1)


@pytest.mark.django_db(transaction=True)
def test_concurrent_phrases_never_pass_the_cap(elevenlabs_fake):
    live = make_session("live")
    set_config("elevenlabs_session_char_cap", "35")
    results: list[object] = []
    lock = threading.Lock()

    def speak(number: int) -> None:
        try:
            path = ElevenLabsClient().text_to_speech_and_save(f"frase {number:04d}", session=live.pk)  # 10 chars
            with lock:
                results.append(path)
        finally:
            connection.close()

    threads = [threading.Thread(target=speak, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert len(results) == 8
    assert sum(path is not None for path in results) == 3
    usage = TTSUsage.objects.get(session=live)
    assert (usage.characters, usage.requests, usage.refused) == (30, 3, 5)
    assert len(elevenlabs_fake.tts_requests()) == 3
