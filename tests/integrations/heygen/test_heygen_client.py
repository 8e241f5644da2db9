"""HeyGenService against the local HeyGen Streaming API fake."""

from __future__ import annotations

import asyncio
import time

import pytest

from project.integrations.heygen.client import HeyGenError, HeyGenService


def run(coro):
    return asyncio.run(coro)


def call(heygen: HeyGenService, method: str, *args):
    """One call on a client that is closed afterwards."""

    async def once():
        async with heygen:
            return await getattr(heygen, method)(*args)

    return asyncio.run(once())


def client(fake, **kwargs) -> HeyGenService:
    kwargs.setdefault("api_key", fake.api_key)
    return HeyGenService(kwargs.pop("api_key"), "Test_Avatar_public", base_url=fake.base_url, **kwargs)


def test_it_runs_a_session_from_new_to_stop(heygen_fake):
    async def scenario():
        async with client(heygen_fake) as heygen:
            session = await heygen.create_streaming_avatar()
            await heygen.start_session()
            answer = await heygen.send_task("Hola a todos", task_type="repeat")
            await heygen.keep_alive()
            await heygen.interrupt()
            assert await heygen.stop_session() is True
            assert heygen.session is None
            return session, answer

    session, answer = run(scenario())
    assert session.url.endswith("/livekit") and session.access_token.startswith("lk-")
    assert session.session_duration_limit == 600
    assert answer["duration_ms"] > 0 and answer["task_id"]
    assert [name for name, _ in heygen_fake.calls] == [
        "streaming.new",
        "streaming.start",
        "streaming.task",
        "streaming.keep_alive",
        "streaming.interrupt",
        "streaming.stop",
    ]
    assert heygen_fake.tasks[0]["task_type"] == "repeat" and heygen_fake.tasks[0]["text"] == "Hola a todos"
    assert heygen_fake.endpoint_calls("streaming.new")[0]["version"] == "v2"
    assert heygen_fake.live_sessions() == []


def test_it_reports_a_task_sent_before_start(heygen_fake):
    async def scenario():
        async with client(heygen_fake) as heygen:
            session = await heygen.create_streaming_avatar()
            try:
                with pytest.raises(HeyGenError) as refused:
                    await heygen.send_task("too early")
                return refused.value
            finally:
                await heygen.stop_session(session.session_id)

    error = run(scenario())
    assert error.code == 10001 and error.session_unusable and not error.retryable
    assert str(error) == (
        "HeyGen streaming.task: the avatar session is not in the correct state (session state wrong: new)"
    )


def test_it_reports_a_refused_key_without_showing_it(heygen_fake):
    with pytest.raises(HeyGenError) as refused:
        call(client(heygen_fake, api_key="hg-wrong-key-abcdef"), "create_streaming_avatar")
    assert refused.value.status == 401
    assert "API key was refused" in str(refused.value)
    assert "hg-wrong-key-abcdef" not in str(refused.value)


def test_it_reports_the_concurrent_limit_as_retryable(heygen_fake):
    heygen_fake.fail("streaming.new", status=400, code=10007, message="Concurrent limit reached")
    with pytest.raises(HeyGenError) as refused:
        call(client(heygen_fake), "create_streaming_avatar")
    assert refused.value.retryable and "concurrent session limit" in str(refused.value)


def test_it_reports_an_unreachable_heygen_as_retryable():
    with pytest.raises(HeyGenError) as refused:
        call(HeyGenService("key", base_url="http://127.0.0.1:9", timeout=5), "create_streaming_avatar")
    assert refused.value.retryable and "could not be reached" in str(refused.value)


def test_it_sees_a_session_closed_by_the_idle_timeout(heygen_fake):
    heygen_fake.idle_timeout = 0.3

    async def scenario():
        async with client(heygen_fake) as heygen:
            session = await heygen.create_streaming_avatar()
            await heygen.start_session()
            await asyncio.sleep(0.6)
            with pytest.raises(HeyGenError) as refused:
                await heygen.send_task("anyone there?", session_id=session.session_id)
            # Stopping an expired session is not a failure: nothing is billed any more.
            assert await heygen.stop_session(session.session_id) is True
            return refused.value, session

    error, session = run(scenario())
    assert error.code == 10005 and error.session_unusable
    assert heygen_fake.sessions[session.session_id].closed_reason == "idle timeout"


def test_it_gets_a_session_token(heygen_fake):
    token = call(client(heygen_fake), "create_token")
    assert token in heygen_fake.tokens


def test_stop_session_does_not_raise_when_heygen_fails(heygen_fake):
    heygen_fake.fail("streaming.stop", status=500, code=500, message="boom")
    started = time.monotonic()
    assert call(client(heygen_fake), "stop_session", "some-session") is False
    assert time.monotonic() - started < 30
