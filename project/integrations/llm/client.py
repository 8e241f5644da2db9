"""A client for OpenAI-compatible chat completions (DeepSeek, OpenAI, LM Studio, Ollama).

Settings come from Config at each call (a change in the admin applies at once):
``llm_url`` — the chat completions URL, e.g.
``https://api.deepseek.com/v1/chat/completions``; a base URL such as
``http://127.0.0.1:1234/v1`` gets ``/chat/completions`` appended —,
``llm_key`` (optional for local servers; environment ``LLM_KEY`` or
``LLM_API_KEY``), ``llm_model``, ``llm_system_prompt``.

Transient failures (429, 5xx, timeouts, connection errors) are retried with
exponential backoff, honouring ``Retry-After``; what is left is raised as an
:class:`LLMError` whose ``permanent`` flag says whether to retry later. All the
attempts and waits of one call fit in ``max_total_seconds`` (120) or the
caller's ``deadline``, whichever comes first (see
:mod:`project.integrations.deadlines`): a queue item's budget is never spent
waiting on the LLM.
"""

from __future__ import annotations

import logging
import math
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from project.app_config.config import get_config
from project.integrations.deadlines import seconds_left
from project.integrations.errors import shorten
from project.integrations.llm.errors import (
    LLMConfigError,
    LLMError,
    LLMNetworkError,
    LLMRequestError,
    LLMResponseError,
    from_response,
)
from project.integrations.llm.prompts import DEFAULT_SYSTEM_PROMPT

__all__ = ["ChatResult", "LLMClient", "LLMError"]

logger = logging.getLogger("integrations.llm")

KEY_ENV_ALIASES = ("LLM_API_KEY",)
ROLES = {"system", "user", "assistant"}
# Reasoning models served locally (deepseek-r1 on Ollama…) put their thinking in the content.
_THINKING = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class ChatResult:
    text: str
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    finish_reason: str | None
    latency_ms: int
    attempts: int


@dataclass
class TokenUsage:
    """Totals over the client's lifetime; ``None`` counts from servers that report no usage are skipped."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, result: ChatResult) -> None:
        with self._lock:
            self.calls += 1
            self.prompt_tokens += result.prompt_tokens or 0
            self.completion_tokens += result.completion_tokens or 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def chat_completions_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise LLMConfigError(
            f"Config llm_url {shorten(url, 80)!r} is not an http(s) URL, "
            "e.g. https://api.deepseek.com/v1/chat/completions"
        )
    trimmed = url.rstrip("/")
    return trimmed if trimmed.endswith("/chat/completions") else trimmed + "/chat/completions"


class LLMClient:
    """``chat(message, history=None) -> str`` as in the seeds; ``complete`` also returns the token counts."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
        system_prompt: str | None = None,
        timeout: tuple[float, float] = (5.0, 60.0),
        max_retries: int = 3,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
        max_total_seconds: float = 120.0,
    ) -> None:
        self._url = url
        self._api_key = api_key
        self._model = model
        self._system_prompt = system_prompt
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.max_total_seconds = max_total_seconds
        self.usage = TokenUsage()
        self.last_result: ChatResult | None = None
        self._http = requests.Session()

    def chat(self, message: str, history: list[dict[str, str]] | None = None, **options: Any) -> str:
        """The assistant's reply to ``message`` after ``history`` (``[{"role", "content"}, ...]``)."""
        return self.complete(message, history, **options).text

    def complete(
        self,
        message: str,
        history: list[dict[str, str]] | None = None,
        *,
        system_prompt: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        deadline: float | None = None,
    ) -> ChatResult:
        """``deadline``: a ``time.monotonic()`` instant the call (retries included) must end by."""
        if not isinstance(message, str) or not message.strip():
            raise LLMRequestError("Nothing to ask: the message is empty.")
        url = chat_completions_url(self._url or get_config("llm_url"))
        model = self._model or get_config("llm_model")
        if not model:
            raise LLMConfigError("No model: set Config llm_model (e.g. deepseek-chat, gpt-4o-mini, llama3.1).")
        api_key = self._api_key or get_config("llm_key", env_names=KEY_ENV_ALIASES)
        system = system_prompt or self._system_prompt or get_config("llm_system_prompt") or DEFAULT_SYSTEM_PROMPT
        messages = [{"role": "system", "content": system}, *_checked_history(history)]
        messages.append({"role": "user", "content": message})
        payload: dict[str, Any] = {"model": model, "messages": messages, "stream": False}
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        if temperature is not None:
            payload["temperature"] = temperature
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        limit = time.monotonic() + self.max_total_seconds
        deadline = limit if deadline is None else min(deadline, limit)
        result = self._post_with_retries(url, payload, headers, api_key, deadline)
        self.last_result = result
        self.usage.add(result)
        logger.info(
            "LLM reply",
            extra={
                "model": result.model,
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "latency_ms": result.latency_ms,
                "attempts": result.attempts,
            },
        )
        return result

    def _post_with_retries(
        self, url: str, payload: dict[str, Any], headers: dict[str, str], api_key: str, deadline: float
    ) -> ChatResult:
        where = urlsplit(url).netloc
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            connect_timeout, read_timeout = (seconds_left(deadline, limit) for limit in self.timeout)
            if read_timeout <= 0:
                raise LLMNetworkError(f"No time left to ask the LLM endpoint {where} (the item's time budget)")
            try:
                response = self._http.post(
                    url, json=payload, headers=headers, timeout=(max(0.1, connect_timeout), read_timeout)
                )
            except requests.Timeout as exc:
                error: LLMError = LLMNetworkError(
                    f"The LLM endpoint {where} did not answer within {read_timeout:g} s ({type(exc).__name__})"
                )
            except requests.ConnectionError as exc:
                error = LLMNetworkError(f"Cannot reach the LLM endpoint {where}: {type(exc).__name__}")
            else:
                if response.status_code == 200:
                    latency_ms = int((time.monotonic() - started) * 1000)
                    return _parse(response, payload["model"], where, latency_ms, attempt)
                error = from_response(response, where)
            error = _scrubbed(error, api_key)
            if error.permanent or attempt > self.max_retries:
                raise error
            delay = self._delay(attempt, error.retry_after)
            if delay >= seconds_left(deadline, math.inf):
                # Waiting would end past the deadline: the queue retries the item later instead.
                raise error
            logger.warning(
                "LLM call failed, retrying in %.1f s (attempt %s of %s): %s",
                delay,
                attempt,
                self.max_retries + 1,
                error,
            )
            time.sleep(delay)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff_seconds)
        # Full jitter: concurrent workers hitting the same limit do not retry in lockstep.
        ceiling = min(self.backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds)
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security


