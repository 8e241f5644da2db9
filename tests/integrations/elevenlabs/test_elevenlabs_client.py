"""ElevenLabsClient through the real elevenlabs SDK against the local protocol fake."""

from __future__ import annotations

import logging
import time
import wave

import pytest

from project.app_config.config import set_config
from project.integrations.elevenlabs.client import DEFAULT_MODEL_ID, DEFAULT_VOICE_ID, ElevenLabsClient
from project.integrations.elevenlabs.errors import (
    ElevenLabsAuthError,
    ElevenLabsConfigError,
    ElevenLabsError,
    ElevenLabsNetworkError,
    ElevenLabsQuotaError,
    ElevenLabsRateLimitError,
    ElevenLabsRequestError,
    ElevenLabsServerError,
)
from project.integrations.elevenlabs.models import TTSUsage
from project.queue_system.base_service import TransientError
from tests.fakes.fixtures import ELEVENLABS_TEST_KEY
from tests.support.servers import free_port

pytestmark = pytest.mark.django_db

KEY_ENV = ("ELEVENLABS_API", "ELEVENLABS_API_KEY", "ELEVEN_API_KEY")


def wav_seconds(path) -> tuple[int, float]:
    with wave.open(str(path), "rb") as audio:
        return audio.getframerate(), audio.getnframes() / audio.getframerate()


def test_it_saves_real_speech_under_media_elevenlabs(elevenlabs_fake, media_root):
    path = ElevenLabsClient().text_to_speech_and_save("Gracias por la rosa, Ana")

    assert path.parent == media_root / "elevenlabs"
    assert path.suffix == ".wav"
    rate, seconds = wav_seconds(path)
    assert rate == 22050
    assert seconds > 0.5  # spoken words, not an empty header
    (request,) = elevenlabs_fake.tts_requests()
    assert request.path == f"/v1/text-to-speech/{DEFAULT_VOICE_ID}"
    assert request.headers["xi-api-key"] == ELEVENLABS_TEST_KEY
    assert request.query["output_format"] == "wav_22050"
    assert request.json == {"text": "Gracias por la rosa, Ana", "model_id": DEFAULT_MODEL_ID}


def test_it_serves_the_same_text_and_voice_from_cache_without_an_api_call(elevenlabs_fake):
    client = ElevenLabsClient()
    first = client.text_to_speech_and_save("Bienvenida al directo")
    again = ElevenLabsClient().text_to_speech_and_save("Bienvenida al directo")
    other_voice = client.text_to_speech_and_save("Bienvenida al directo", voice_id="fakeVoiceLuciaEs0001")

    assert again == first
    assert other_voice != first
    assert [r.path.rsplit("/", 1)[1] for r in elevenlabs_fake.tts_requests()] == [
        DEFAULT_VOICE_ID,
        "fakeVoiceLuciaEs0001",
    ]
    usage = TTSUsage.objects.get(session=None)
    assert (usage.requests, usage.cache_hits) == (2, 1)


def test_a_longer_text_gives_longer_audio(elevenlabs_fake):
    client = ElevenLabsClient()
    short = wav_seconds(client.text_to_speech_and_save("Hola"))[1]
    long = wav_seconds(client.text_to_speech_and_save("Hola a todos, muchas gracias por venir al directo de hoy"))[1]
    assert long > short * 2


def test_config_wins_over_the_environment_and_applies_without_a_new_client(elevenlabs_fake, monkeypatch):
    client = ElevenLabsClient()
    client.text_to_speech_and_save("uno")
    set_config("elevenlabs_voice_id", "fakeVoiceMateoMx0002")
    set_config("elevenlabs_model_id", "eleven_flash_v2_5")
    set_config("elevenlabs_output_format", "pcm_16000")
    path = client.text_to_speech_and_save("dos")

    first, second = elevenlabs_fake.tts_requests()
    assert first.path.endswith(DEFAULT_VOICE_ID)
    assert second.path.endswith("fakeVoiceMateoMx0002")
    assert second.json["model_id"] == "eleven_flash_v2_5"
    assert second.query["output_format"] == "pcm_16000"
    # pcm_* arrives headerless and is saved as a playable WAV.
    assert path.suffix == ".wav"
    assert wav_seconds(path)[0] == 16000
    # Flash costs half a credit per character: the character-cost header is what is recorded.
    usage = TTSUsage.objects.get(session=None)
    assert (usage.characters, usage.credits) == (len("uno") + len("dos"), len("uno") + 2)


@pytest.mark.parametrize("env_name", KEY_ENV)
def test_it_reads_the_key_from_each_environment_name(elevenlabs_fake, monkeypatch, env_name):
    for name in KEY_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(env_name, ELEVENLABS_TEST_KEY)
    assert ElevenLabsClient().text_to_speech_and_save("hola").is_file()


def test_it_says_clearly_when_no_key_is_set(elevenlabs_fake, monkeypatch):
    for name in KEY_ENV:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ElevenLabsConfigError) as caught:
        ElevenLabsClient().text_to_speech_and_save("hola")
    assert caught.value.permanent
    assert "elevenlabs_api" in str(caught.value)
    assert elevenlabs_fake.tts_requests() == []


