"""LLMClient (requests) against the local OpenAI-compatible fake."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from project.app_config.config import set_config
from project.integrations.llm.client import LLMClient, chat_completions_url
from project.integrations.llm.errors import (
    LLMAuthError,
    LLMConfigError,
    LLMNetworkError,
    LLMQuotaError,
    LLMRateLimitError,
    LLMRequestError,
    LLMResponseError,
    LLMServerError,
)
from project.integrations.llm.prompts import DEFAULT_SYSTEM_PROMPT
from project.queue_system.base_service import TransientError
from tests.fakes.fixtures import LLM_TEST_KEY, LLM_TEST_MODEL
from tests.fakes.llm_fake import LLMFake

pytestmark = pytest.mark.django_db


def fast_client(**kwargs) -> LLMClient:
    """The real client with short waits between retries, so failing tests stay quick."""
    kwargs.setdefault("backoff_seconds", 0.01)
    return LLMClient(**kwargs)


def test_it_sends_an_openai_chat_completion_and_returns_the_reply(llm_fake):
    llm_fake.replies.append("¡Hola Ana, bienvenida!")
    assert LLMClient().chat("Saluda a Ana") == "¡Hola Ana, bienvenida!"

    (request,) = llm_fake.chat_requests()
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {LLM_TEST_KEY}"
    assert request.json == {
        "model": LLM_TEST_MODEL,
        "messages": [
            {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
            {"role": "user", "content": "Saluda a Ana"},
        ],
        "stream": False,
    }


def test_history_system_prompt_and_options_from_config_reach_the_server(llm_fake):
    set_config("llm_system_prompt", "Eres un pirata.")
    set_config("llm_model", "deepseek-chat")
    history = [{"role": "user", "content": "hola"}, {"role": "assistant", "content": "¡Arr!"}]
    LLMClient().chat("¿y ahora?", history=history, max_tokens=50, temperature=0.7)

    body = llm_fake.chat_requests()[0].json
    assert body["model"] == "deepseek-chat"
    assert body["messages"] == [
        {"role": "system", "content": "Eres un pirata."},
        *history,
        {"role": "user", "content": "¿y ahora?"},
    ]
    assert (body["max_tokens"], body["temperature"]) == (50, 0.7)


@pytest.mark.parametrize("history", [[{"role": "robot", "content": "x"}], [{"role": "user"}], ["hola"]])
def test_malformed_history_is_refused_before_any_call(llm_fake, history):
    with pytest.raises(LLMRequestError, match="history item 1"):
        LLMClient().chat("hola", history=history)
    assert llm_fake.chat_requests() == []


def test_it_records_the_tokens_used(llm_fake):
    client = LLMClient()
    llm_fake.replies.extend(["uno dos tres", "cuatro cinco"])
    first = client.complete("una pregunta corta")
    client.chat("otra")

    assert (first.prompt_tokens, first.completion_tokens, first.total_tokens) == (
        len(DEFAULT_SYSTEM_PROMPT.split()) + 3,
        3,
        len(DEFAULT_SYSTEM_PROMPT.split()) + 6,
    )
    assert first.model == LLM_TEST_MODEL and first.finish_reason == "stop" and first.attempts == 1
    assert client.last_result.completion_tokens == 2
    assert client.usage.calls == 2
    assert client.usage.completion_tokens == 5
    assert client.usage.total_tokens == 2 * len(DEFAULT_SYSTEM_PROMPT.split()) + 4 + 5


def test_a_base_url_gets_the_chat_completions_path(llm_fake, monkeypatch):
    monkeypatch.setenv("LLM_URL", f"{llm_fake.url}/v1/")
    LLMClient().chat("hola")
    assert llm_fake.chat_requests()[0].path == "/v1/chat/completions"
    assert chat_completions_url("https://api.deepseek.com/chat/completions") == (
        "https://api.deepseek.com/chat/completions"
    )


def test_a_local_server_without_a_key_gets_no_authorization_header(monkeypatch, db):
    with LLMFake(api_key=None) as keyless:
        monkeypatch.setenv("LLM_URL", keyless.chat_url)
        monkeypatch.setenv("LLM_MODEL", "llama3.1")
        for name in ("LLM_KEY", "LLM_API_KEY"):
            monkeypatch.delenv(name, raising=False)
        assert LLMClient().chat("hola") == "Respuesta a: hola"
        assert "authorization" not in keyless.chat_requests()[0].headers


def test_reasoning_blocks_are_removed_from_the_reply(llm_fake):
    llm_fake.replies.append("<think>\nEl usuario saluda.\n</think>\n\n¡Hola!")
    assert LLMClient().chat("hola") == "¡Hola!"


def test_429_and_5xx_are_retried_with_backoff_until_they_pass(llm_fake):
    llm_fake.set_mode("429", times=2, retry_after=0)
    result = fast_client().complete("hola")
    assert result.attempts == 3
    assert len(llm_fake.chat_requests()) == 3

    llm_fake.clear()
    llm_fake.set_mode("503", times=1)
    assert fast_client().complete("hola").attempts == 2


def test_a_lasting_server_error_is_raised_as_transient_after_the_retries(llm_fake, caplog):
    caplog.set_level(logging.WARNING)
    llm_fake.set_mode("500")
    with pytest.raises(LLMServerError, match="failed \\(500") as caught:
        fast_client(max_retries=2).chat("hola")
    assert isinstance(caught.value, TransientError) and not caught.value.permanent
    assert len(llm_fake.chat_requests()) == 3
    assert caplog.text.count("LLM call failed, retrying") == 2


def test_a_rate_limit_that_outlasts_the_retries_carries_retry_after(llm_fake):
    llm_fake.set_mode("429", retry_after=0)
    with pytest.raises(LLMRateLimitError) as caught:
        fast_client(max_retries=1).chat("hola")
    assert caught.value.retry_after == 0
    assert len(llm_fake.chat_requests()) == 2


def test_backoff_grows_and_honours_retry_after_up_to_a_ceiling():
    client = LLMClient(backoff_seconds=1.0, max_backoff_seconds=30.0)
    assert 0.5 <= client._delay(1, None) <= 1.0
    assert 2.0 <= client._delay(3, None) <= 4.0
    assert 15.0 <= client._delay(10, None) <= 30.0
    assert client._delay(1, 7.0) == 7.0
    assert client._delay(1, 600.0) == 30.0


@pytest.mark.parametrize(
    ("mode", "error_class", "words"),
    [
        ("401", LLMAuthError, "rejected the API key"),
        ("quota", LLMQuotaError, "no credit left"),
        ("malformed", LLMResponseError, "not JSON"),
        ("empty", LLMResponseError, "without a reply"),
    ],
)
def test_permanent_failures_are_not_retried(llm_fake, mode, error_class, words):
    llm_fake.set_mode(mode)
    with pytest.raises(error_class, match=words) as caught:
        fast_client().chat("hola")
    assert caught.value.permanent and not isinstance(caught.value, TransientError)
    assert len(llm_fake.chat_requests()) == 1


def test_a_wrong_url_says_to_check_llm_url(llm_fake, monkeypatch):
    monkeypatch.setenv("LLM_URL", f"{llm_fake.url}/v1/chat/completion")
    with pytest.raises(LLMRequestError, match=r"404.*check Config llm_url"):
        fast_client().chat("hola")


@pytest.mark.slow
def test_a_slow_server_times_out_as_a_transient_error(llm_fake):
    llm_fake.set_mode("slow", delay=30)
    with pytest.raises(LLMNetworkError, match="did not answer within 1 s"):
        fast_client(timeout=(5, 1), max_retries=0).chat("hola")


@pytest.mark.slow
def test_every_attempt_and_wait_ends_by_the_callers_deadline(llm_fake):
    llm_fake.set_mode("slow", delay=30)
    started = time.monotonic()
    with pytest.raises(LLMNetworkError) as caught:
        LLMClient(timeout=(5, 60), max_retries=3).chat("hola", deadline=started + 2)
    took = time.monotonic() - started
    assert isinstance(caught.value, TransientError)
    # 4 attempts of 60 s and their back-off would take minutes; the deadline stops it at 2 s.
    assert 1.8 <= took <= 4, f"took {took:.1f} s"


def test_a_retry_after_past_the_deadline_is_not_waited_for(llm_fake):
    llm_fake.set_mode("429", retry_after=20)
    started = time.monotonic()
    with pytest.raises(LLMRateLimitError) as caught:
        LLMClient(max_retries=3).chat("hola", deadline=started + 10)
    assert time.monotonic() - started < 3
    assert caught.value.retry_after == 20  # for the queue's retry of the item
    assert len(llm_fake.chat_requests()) == 1


@pytest.mark.slow
def test_without_a_deadline_all_attempts_fit_in_max_total_seconds(llm_fake):
    llm_fake.set_mode("slow", delay=30)
    started = time.monotonic()
    with pytest.raises(LLMNetworkError):
        fast_client(timeout=(5, 60), max_retries=5, max_total_seconds=2).chat("hola")
    assert time.monotonic() - started <= 4


def test_an_unreachable_server_is_a_transient_error(llm_fake, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("LLM_URL", f"http://127.0.0.1:{port}/v1/chat/completions")
    with pytest.raises(LLMNetworkError, match=r"Cannot reach the LLM endpoint 127\.0\.0\.1") as caught:
        fast_client(max_retries=1).chat("hola")
    assert isinstance(caught.value, TransientError)


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"LLM_URL": ""}, "not an http\\(s\\) URL"),
        ({"LLM_URL": "ftp://example.com/v1"}, "not an http\\(s\\) URL"),
        ({"LLM_MODEL": ""}, "set Config llm_model"),
    ],
)
def test_missing_settings_are_named(llm_fake, monkeypatch, env, words):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(LLMConfigError, match=words):
        LLMClient().chat("hola")
    assert llm_fake.chat_requests() == []


def test_an_empty_message_is_refused(llm_fake):
    with pytest.raises(LLMRequestError, match="empty"):
        LLMClient().chat("  ")


def test_the_key_never_appears_in_errors_or_logs(llm_fake, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "sk-proj-wrongwrongwrong-9876543210"
    monkeypatch.setenv("LLM_KEY", wrong)
    with pytest.raises(LLMAuthError) as wrong_key:
        fast_client().chat("hola")
    # A server that echoes the whole key back (some proxies do) is scrubbed too.
    llm_fake.api_key = None
    llm_fake.replies.clear()
    messages = [str(wrong_key.value)]
    for mode in ("500", "429"):
        llm_fake.set_mode(mode, retry_after=0)
        with pytest.raises(TransientError) as caught:
            fast_client(max_retries=1).chat(f"key {wrong}")
        messages.append(str(caught.value))
    assert "Incorrect API key provided: sk-*" in messages[0]  # OpenAI's masked form, last 4 only
    assert all(wrong not in message for message in messages)
    assert wrong not in caplog.text
