"""No secret reaches a log line: everything an avatar session, an ElevenLabs error and an LLM
error write through the project's LOGGING handlers, at DEBUG, searched for the known secrets."""

from __future__ import annotations

import io
import json
import logging
import uuid

import pytest
import requests
from django.utils import timezone
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from project.app_config.config import set_config
from project.logging import KeyValueFormatter, RedactSecretsFilter, redact
from project.queue_system.models import QueueItem, Service
from project.queue_system.processing import run_item
from project.tiktok_events.models import LiveEvent, LiveSession
from tests.fakes.convai import FakeConvAI, silence_pcm, speech_pcm
from tests.fakes.fixtures import ELEVENLABS_TEST_KEY, LLM_TEST_KEY
from tests.fakes.heygen import FakeHeyGen
from tests.support.avatar import avatar_env, running_avatar_server

AVATAR_TOKEN = "avatar-token-never-logged-7f3a9c"
HEYGEN_KEY = "hg-key-never-logged-0c4e1b"
CONVAI_KEY = "el-key-never-logged-95d2aa"
API_TOKEN = "api-token-never-logged-3b81f0"


@pytest.fixture
def project_log():
    """What the handlers of settings.LOGGING write, at DEBUG, for the length of the test."""
    root = logging.getLogger()
    handlers = [h for h in root.handlers if any(isinstance(f, RedactSecretsFilter) for f in h.filters)]
    assert handlers, "settings.LOGGING's console handler (with the redact filter) is not on the root logger"
    buffer = io.StringIO()
    streams = [h.setStream(buffer) for h in handlers]
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.setLevel(level)
        for handler, stream in zip(handlers, streams, strict=True):
            handler.setStream(stream)