def test_a_bad_key_is_permanent_and_leaves_no_file(elevenlabs_fake, media_root):
    with pytest.raises(ElevenLabsAuthError) as caught:
        ElevenLabsClient(api_key="sk_wrong_key_1234567890").text_to_speech_and_save("hola")
    error = caught.value
    assert error.permanent and not isinstance(error, TransientError)
    assert "rejected the API key" in str(error) and "invalid_api_key" in str(error)
    assert list((media_root / "elevenlabs").iterdir()) == []
    assert TTSUsage.objects.get(session=None).characters == 0


@pytest.mark.parametrize(
    ("mode", "error_class", "words"),
    [
        ("quota", ElevenLabsQuotaError, "quota exceeded"),
        ("429", ElevenLabsRateLimitError, "too_many_concurrent_requests"),
        ("busy", ElevenLabsRateLimitError, "system_busy"),
        ("500", ElevenLabsServerError, "ElevenLabs failed (500"),
    ],
)
def test_quota_rate_limits_and_server_errors_are_transient(elevenlabs_fake, mode, error_class, words):
    elevenlabs_fake.set_mode(mode, retry_after=7)
    with pytest.raises(error_class) as caught:
        ElevenLabsClient().text_to_speech_and_save("hola")
    error = caught.value
    assert not error.permanent
    assert isinstance(error, TransientError)  # a service can let it propagate to be retried
    assert words in str(error)
    if mode == "429":
        assert error.retry_after == 7


def test_an_unknown_voice_is_a_permanent_request_error(elevenlabs_fake):
    with pytest.raises(ElevenLabsRequestError, match="voice_not_found"):
        ElevenLabsClient().text_to_speech_and_save("hola", voice_id="noSuchVoice")


def test_an_unreachable_api_is_a_transient_network_error(elevenlabs_fake, monkeypatch):
    monkeypatch.setenv("ELEVENLABS_BASE_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ElevenLabsNetworkError, match=r"Cannot reach ElevenLabs at 127\.0\.0\.1") as caught:
        ElevenLabsClient().text_to_speech_and_save("hola")
    assert isinstance(caught.value, TransientError)


@pytest.mark.slow
def test_a_slow_api_times_out_as_a_transient_error(elevenlabs_fake):
    elevenlabs_fake.set_mode("slow", delay=30)
    with pytest.raises(ElevenLabsNetworkError, match="did not answer within 1 s"):
        ElevenLabsClient(timeout=1).text_to_speech_and_save("hola")


@pytest.mark.slow
def test_a_callers_deadline_ends_the_request_before_the_clients_timeout(elevenlabs_fake):
    elevenlabs_fake.set_mode("slow", delay=30)
    started = time.monotonic()
    with pytest.raises(ElevenLabsNetworkError, match=r"did not answer within [12](\.\d+)? s") as caught:
        ElevenLabsClient(timeout=30).text_to_speech_and_save("hola", deadline=started + 2)
    took = time.monotonic() - started
    assert isinstance(caught.value, TransientError)
    assert 1.8 <= took <= 4, f"took {took:.1f} s"
    assert TTSUsage.objects.get(session=None).characters == 0, "no audio arrived: nothing was charged"


def test_an_unsupported_output_format_is_refused_before_any_call(elevenlabs_fake):
    set_config("elevenlabs_output_format", "opus_48000_64")
    with pytest.raises(ElevenLabsConfigError, match="elevenlabs_output_format"):
        ElevenLabsClient().text_to_speech_and_save("hola")
    assert elevenlabs_fake.tts_requests() == []


@pytest.mark.parametrize("text", ["", "   ", "x" * 5001])
def test_empty_or_oversized_text_is_refused_with_a_reason(elevenlabs_fake, text):
    with pytest.raises(ElevenLabsRequestError, match=r"empty|characters"):
        ElevenLabsClient().text_to_speech_and_save(text)
    assert elevenlabs_fake.tts_requests() == []


def test_errors_and_logs_never_contain_the_key(elevenlabs_fake, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "sk_live_supersecret_0987654321"
    elevenlabs_fake.api_key = secret
    monkeypatch.setenv("ELEVENLABS_API", secret)
    messages = []
    for mode in ("ok", "401", "quota", "429", "500"):
        elevenlabs_fake.set_mode(mode)
        try:
            ElevenLabsClient().text_to_speech_and_save(f"frase {mode}")
        except ElevenLabsError as exc:
            messages.append(str(exc))
    monkeypatch.setenv("ELEVENLABS_BASE_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ElevenLabsError) as caught:
        ElevenLabsClient().text_to_speech_and_save("sin red")
    messages.append(str(caught.value))

    assert len(messages) == 5  # 401, quota, 429, 500 and the network failure
    assert all(secret not in message for message in messages)
    assert "TTS phrase generated" in caplog.text
    assert secret not in caplog.text


def test_it_lists_the_voices(elevenlabs_fake):
    voices = ElevenLabsClient().list_voices()
    assert [v["name"] for v in voices] == ["George", "Lucía (fake)", "Mateo (fake)"]
    assert voices[1]["labels"]["language"] == "es"
    (request,) = elevenlabs_fake.api_requests("/v2/voices")
    assert request.headers["xi-api-key"] == ELEVENLABS_TEST_KEY


def test_listing_voices_with_a_bad_key_is_permanent(elevenlabs_fake):
    with pytest.raises(ElevenLabsAuthError):
        ElevenLabsClient(api_key="nope-nope-nope").list_voices()
