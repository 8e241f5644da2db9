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

Redis outages. Redis keeps nothing on disk here, so a restart empties it: the
owner of a live session writes its record again on its next ``refresh`` (the
registry remembers what it published), and a record is never written back for a
session this registry withdrew. ``current`` — the read that decides whether the
avatar service opens a paid session of its own — waits out an outage with
back-off (``outage_wait_seconds``, default ``REDIS_OUTAGE_WAIT_SECONDS``) before
it raises :class:`~project.redis_outage.RedisOutage`. The writes try once: they
run in the avatar server's keep-alive loop, which must not stall, and what they
missed is done on the next call (a ``publish`` or ``refresh`` by the restore, a
``withdraw`` before the next read, which never names a session this registry
withdrew). A withdrawal another process missed is bounded by the TTL, and the
avatar service drops a shared session HeyGen calls unusable.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass

import redis
from django.conf import settings

from project.redis_outage import REDIS_DOWN, call_through_outage

logger = logging.getLogger("avatar.registry")

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
# Extend the record if it names this session; write it again (ARGV[3]) if there is no
# record at all, as after a Redis restart. Another session's record is left alone.
_REFRESH_OR_RESTORE = """
local raw = redis.call('GET', KEYS[1])
if raw then
  if cjson.decode(raw)['session_id'] == ARGV[1] then
    return redis.call('EXPIRE', KEYS[1], ARGV[2])
  end
  return 0
end
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[2])
  return 2
end
return 0
"""


@dataclass(frozen=True)
class LiveSession:
    session_id: str
    owner: str
    opened_at: float


class SessionRegistry:
    def __init__(
        self, url: str | None = None, ttl: int = DEFAULT_TTL, *, outage_wait_seconds: float | None = None
    ) -> None:
        self.ttl = ttl
        self.outage_wait_seconds = outage_wait_seconds  # None: REDIS_OUTAGE_WAIT_SECONDS
        self._redis = redis.Redis.from_url(url or settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
        self._lock = threading.Lock()  # the avatar server calls it from several threads
        self._published: dict[str, str] = {}  # session id -> its record, to write again after a restart
        self._unwithdrawn: set[str] = set()  # withdrawals Redis missed

    def publish(self, session_id: str, owner: str) -> None:
        """Record ``session_id`` as the live session (replacing any other)."""
        record = json.dumps({"session_id": session_id, "owner": owner, "opened_at": time.time()})
        with self._lock:
            self._published[session_id] = record
            self._unwithdrawn.discard(session_id)
        # If Redis is away this raises; the next refresh writes the record.
        self._redis.set(LIVE_SESSION_KEY, record, ex=self.ttl)

    def current(self) -> LiveSession | None:
        """The live session, waiting out a Redis outage (raises RedisOutage after the wait)."""
        raw = call_through_outage(
            self._read,
            what="live avatar session",
            wait_seconds=self.outage_wait_seconds,
            log_extra={"service": "avatar"},
        )
        if not raw:
            return None
        try:
            record = json.loads(raw)
            session = LiveSession(str(record["session_id"]), str(record["owner"]), float(record["opened_at"]))
        except (ValueError, KeyError, TypeError):
            return None  # a record we cannot read is as good as none; the next publish replaces it
        with self._lock:
            if session.session_id in self._unwithdrawn:
                return None  # withdrawn here: being stopped or stopped, never handed out
        return session

    def _read(self) -> bytes | None:
        self._withdraw_missed()
        return self._redis.get(LIVE_SESSION_KEY)

    def refresh(self, session_id: str) -> bool:
        """Extend the TTL if the record still names ``session_id``; write it again if Redis lost it."""
        with self._lock:
            record = self._published.get(session_id, "")
        self._withdraw_missed()
        result = self._redis.eval(_REFRESH_OR_RESTORE, 1, LIVE_SESSION_KEY, session_id, self.ttl, record)
        if result == 2:
            logger.info(
                "live avatar session recorded again (Redis had lost it)",
                extra={"service": "avatar", "session_id": session_id},
            )
        return bool(result)

    def withdraw(self, session_id: str) -> bool:
        """Remove the record if it still names ``session_id`` (later, if Redis is away now)."""
        with self._lock:
            self._published.pop(session_id, None)
            self._unwithdrawn.add(session_id)
        try:
            removed = bool(self._redis.eval(_DELETE_IF_OURS, 1, LIVE_SESSION_KEY, session_id))
        except REDIS_DOWN:
            logger.warning(
                "Redis unreachable: the live session's record is withdrawn when it is back",
                extra={"service": "avatar", "session_id": session_id},
            )
            raise
        with self._lock:
            self._unwithdrawn.discard(session_id)
        return removed

    def _withdraw_missed(self) -> None:
        with self._lock:
            missed = list(self._unwithdrawn)
        for session_id in missed:
            self._redis.eval(_DELETE_IF_OURS, 1, LIVE_SESSION_KEY, session_id)
            with self._lock:
                self._unwithdrawn.discard(session_id)

    def close(self) -> None:
        self._redis.close()
