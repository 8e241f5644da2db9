"""ElevenLabs failures, classified by what the caller can do about them.

The API answers errors as ``{"detail": {"status": ..., "message": ...}}``. A
401 is either a bad key (``invalid_api_key``: permanent) or an exhausted
character quota (``quota_exceeded``: transient — it comes back with credits or
the monthly reset). 429 means too many concurrent requests or ``system_busy``;
5xx, timeouts and connection failures are transient too. A full disk while the
audio is saved is transient as well; a directory that cannot be written is not.
"""

from __future__ import annotations

from typing import Any

import httpx
from elevenlabs.core.api_error import ApiError

from project.integrations.errors import IntegrationError, TransientIntegrationError, shorten


class ElevenLabsError(IntegrationError):
    """Base of every ElevenLabs failure; ``permanent`` says whether to retry."""


class ElevenLabsTransientError(ElevenLabsError, TransientIntegrationError):
    permanent = False


class ElevenLabsConfigError(ElevenLabsError):
    """No API key, or a setting that cannot be used."""


class ElevenLabsAuthError(ElevenLabsError):
    """401 invalid_api_key: the key is wrong or revoked."""


class ElevenLabsRequestError(ElevenLabsError):
    """The API refused this request as such (unknown voice, text too long…)."""


class ElevenLabsQuotaError(ElevenLabsTransientError):
    """The account's character quota is used up."""


class ElevenLabsRateLimitError(ElevenLabsTransientError):
    """429: too many concurrent requests, or the service is busy."""


class ElevenLabsServerError(ElevenLabsTransientError):
    """5xx from ElevenLabs."""


class ElevenLabsNetworkError(ElevenLabsTransientError):
    """ElevenLabs could not be reached or did not answer in time."""


class ElevenLabsStorageError(ElevenLabsError):
    """The audio arrived (and was paid for) but cannot be saved: a directory that cannot be written."""


class ElevenLabsDiskFullError(ElevenLabsStorageError, ElevenLabsTransientError):
    """The audio arrived but the disk is full (or a quota or file-size limit was hit): retry once there is room."""

    permanent = False


def _detail(body: Any) -> tuple[str, str]:
    """(status, message) from the API's error body, whatever its shape."""
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, dict):
        return str(detail.get("status") or detail.get("code") or ""), shorten(detail.get("message") or detail)
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):  # FastAPI validation errors
        return "invalid_request", shorten("; ".join(str(item.get("msg", item)) for item in detail))
    return "", shorten(detail if detail not in (None, "") else "no details")


def _retry_after(headers: dict[str, str] | None) -> float | None:
    value = (headers or {}).get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def from_api_error(exc: ApiError) -> ElevenLabsError:
    code = exc.status_code or 0
    status, message = _detail(exc.body)
    label = f"{code} {status}".strip()
    if (code == 401 and status == "quota_exceeded") or code == 402:
        return ElevenLabsQuotaError(
            f"ElevenLabs character quota exceeded ({label}): {message}. "
            "Speech resumes when credits are added or the monthly quota resets.",
            status_code=code,
        )
    if code in (401, 403):
        return ElevenLabsAuthError(
            f"ElevenLabs rejected the API key ({label}): {message}. "
            "Set a valid key in Config elevenlabs_api (or ELEVENLABS_API in the environment).",
            status_code=code,
        )
    if code == 429:
        return ElevenLabsRateLimitError(
            f"ElevenLabs is rate limiting ({label}): {message}. Retry later.",
            retry_after=_retry_after(exc.headers),
            status_code=code,
        )
    if code >= 500 or code == 408:
        return ElevenLabsServerError(f"ElevenLabs failed ({label}): {message}. Retry later.", status_code=code)
    return ElevenLabsRequestError(f"ElevenLabs refused the request ({label}): {message}", status_code=code)


def from_transport_error(exc: httpx.TransportError, base_url: str, timeout: float) -> ElevenLabsNetworkError:
    host = httpx.URL(base_url).host or base_url
    if isinstance(exc, httpx.TimeoutException):
        return ElevenLabsNetworkError(
            f"ElevenLabs at {host} did not answer within {timeout:.3g} s ({type(exc).__name__})"
        )
    return ElevenLabsNetworkError(f"Cannot reach ElevenLabs at {host}: {type(exc).__name__}: {shorten(exc, 200)}")
