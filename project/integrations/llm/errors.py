"""LLM endpoint failures, classified by what the caller can do about them.

Permanent: a rejected key (401/403), an exhausted balance (OpenAI's 429
``insufficient_quota``, DeepSeek's 402 — retrying cannot refill it), a wrong URL
or model (404), a request the server refuses (other 4xx), an answer that is not
a chat completion. Transient (retried with backoff by the client, then by the
queue): rate limits (429), server errors (5xx, 408), timeouts and connection
failures.
"""

from __future__ import annotations

from typing import Any

import requests

from project.integrations.errors import IntegrationError, TransientIntegrationError, shorten


class LLMError(IntegrationError):
    """Base of every LLM failure; ``permanent`` says whether to retry."""


class LLMTransientError(LLMError, TransientIntegrationError):
    permanent = False


class LLMConfigError(LLMError):
    """llm_url or llm_model missing or unusable."""


class LLMAuthError(LLMError):
    """The endpoint rejected the key."""


class LLMQuotaError(LLMError):
    """The account has no credit left."""


class LLMRequestError(LLMError):
    """The endpoint refused this request (bad model, bad URL, bad parameters)."""


class LLMResponseError(LLMError):
    """The endpoint answered 200 with something that is not a usable chat completion."""


class LLMRateLimitError(LLMTransientError):
    """429 rate limit."""


class LLMServerError(LLMTransientError):
    """5xx or 408 from the endpoint."""


class LLMNetworkError(LLMTransientError):
    """The endpoint could not be reached or did not answer in time."""


def _server_message(response: requests.Response) -> tuple[str, str]:
    """(code, message) from OpenAI's ``{"error": {...}}``, Ollama's ``{"error": "..."}`` or plain text."""
    try:
        body: Any = response.json()
    except ValueError:
        return "", shorten(response.text or response.reason or "no details", 200)
    err = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(err, dict):
        code = str(err.get("code") or err.get("type") or "")
        return code, shorten(err.get("message") or err, 300)
    return "", shorten(err, 300)


def _retry_after(response: requests.Response) -> float | None:
    try:
        value = response.headers.get("Retry-After")
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def from_response(response: requests.Response, where: str) -> LLMError:
    status = response.status_code
    code, message = _server_message(response)
    label = f"{status} {code}".strip()
    if status in (401, 403):
        return LLMAuthError(
            f"The LLM endpoint {where} rejected the API key ({label}): {message}. Set a valid key in Config llm_key.",
            status_code=status,
        )
    if status == 402 or (status == 429 and code == "insufficient_quota"):
        return LLMQuotaError(
            f"The LLM account at {where} has no credit left ({label}): {message}. "
            "Add credit or switch endpoint; retrying will not help.",
            status_code=status,
        )
    if status == 429:
        return LLMRateLimitError(
            f"The LLM endpoint {where} is rate limiting ({label}): {message}",
            retry_after=_retry_after(response),
            status_code=status,
        )
    if status >= 500 or status == 408:
        return LLMServerError(f"The LLM endpoint {where} failed ({label}): {message}", status_code=status)
    if status == 404:
        return LLMRequestError(
            f"The LLM endpoint {where} answered 404 ({message}): check Config llm_url (the chat completions URL) "
            "and llm_model.",
            status_code=status,
        )
    return LLMRequestError(f"The LLM endpoint {where} refused the request ({label}): {message}", status_code=status)
