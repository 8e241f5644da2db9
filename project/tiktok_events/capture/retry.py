"""How long the capture waits before it tries TikTok again, and why.

Two ladders, both exponential with jitter (half fixed, half random, so captures
do not retry in step):

- a dropped socket is a blip: 1 s, 2 s, 4 s … up to 30 s, and the ladder starts
  again once a connection stayed up and delivered events for a minute;
- a refusal (the sign server's rate limit, a refused WebSocket) is a verdict on
  this machine: 30 s, 1 min, 2 min … up to 15 min, unless the server said when
  to come back. TikTokLive's own ``retry_after`` is read from
  ``RateLimit-Remaining`` (a count, not seconds: 0 when the limit is hit), so the
  response itself is read here: ``Retry-After``, ``RateLimit-Reset`` /
  ``X-RateLimit-Reset`` (seconds, or a Unix time), and a reset time or "try again
  in …" in the JSON body. Each step costs at most one sign request.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass

from project.env import env_float, env_int

MAX_HINT_SECONDS = 24 * 3600.0  # a day's lockout is the longest wait a server may ask for
_EPOCH_SECONDS = 1_000_000_000  # a reset value above this is a Unix time, not a delay
_IN_SECONDS = re.compile(r"in\s+(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|mins?|minutes?|h|hours?)\b", re.I)
_IN_CLOCK = re.compile(r"in\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\b", re.I)
_UNIT = {"s": 1, "m": 60, "h": 3600}
_BODY_DELAYS = ("retry_after", "retryAfter", "retry_after_seconds")
_BODY_RESETS = ("reset_time", "resetTime", "reset_at", "resetAt", "reset")


@dataclass(frozen=True)
class RetryPolicy:
    """The capture's waits (seconds) and patience; environment overrides for operators and tests."""

    drop_base: float = 1.0
    drop_max: float = 30.0
    refusal_base: float = 30.0
    refusal_max: float = 900.0
    healthy_after: float = 60.0  # a connection this old that delivered events resets the drop ladder
    give_up_after: int = 5  # refused sockets (or failed first connections) in a row before giving up
    live_poll_base: float = 15.0  # waiting for the streamer to go live: first poll interval...
    live_poll_max: float = 60.0  # ... growing to this
    offline_grace: float = 180.0  # offline during a reconnect: how long before the session ends

    @classmethod
    def from_env(cls, **overrides) -> RetryPolicy:
        # TTE_ (TikTok Live Events) marks the project's own variables (docs/configuration.md).
        values = {
            "drop_base": env_float("TTE_CAPTURE_DROP_BACKOFF_SECONDS", cls.drop_base, minimum=0),
            "drop_max": env_float("TTE_CAPTURE_DROP_BACKOFF_MAX_SECONDS", cls.drop_max, minimum=0),
            "refusal_base": env_float("TTE_CAPTURE_REFUSAL_BACKOFF_SECONDS", cls.refusal_base, minimum=0),
            "refusal_max": env_float("TTE_CAPTURE_REFUSAL_BACKOFF_MAX_SECONDS", cls.refusal_max, minimum=0),
            "healthy_after": env_float("TTE_CAPTURE_HEALTHY_SECONDS", cls.healthy_after, minimum=0),
            "give_up_after": env_int("TTE_CAPTURE_GIVE_UP_AFTER", cls.give_up_after, minimum=1),
            "live_poll_base": env_float("TTE_CAPTURE_LIVE_POLL_SECONDS", cls.live_poll_base, minimum=0.1),
            "live_poll_max": env_float("TTE_CAPTURE_LIVE_POLL_MAX_SECONDS", cls.live_poll_max, minimum=0.1),
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: half fixed, half random, so clients do not retry in step."""
    delay = min(cap, base * (2 ** min(attempt, 30)))
    return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - jitter, not cryptography


@dataclass(frozen=True)
class RateLimitHint:
    seconds: float
    source: str  # which header or body field said so


def rate_limit_hint(headers: Mapping[str, str], body: bytes | str, now: float) -> RateLimitHint | None:
    """When a 429 says to come back, in seconds from ``now``; None when it does not say (or says 0)."""
    hints: list[RateLimitHint] = []
    retry_after = _header(headers, "Retry-After")
    if retry_after:
        seconds = _number(retry_after)
        if seconds is None:
            seconds = _http_date(retry_after, now)
        _add(hints, seconds, "Retry-After")
    for name in ("RateLimit-Reset", "X-RateLimit-Reset"):
        value = _number(_header(headers, name) or "")
        if value is not None:
            _add(hints, _reset(value, now), name)
    for seconds, source in _body_hints(body, now):
        _add(hints, seconds, source)
    if not hints:
        return None
    # The longest wait any of them asks for: a minute limit and a day limit can both be hit.
    return max(hints, key=lambda hint: hint.seconds)


def _body_hints(body: bytes | str, now: float) -> list[tuple[float | None, str]]:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    found: list[tuple[float | None, str]] = []
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError:
        data = {}
    if isinstance(data, dict):
        for key in _BODY_DELAYS:
            found.append((_number(str(data.get(key, ""))), f"body {key}"))
        for key in _BODY_RESETS:
            value = _number(str(data.get(key, "")))
            found.append((None if value is None else _reset(value, now), f"body {key}"))
        text = " ".join(str(data.get(key, "")) for key in ("message", "error", "detail")) or text
    match = _IN_CLOCK.search(text)
    if match:
        numbers = [int(group) for group in match.groups() if group is not None]  # [h,] m, s
        found.append((sum(n * 60**i for i, n in enumerate(reversed(numbers))), "body message"))
    match = _IN_SECONDS.search(text)
    if match:
        found.append((float(match.group(1)) * _UNIT[match.group(2)[0].lower()], "body message"))
    return found


def _add(hints: list[RateLimitHint], seconds: float | None, source: str) -> None:
    if seconds is not None and seconds > 0:
        hints.append(RateLimitHint(min(seconds, MAX_HINT_SECONDS), source))


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return str(value).strip()
    return ""


def _number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _reset(value: float, now: float) -> float:
    if value > _EPOCH_SECONDS * 1000:  # milliseconds since the epoch
        value /= 1000
    return value - now if value > _EPOCH_SECONDS else value


def _http_date(text: str, now: float) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp() - now
