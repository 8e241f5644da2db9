"""The /hybrid WebSocket of ``run_avatar_server``, end to end against the HeyGen and ConvAI fakes."""

from __future__ import annotations

import json
import signal

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.fakes.convai import silence_pcm, speech_pcm
from tests.support.avatar import ACCESS_TOKEN, avatar_env, running_avatar_server
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def receive(ws, kind: str, timeout: float = 30) -> dict:
    """Next message of type ``kind``; fails on an unexpected error message."""
    while True:
        message = json.loads(ws.recv(timeout=timeout))
        if message["type"] == kind:
            return message
        assert message["type"] != "error", f"server error while waiting for {kind}: {message}"


def speak(ws, seconds: float = 0.6) -> None:
    """An utterance as the page sends it: 100 ms binary frames of PCM16 16 kHz, then silence."""
    audio = speech_pcm(seconds) + silence_pcm(0.6)
    step = 3200  # 100 ms
    for offset in range(0, len(audio), step):
        ws.send(audio[offset : offset + step])


def join_and_speak(ws) -> dict:
    """As the page does: take the avatar, say the video is joined, wait for ConvAI, speak once.
    Returns the avatar_ready message."""
    ready = receive(ws, "avatar_ready")
    ws.send(json.dumps({"type": "client_ready"}))
    receive(ws, "elevenlabs_connected")
    speak(ws)
    return ready


def test_it_runs_the_whole_hybrid_protocol(heygen_fake, convai_fake, live_session_key, tmp_path):
    with (
        running_avatar_server(avatar_env(heygen_fake, convai_fake), tmp_path) as server,
        connect(server.ws_url()) as ws,
    ):
        ready = receive(ws, "avatar_ready")
        [session] = heygen_fake.live_sessions()
        assert ready["session_id"] == session.session_id
        assert ready["access_token"] == session.access_token
        assert ready["url"] == f"ws://127.0.0.1:{heygen_fake.port}/livekit"
        assert session.state == "connected", "streaming.start must run before avatar_ready"
        assert session.request["version"] == "v2" and session.request["avatar_id"] == "Test_Avatar_public"

        shared = live_session_key.current()
        assert shared is not None and shared.session_id == session.session_id
        assert shared.owner.startswith("server:")

        ws.send(json.dumps({"type": "client_ready"}))
        receive(ws, "elevenlabs_connected")
        speak(ws)

        assert receive(ws, "user_transcript") == {"type": "user_transcript", "text": "hello avatar"}
        assert receive(ws, "agent_response") == {"type": "agent_response", "text": "You said: hello avatar"}
        wait_for(lambda: heygen_fake.tasks, what="the agent's words to reach HeyGen")
        [task] = heygen_fake.tasks
        assert task["session_id"] == session.session_id
        assert task["text"] == "You said: hello avatar"
        assert task["task_type"] == "repeat"

        [conversation] = convai_fake.conversations
        assert conversation.initiation["type"] == "conversation_initiation_client_data"
        assert conversation.pongs == [1], "the ping must be answered with its event_id"
        assert conversation.audio_seconds == pytest.approx(1.2, abs=0.11)

    wait_for(lambda: not heygen_fake.live_sessions(), what="the session to be stopped after the client left")
    assert heygen_fake.sessions[session.session_id].closed_reason == "stopped"
    wait_for(lambda: live_session_key.current() is None, what="the Redis record to be withdrawn")
    wait_for(lambda: convai_fake.conversations[0].closed, what="the ConvAI conversation to end")


def test_it_refuses_a_wrong_or_missing_access_token(heygen_fake, convai_fake, tmp_path):
    with running_avatar_server(avatar_env(heygen_fake, convai_fake), tmp_path) as server:
        for url in (server.ws_url("not-the-token"), server.ws_url(None), server.ws_url("")):
            with pytest.raises(InvalidStatus) as refused:
                connect(url)
            assert refused.value.response.status_code == 401
        assert heygen_fake.endpoint_calls("streaming.new") == [], "no HeyGen minute may be spent for a stranger"
        assert ACCESS_TOKEN not in server.output()


