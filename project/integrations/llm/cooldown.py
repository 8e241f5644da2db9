"""At most one LLM reply per viewer per interval, shared by every worker of a service.

A claim is ``SET key <event id> NX EX <interval>`` in Redis: atomic across
processes and threads, and it expires by itself. The same event asking again
(a redelivery after a crashed worker) gets its claim back; a failed reply gives
the claim up, so the viewer's next message can be answered.

While Redis is away a claim waits for it with back-off (``wait_seconds``, see
:mod:`project.redis_outage`) before it raises :class:`CooldownUnavailable`. Redis
keeps nothing on disk here: after a restart every claim is gone and the cooldowns
start afresh, so a viewer answered just before it may be answered once more.
"""

from __future__ import annotations

import functools

import redis
from django.conf import settings

from project.integrations.errors import TransientIntegrationError
from project.redis_outage import RedisOutage, call_through_outage

# Deletes the claim only if it is still the one this event made.
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class CooldownUnavailable(TransientIntegrationError):
    """Redis could not be reached; the event is retried later."""


@functools.cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)


class ViewerCooldown:
    def __init__(self, service_slug: str, seconds: int, *, wait_seconds: float | None = None) -> None:
        """``wait_seconds``: how long a claim waits out a Redis outage (default: REDIS_OUTAGE_WAIT_SECONDS)."""
        self.service_slug = service_slug
        self.seconds = seconds
        self.wait_seconds = wait_seconds
        self.redis = _client(settings.REDIS_URL)

    def key(self, viewer: str) -> str:
        return f"tte:llm:cooldown:{self.service_slug}:{viewer}"

    def claim(self, viewer: str, event_id: int, *, retry_after: float | None = None) -> bool:
        """True if this event may be answered; ``retry_after`` goes on the error if Redis stays away."""
        if self.seconds <= 0:
            return True
        key, claimant = self.key(viewer), str(event_id)

        def claim_once() -> bool:
            if self.redis.set(key, claimant, nx=True, ex=self.seconds):
                return True
            return self.redis.get(key) == claimant.encode()

        try:
            return call_through_outage(
                claim_once,
                what="LLM reply cooldown",
                wait_seconds=self.wait_seconds,
                log_extra={"service": self.service_slug, "event_id": event_id},
            )
        except RedisOutage as exc:
            raise CooldownUnavailable(str(exc), retry_after=retry_after) from None
        except redis.RedisError as exc:
            raise CooldownUnavailable(f"Redis failed the LLM reply cooldown: {type(exc).__name__}") from None

    def release(self, viewer: str, event_id: int) -> None:
        if self.seconds <= 0:
            return
        try:
            self.redis.eval(_RELEASE, 1, self.key(viewer), str(event_id))
        except redis.RedisError:
            pass  # the claim expires by itself; a failed release only delays the viewer's next reply

    def remaining(self, viewer: str) -> int:
        """Seconds until the viewer can get a reply again (0: now, or unknown while Redis is away)."""
        try:
            return max(0, int(self.redis.ttl(self.key(viewer))))
        except redis.RedisError:
            return 0  # only a log line reads it: no reason to wait for Redis
