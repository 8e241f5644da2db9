"""Which HeyGen avatar session is live right now, shared through Redis.

Whoever opens a session (the avatar server for a browser, or the avatar
service for chat when no browser is connected) records it here so the other
process sends its text to the same avatar instead of paying for a second one.

Redis keys (``settings.REDIS_URL``):

- ``avatar:live_session`` — JSON ``{"session_id", "owner", "opened_at"}`` of the
  session the avatar service should speak through. Written with a TTL
  (``ttl`` seconds) that the owner refreshes while the session lives, so a
  crashed owner's record disappears on its own.

``owner`` is ``server:<host>:<pid>:<n>`` for a browser connection and
``service:<host>:<pid>`` for the avatar service. A record is removed only by the
owner that wrote it (compare-and-delete), so a newer session is never
forgotten by the clean-up of an older one.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis
from django.conf import settings

LIVE_SESSION_KEY = "avatar:live_session"
DEFAULT_TTL = 90

# Delete/refresh the key only if it still names this session: atomic in Redis.
_DELETE_IF_OURS = """
local raw = redis.call('GET', KEYS[1])
if raw and cjson.decode(raw)['session_id'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_EXPIRE_IF_OURS = """
local raw = redis.call('GET', KEYS[1])
if raw and cjson.decode(raw)['session_id'] == ARGV[1] then
  return redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


@dataclass(frozen=True)
class LiveSession:
    session_id: str
    owner: str
    opened_at: float


class SessionRegistry:
    def __init__(self, url: str | None = None, ttl: int = DEFAULT_TTL) -> None:
        self.ttl = ttl
        self._redis = redis.Redis.from_url(url or settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)

    def publish(self, session_id: str, owner: str) -> None:
        """Record ``session_id`` as the live session (replacing any other)."""
        record = {"session_id": session_id, "owner": owner, "opened_at": time.time()}
        self._redis.set(LIVE_SESSION_KEY, json.dumps(record), ex=self.ttl)

    def current(self) -> LiveSession | None:
        raw = self._redis.get(LIVE_SESSION_KEY)
        if not raw:
            return None
        try:
            record = json.loads(raw)
            return LiveSession(str(record["session_id"]), str(record["owner"]), float(record["opened_at"]))
        except (ValueError, KeyError, TypeError):
            return None  # a record we cannot read is as good as none; the next publish replaces it

    def refresh(self, session_id: str) -> bool:
        """Extend the TTL if the record still names ``session_id``."""
        return bool(self._redis.eval(_EXPIRE_IF_OURS, 1, LIVE_SESSION_KEY, session_id, self.ttl))

    def withdraw(self, session_id: str) -> bool:
        """Remove the record if it still names ``session_id``."""
        return bool(self._redis.eval(_DELETE_IF_OURS, 1, LIVE_SESSION_KEY, session_id))

    def close(self) -> None:
        self._redis.close()