def assert_no_secret(output: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in output, f"{secret!r} was logged:\n" + "\n".join(
            line for line in output.splitlines() if secret in line
        )


def test_the_filter_redacts_the_message_every_extra_field_and_the_exception(project_log):
    logger = logging.getLogger("tests.secrets")
    try:
        raise RuntimeError("GET /hybrid?token=exception-secret-1 failed")
    except RuntimeError:
        logger.exception(
            "refused %s",
            "https://user:url-password-2@example.invalid/x",
            extra={
                "error": "upstream said: xi-api-key: extra-secret-3 is invalid",
                "url": "/overlays/events/?token=extra-secret-4&last_id=1-0",
                "detail": {"Authorization": "Bearer extra-secret-5"},
            },
        )
    output = project_log.getvalue()
    assert "refused https://user:***@example.invalid/x" in output
    assert "token=***&last_id=1-0" in output
    assert "RuntimeError: GET /hybrid?token=*** failed" in output
    assert_no_secret(output, [f"{w}-{n}" for n, w in enumerate(["exception-secret", "url-password"], 1)])
    assert_no_secret(output, ["extra-secret-3", "extra-secret-4", "extra-secret-5"])


def test_a_credential_read_from_config_is_masked_in_any_shape(db, project_log):
    set_config("llm_key", "plain-credential-value-6d1e")
    from project.app_config.config import get_config

    get_config("llm_key")
    logging.getLogger("tests.secrets").warning("the server echoed plain-credential-value-6d1e back")
    assert "the server echoed *** back" in project_log.getvalue()
    # The formatter alone (a handler configured without the filter) redacts too.
    record = logging.makeLogRecord({"msg": "x", "extra_field": "/hybrid?token=formatter-secret-7"})
    assert "formatter-secret-7" not in KeyValueFormatter().format(record)
    assert redact("llm_max_tokens=120 tokens=5") == "llm_max_tokens=120 tokens=5", "counts stay readable"


@pytest.mark.slow
@pytest.mark.django_db
def test_an_avatar_session_logs_requests_but_never_the_token_or_the_keys(tmp_path):
    with FakeHeyGen(api_key=HEYGEN_KEY) as heygen_fake, FakeConvAI(api_key=CONVAI_KEY) as convai_fake:
        output = run_avatar_session(heygen_fake, convai_fake, tmp_path)
    # The log is there, and it names each request by its path only.
    for line in ("GET / 200", "GET /public 200", "GET /hybrid 401", "GET /hybrid 101"):
        assert f'msg="{line}"' in output, output[-3000:]
    assert_no_secret(output, [AVATAR_TOKEN, HEYGEN_KEY, CONVAI_KEY, "a-wrong-guess-of-the-token"])


def run_avatar_session(heygen_fake: FakeHeyGen, convai_fake: FakeConvAI, tmp_path) -> str:
    """Both pages, a refused guess and one spoken exchange; the server's whole output."""
    env = avatar_env(
        heygen_fake,
        convai_fake,
        AVATAR_ACCESS_TOKEN=AVATAR_TOKEN,
        HEYGEN_API_KEY=HEYGEN_KEY,
        ELEVENLABS_API=CONVAI_KEY,
        ELEVENLABS_API_KEY=CONVAI_KEY,
        LOG_LEVEL="DEBUG",
    )
    with running_avatar_server(env, tmp_path) as server:
        for page in ("/", "/public"):
            assert requests.get(f"{server.base_url}{page}?token={AVATAR_TOKEN}", timeout=30).status_code == 200
        with pytest.raises(InvalidStatus):
            connect(server.ws_url("a-wrong-guess-of-the-token"))
        with connect(server.ws_url(AVATAR_TOKEN)) as ws:
            while json.loads(ws.recv(timeout=30))["type"] != "avatar_ready":
                pass
            ws.send(json.dumps({"type": "client_ready"}))
            audio = speech_pcm(0.6) + silence_pcm(0.6)
            for offset in range(0, len(audio), 3200):  # 100 ms frames, as the page sends them
                ws.send(audio[offset : offset + 3200])
            while json.loads(ws.recv(timeout=30))["type"] != "agent_response":
                pass
        server.process.terminate()
        server.process.wait(timeout=60)
        return server.output()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # the item runs in a thread of its own (its time budget)
def test_elevenlabs_and_llm_errors_log_no_key(
    seeded, elevenlabs_fake, llm_fake, project_log, client, media_root, settings
):
    settings.ELEVENLABS_API_RATE_KEY = f"elevenlabs:test:{uuid.uuid4().hex[:10]}"  # not another run's minute
    set_config("api_token", API_TOKEN)
    set_config("llm_speak_replies", "true")
    headers = {"Authorization": f"Bearer {API_TOKEN}"}

    # ElevenLabs refuses the key, then fails, through the HTTP API.
    for mode, status in (("401", 502), ("500", 503)):
        elevenlabs_fake.set_mode(mode, times=1)
        response = client.post(
            "/api/elevenlabs/tts", json.dumps({"text": "hola"}), content_type="application/json", headers=headers
        )
        assert response.status_code == status, response.content

    # The LLM fails (retried, then given up) and refuses a wrong key, through the queue's item processing;
    # a reply whose speech ElevenLabs refuses is logged by the LLM service.
    session = LiveSession.objects.create(streamer="s", started_at=timezone.now(), status=LiveSession.Status.LIVE)
    service = Service.objects.get(slug="llm")
    outcomes = []
    for mode in ("500", "401", "eleven-401"):
        if mode.startswith("eleven"):
            llm_fake.set_mode("ok")
            elevenlabs_fake.set_mode("401", times=1)
        else:
            llm_fake.set_mode(mode, times=10)
        event = LiveEvent.objects.create(
            session=session,
            event_type="CommentEvent",
            user_unique_id=f"viewer-{uuid.uuid4().hex[:8]}",
            user_nickname="Ana",
            event_data={"comment": "hola"},
            received_at=timezone.now(),
        )
        item = QueueItem.objects.create(live_event=event, service=service, event_type="CommentEvent", priority=5)
        outcomes.append(run_item(item.pk).status)
    assert outcomes == ["retry", "failed", "completed"], outcomes

    output = project_log.getvalue()
    for expected in ("TTS API request failed", "will be retried", "failed:", "reply stored but not spoken"):
        assert expected in output, output[-3000:]
    assert_no_secret(output, [API_TOKEN, ELEVENLABS_TEST_KEY, LLM_TEST_KEY])
