"""The /api/elevenlabs/ endpoints: staff or token only, clear errors, audio served back."""

from __future__ import annotations

import json
import uuid

import pytest
from django.test import Client

from project.app_config.config import set_config
from tests.fakes.fixtures import ELEVENLABS_TEST_KEY

pytestmark = pytest.mark.django_db

TOKEN = "api-token-for-tests-0123456789"


def post_tts(client: Client, payload: object, **headers: str):
    return client.post("/api/elevenlabs/tts", json.dumps(payload), content_type="application/json", headers=headers)


@pytest.fixture(autouse=True)
def own_rate_window(settings):
    """The per-minute request cap counts in Redis: this module's requests are not another run's."""
    settings.ELEVENLABS_API_RATE_KEY = f"elevenlabs:test:{uuid.uuid4().hex[:10]}"


@pytest.fixture
def token():
    set_config("api_token", TOKEN)
    return TOKEN


def test_anonymous_and_non_staff_users_are_refused(client, django_user_model, elevenlabs_fake):
    for response in (
        post_tts(client, {"text": "hola"}),
        client.get("/api/elevenlabs/voices"),
        client.get("/api/elevenlabs/audio/" + "a" * 32 + ".wav"),
    ):
        assert response.status_code == 401
        assert "log in as staff" in response.json()["error"]
    client.force_login(django_user_model.objects.create_user("viewer", password="pw"))
    assert post_tts(client, {"text": "hola"}).status_code == 401
    assert elevenlabs_fake.tts_requests() == []


def test_staff_get_an_audio_url_that_serves_the_saved_phrase(admin_client_logged, elevenlabs_fake):
    response = post_tts(admin_client_logged, {"text": "Gracias por seguirme"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["audio_url"].startswith("http://testserver/api/elevenlabs/audio/")
    assert (body["cached"], body["characters"]) == (False, len("Gracias por seguirme"))

    audio = admin_client_logged.get(body["audio_url"].removeprefix("http://testserver"))
    assert audio.status_code == 200
    assert audio["Content-Type"] == "audio/wav"
    assert b"".join(audio.streaming_content)[:4] == b"RIFF"

    again = post_tts(admin_client_logged, {"text": "Gracias por seguirme"}).json()
    assert again["cached"] is True and again["audio_url"] == body["audio_url"]
    assert len(elevenlabs_fake.tts_requests()) == 1


def test_a_staff_session_still_needs_the_csrf_token(django_user_model, elevenlabs_fake):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(django_user_model.objects.create_superuser("boss", "boss@example.com", "pw"))
    assert post_tts(browser, {"text": "hola"}).status_code == 403
    assert elevenlabs_fake.tts_requests() == []


def test_a_valid_token_works_without_login_or_csrf(elevenlabs_fake, token):
    client = Client(enforce_csrf_checks=True)
    response = post_tts(client, {"text": "hola", "voice_id": "fakeVoiceLuciaEs0001"}, Authorization=f"Bearer {token}")
    assert response.status_code == 200, response.content
    assert elevenlabs_fake.tts_requests()[0].path.endswith("fakeVoiceLuciaEs0001")
    voices = client.get("/api/elevenlabs/voices", headers={"Authorization": f"Bearer {token}"})
    assert [v["voice_id"] for v in voices.json()["voices"]][:1] == ["JBFqnCBsd6RMkjVDRZzb"]


@pytest.mark.parametrize("header", ["Bearer wrong-token", "Bearer ", f"Token {TOKEN}", TOKEN])
def test_a_wrong_token_is_refused(client, elevenlabs_fake, token, header):
    assert post_tts(client, {"text": "hola"}, Authorization=header).status_code == 401


def test_an_unset_token_never_matches_an_empty_one(client, elevenlabs_fake):
    set_config("api_token", "")
    assert post_tts(client, {"text": "hola"}, Authorization="Bearer ").status_code == 401
    assert post_tts(client, {"text": "hola"}, Authorization="Bearer").status_code == 401


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be an object"),
        ('{"voice_id": "x"}', 'field "text" is required'),
        ('{"text": "   "}', 'field "text" is required'),
        ('{"text": 42}', 'field "text" is required'),
        (json.dumps({"text": "x" * 5001}), "longer than 5000"),
    ],
)
@pytest.mark.slow
def test_bad_input_gets_a_clear_400(admin_client_logged, elevenlabs_fake, body, message):
    response = admin_client_logged.post("/api/elevenlabs/tts", body, content_type="application/json")
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert elevenlabs_fake.tts_requests() == []


def test_a_form_post_works_too(admin_client_logged, elevenlabs_fake):
    response = admin_client_logged.post("/api/elevenlabs/tts", {"text": "hola desde un formulario"})
    assert response.status_code == 200


@pytest.mark.slow
def test_upstream_failures_are_reported_without_the_key(admin_client_logged, elevenlabs_fake):
    elevenlabs_fake.set_mode("401")
    bad_key = post_tts(admin_client_logged, {"text": "hola"})
    assert bad_key.status_code == 502
    assert "rejected the API key" in bad_key.json()["error"]
    assert ELEVENLABS_TEST_KEY not in bad_key.content.decode()

    elevenlabs_fake.set_mode("429", retry_after=12)
    busy = post_tts(admin_client_logged, {"text": "hola"})
    assert busy.status_code == 503
    assert busy["Retry-After"] == "12"
    assert busy.json()["permanent"] is False

    elevenlabs_fake.set_mode("ok")
    unknown = post_tts(admin_client_logged, {"text": "hola", "voice_id": "noSuchVoice"})
    assert unknown.status_code == 400
    assert "voice_not_found" in unknown.json()["error"]


@pytest.mark.slow
def test_the_cap_answers_429(admin_client_logged, elevenlabs_fake):
    set_config("elevenlabs_session_char_cap", "5")
    response = post_tts(admin_client_logged, {"text": "demasiado largo"})
    assert response.status_code == 429
    assert "character cap" in response.json()["error"]
    assert elevenlabs_fake.tts_requests() == []


@pytest.mark.parametrize("name", ["..%2F..%2Fsettings.py", "x.wav", "a" * 32 + ".txt", "a" * 32 + ".wav"])
def test_only_saved_phrases_can_be_fetched(admin_client_logged, elevenlabs_fake, name):
    assert admin_client_logged.get(f"/api/elevenlabs/audio/{name}").status_code == 404
