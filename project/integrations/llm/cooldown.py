"""At most one LLM reply per viewer per interval, shared by every worker of a service.

A claim is ``SET key <event id> NX EX <interval>`` in Redis: atomic across
processes and threads, and it expires by itself. The same event asking again
(a redelivery after a crashed worker) gets its claim back; a failed reply gives
the claim up, so the viewer's next message can be answered.
"""

from __future__ import annotations

import functools

import redis
from django.conf import settings

from project.integrations.errors import TransientIntegrationError

# Deletes the claim only if it is still the one this event made.
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class CooldownUnavailable(TransientIntegrationError):
    """Redis could not be reached; the event is retried later."""


@functools.cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)


class ViewerCooldown:
    def __init__(self, service_slug: str, seconds: int) -> None:
        self.service_slug = service_slug
        self.seconds = seconds
        self.redis = _client(settings.REDIS_URL)

    def key(self, viewer: str) -> str:
        return f"tte:llm:cooldown:{self.service_slug}:{viewer}"

    def claim(self, viewer: str, event_id: int) -> bool:
        if self.seconds <= 0:
            return True
        try:
            if self.redis.set(self.key(viewer), str(event_id), nx=True, ex=self.seconds):
                return True
            return self.redis.get(self.key(viewer)) == str(event_id).encode()
        except redis.RedisError as exc:
            raise CooldownUnavailable(f"Redis unreachable for the LLM reply cooldown: {type(exc).__name__}") from None

    def release(self, viewer: str, event_id: int) -> None:
        if self.seconds <= 0:
            return
        try:
            self.redis.eval(_RELEASE, 1, self.key(viewer), str(event_id))
        except redis.RedisError:
            pass  # the claim expires by itself; a failed release only delays the viewer's next reply

    def remaining(self, viewer: str) -> int:
        """Seconds until the viewer can get a reply again (0: now)."""
        return max(0, int(self.redis.ttl(self.key(viewer))))