def _checked_history(history: list[dict[str, str]] | None) -> list[dict[str, str]]:
    checked = []
    for number, item in enumerate(history or [], 1):
        if not isinstance(item, dict) or item.get("role") not in ROLES or not isinstance(item.get("content"), str):
            raise LLMRequestError(
                f"history item {number} must be {{'role': 'user'|'assistant'|'system', 'content': str}}, "
                f"got {shorten(item, 80)}"
            )
        checked.append({"role": item["role"], "content": item["content"]})
    return checked


def _parse(response: requests.Response, model: str, where: str, latency_ms: int, attempts: int) -> ChatResult:
    try:
        body = response.json()
    except ValueError:
        raise LLMResponseError(
            f"The LLM endpoint {where} answered 200 with something that is not JSON "
            f"({response.headers.get('Content-Type', 'no content type')}): is Config llm_url the chat completions URL?"
        ) from None
    choices = body.get("choices") if isinstance(body, dict) else None
    message = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise LLMResponseError(f"The LLM endpoint {where} answered without a reply: {shorten(body, 200)}")
    text = _THINKING.sub("", content).strip()
    if not text:
        raise LLMResponseError(f"The LLM endpoint {where} answered with an empty reply.")
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}

    def count(name: str) -> int | None:
        value = usage.get(name)
        return value if isinstance(value, int) and value >= 0 else None

    prompt_tokens, completion_tokens = count("prompt_tokens"), count("completion_tokens")
    total = count("total_tokens")
    if total is None and prompt_tokens is not None and completion_tokens is not None:
        total = prompt_tokens + completion_tokens
    return ChatResult(
        text=text,
        model=str(body.get("model") or model),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=total,
        finish_reason=choices[0].get("finish_reason"),
        latency_ms=latency_ms,
        attempts=attempts,
    )


def _scrubbed(error: LLMError, api_key: str) -> LLMError:
    """Some servers echo the key in their error text; it never leaves this module."""
    if api_key and api_key in error.message:
        error.message = error.message.replace(api_key, "***")
        error.args = (error.message,)
    return error