def test_it_stops_the_session_when_heygen_fails_mid_way(heygen_fake, convai_fake, tmp_path):
    heygen_fake.fail("streaming.task", status=500, code=500, message="internal server error")
    with (
        running_avatar_server(avatar_env(heygen_fake, convai_fake), tmp_path) as server,
        connect(server.ws_url()) as ws,
    ):
        ready = join_and_speak(ws)
        messages = []
        with pytest.raises(ConnectionClosed):
            while True:
                messages.append(json.loads(ws.recv(timeout=30)))
        errors = [m for m in messages if m["type"] == "error"]
        assert len(errors) == 1, messages
        assert "HeyGen streaming.task" in errors[0]["message"]
        assert "internal server error" in errors[0]["message"]
    wait_for(lambda: not heygen_fake.live_sessions(), what="the failed session to be stopped")
    assert heygen_fake.sessions[ready["session_id"]].closed_reason == "stopped"


def test_it_interrupts_the_avatar_when_the_user_talks_over_it(heygen_fake, convai_fake, tmp_path):
    convai_fake.agent_speaking_seconds = 60
    convai_fake.transcripts = ["tell me a long story", "stop"]
    with (
        running_avatar_server(avatar_env(heygen_fake, convai_fake), tmp_path) as server,
        connect(server.ws_url()) as ws,
    ):
        ready = join_and_speak(ws)
        receive(ws, "agent_response")
        speak(ws)
        assert receive(ws, "user_transcript")["text"] == "stop"
        wait_for(lambda: heygen_fake.interrupts, what="HeyGen streaming.interrupt")
        assert heygen_fake.interrupts == [ready["session_id"]]
        assert convai_fake.conversations[0].interruptions == 1


def test_it_allows_at_most_the_configured_number_of_sessions(heygen_fake, convai_fake, tmp_path):
    env = avatar_env(heygen_fake, convai_fake, AVATAR_MAX_SESSIONS="1")
    with running_avatar_server(env, tmp_path) as server, connect(server.ws_url()) as first:
        receive(first, "avatar_ready")
        with connect(server.ws_url()) as second:
            message = json.loads(second.recv(timeout=30))
            assert message["type"] == "error"
            assert "busy" in message["message"] and "avatar_max_sessions=1" in message["message"]
            with pytest.raises(ConnectionClosed):
                second.recv(timeout=30)
        assert len(heygen_fake.endpoint_calls("streaming.new")) == 1


def test_it_stops_live_sessions_when_the_server_is_terminated(heygen_fake, convai_fake, tmp_path):
    with (
        running_avatar_server(avatar_env(heygen_fake, convai_fake), tmp_path) as server,
        connect(server.ws_url()) as ws,
    ):
        ready = receive(ws, "avatar_ready")
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=60) == 0
    assert heygen_fake.sessions[ready["session_id"]].closed_reason == "stopped"


def test_it_keeps_a_quiet_session_alive(heygen_fake, convai_fake, live_session_key, tmp_path):
    heygen_fake.idle_timeout = 2.0
    env = avatar_env(heygen_fake, convai_fake, AVATAR_KEEP_ALIVE_SECONDS="0.5")
    with running_avatar_server(env, tmp_path) as server, connect(server.ws_url()) as ws:
        ready = receive(ws, "avatar_ready")
        wait_for(lambda: len(heygen_fake.keep_alives) >= 6, what="keep-alives over 3 s")
        assert set(heygen_fake.keep_alives) == {ready["session_id"]}
        assert heygen_fake.sessions[ready["session_id"]].state == "connected", "idle timeout must not strike"
        assert live_session_key._redis.ttl("avatar:live_session") > 60
