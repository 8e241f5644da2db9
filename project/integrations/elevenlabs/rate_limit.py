"""The per-minute request cap of the ``/api/elevenlabs/`` endpoints.

Each call of ``tts`` or ``voices`` may cost money (a phrase not yet cached is paid
per character), and a leaked ``api_token`` or a looping client could spend the
account's quota in minutes. The count lives in Redis, so every web worker shares
one budget: a counter per calendar minute (``INCR`` and a two-minute expiry),
simpler than a sliding window and strict enough for a cost guard.

Config ``elevenlabs_api_requests_per_minute`` (environment fallback of the same
name, upper-cased) sets it; empty means :data:`DEFAULT_REQUESTS_PER_MINUTE`,
``0`` lifts the cap. While Redis is away the cap cannot be checked and the
request is refused (503): a cost guard fails closed.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import redis
from django.conf import settings

from project.integrations.config_values import config_int
from project.redis_outage import REDIS_DOWN

DEFAULT_REQUESTS_PER_MINUTE = 30
CONFIG_KEY = "elevenlabs_api_requests_per_minute"
_WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    retry_after: int = 0  # seconds until the next minute starts, when refused


@functools.cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)


def _key_prefix() -> str:
    # A setting only so that tests sharing one Redis do not share one minute's count.
    return getattr(settings, "ELEVENLABS_API_RATE_KEY", None) or "elevenlabs:api:requests"


def take_request() -> Verdict:
    """Count one API request against this minute's budget; raises a ``REDIS_DOWN`` error when Redis is away."""
    limit = config_int(CONFIG_KEY, DEFAULT_REQUESTS_PER_MINUTE)
    if limit == 0:
        return Verdict(True, 0)
    now = time.time()
    window = int(now // _WINDOW_SECONDS)
    key = f"{_key_prefix()}:{window}"
    pipe = _client(settings.REDIS_URL).pipeline()
    pipe.incr(key)
    pipe.expire(key, 2 * _WINDOW_SECONDS)
    count, _ = pipe.execute()
    if int(count) <= limit:
        return Verdict(True, limit)
    return Verdict(False, limit, retry_after=max(1, math.ceil((window + 1) * _WINDOW_SECONDS - now)))


__all__ = ["DEFAULT_REQUESTS_PER_MINUTE", "REDIS_DOWN", "Verdict", "take_request"]
