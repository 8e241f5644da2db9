"""What bounds the ElevenLabs spending: voice ids checked before they reach a URL, the default
per-session character cap, and the per-minute request cap of the HTTP API (on the real Redis)."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from django.test import Client
from django.utils import timezone

from project.app_config.config import set_config
from project.integrations.elevenlabs.client import DEFAULT_SESSION_CHAR_CAP, ElevenLabsClient
from project.integrations.elevenlabs.errors import ElevenLabsConfigError, ElevenLabsRequestError
from project.integrations.elevenlabs.usage import SessionUsage
from project.tiktok_events.models import LiveSession

pytestmark = pytest.mark.django_db

BAD_VOICE_IDS = ["../../v1/user", "abc/def", "voice?x=1", "a b", "voice%2F..", "x" * 65, "ñandú"]


@pytest.fixture
def own_rate_window(settings):
    """A per-minute count of this test's own: other test runs share the Redis server."""
    settings.ELEVENLABS_API_RATE_KEY = f"elevenlabs:test:{uuid.uuid4().hex[:10]}"


def post_tts(client, payload: dict):
    return client.post("/api/elevenlabs/tts", json.dumps(payload), content_type="application/json")


@pytest.mark.slow
@pytest.mark.parametrize("voice_id", [*BAD_VOICE_IDS, 42])
def test_the_api_refuses_a_voice_id_that_is_not_letters_and_digits(
    admin_client_logged, elevenlabs_fake, own_rate_window, voice_id
):
    response = post_tts(admin_client_logged, {"text": "hola", "voice_id": voice_id})
    assert response.status_code == 400
    assert "letters and digits only" in response.json()["error"]
    assert elevenlabs_fake.requests == [], "nothing may reach ElevenLabs"


@pytest.mark.slow
def test_a_voice_id_of_letters_and_digits_reaches_elevenlabs(admin_client_logged, elevenlabs_fake, own_rate_window):
    response = post_tts(admin_client_logged, {"text": "hola", "voice_id": "fakeVoiceLuciaEs0001"})
    assert response.status_code == 200
    [request] = elevenlabs_fake.tts_requests()
    assert request.path == "/v1/text-to-speech/fakeVoiceLuciaEs0001"


@pytest.mark.parametrize("voice_id", BAD_VOICE_IDS[:4])
def test_the_client_refuses_a_bad_voice_id_from_a_caller_or_from_config(elevenlabs_fake, voice_id):
    with pytest.raises(ElevenLabsRequestError, match="not an ElevenLabs voice id") as refused:
        ElevenLabsClient().text_to_speech_and_save("hola", voice_id=voice_id)
    assert refused.value.permanent
    set_config("elevenlabs_voice_id", voice_id)
    with pytest.raises(ElevenLabsConfigError, match="fix Config elevenlabs_voice_id"):
        ElevenLabsClient().text_to_speech_and_save("hola")
    assert elevenlabs_fake.requests == []


def test_a_session_is_capped_at_20000_characters_unless_the_cap_is_lifted(elevenlabs_fake):
    assert DEFAULT_SESSION_CHAR_CAP == 20_000
    live = LiveSession.objects.create(streamer="s", started_at=timezone.now(), status=LiveSession.Status.LIVE)
    SessionUsage(live.pk).reserve(19_990, None)  # a long live so far
    client = ElevenLabsClient()
    assert client.text_to_speech_and_save("diez letra", session=live) is not None, "10 characters still fit"
    assert client.text_to_speech_and_save("una más", session=live) is None, "the 20,001st character is refused"
    assert len(elevenlabs_fake.tts_requests()) == 1

    set_config("elevenlabs_session_char_cap", "0")  # lifted on purpose
    assert client.text_to_speech_and_save("una más", session=live) is not None
    assert len(elevenlabs_fake.tts_requests()) == 2


def wait_for_a_fresh_minute_if_this_one_ends_soon() -> None:
    """The count is per calendar minute: a test must not straddle two."""
    left = 60 - time.time() % 60
    if left < 5:
        time.sleep(left + 0.1)


@pytest.mark.slow
def test_the_api_answers_429_with_retry_after_past_its_requests_per_minute(
    admin_client_logged, elevenlabs_fake, own_rate_window
):
    set_config("elevenlabs_api_requests_per_minute", "3")
    wait_for_a_fresh_minute_if_this_one_ends_soon()
    answers = [
        post_tts(admin_client_logged, {"text": "uno"}),
        admin_client_logged.get("/api/elevenlabs/voices"),
        post_tts(admin_client_logged, {"text": "uno"}),  # cached, still a request
        post_tts(admin_client_logged, {"text": "dos"}),
        admin_client_logged.get("/api/elevenlabs/voices"),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    refused = answers[3]
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "at most 3 requests a minute" in refused.json()["error"]
    assert "elevenlabs_api_requests_per_minute" in refused.json()["error"]
    assert [r.path for r in elevenlabs_fake.tts_requests()] == ["/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb"]

    set_config("elevenlabs_api_requests_per_minute", "0")  # lifted on purpose
    assert post_tts(admin_client_logged, {"text": "dos"}).status_code == 200


@pytest.mark.slow
def test_the_cap_is_30_a_minute_by_default(admin_client_logged, elevenlabs_fake, own_rate_window):
    wait_for_a_fresh_minute_if_this_one_ends_soon()
    codes = [admin_client_logged.get("/api/elevenlabs/voices").status_code for _ in range(31)]
    assert codes == [200] * 30 + [429]


def test_a_stranger_does_not_spend_the_cap(admin_client_logged, elevenlabs_fake, own_rate_window):
    set_config("elevenlabs_api_requests_per_minute", "1")
    wait_for_a_fresh_minute_if_this_one_ends_soon()
    stranger = Client()
    for _ in range(5):
        assert stranger.get("/api/elevenlabs/voices").status_code == 401
    assert admin_client_logged.get("/api/elevenlabs/voices").status_code == 200


@pytest.mark.slow
def test_the_api_refuses_requests_while_the_cap_cannot_be_checked(
    admin_client_logged, elevenlabs_fake, own_rate_window, settings
):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens there
    response = post_tts(admin_client_logged, {"text": "hola"})
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "Redis is unreachable" in response.json()["error"]
    assert elevenlabs_fake.requests == []
