"""Which HeyGen session each queue item is speaking through, in Redis, for ``AvatarService.on_timeout``.

When an item outlives its time budget, the worker may kill the SYNC child that
ran it and call ``on_timeout`` from a fresh process: the speaker's memory is
gone, and the session it opened keeps being billed until someone stops it.
So the speaker writes here, before each HeyGen call that could outlast the
budget, which session the item uses and whether the item's speaker opened it
(``own``: stop it) or borrowed a browser's (``own`` false: interrupt the speech
only). The record is written right after ``streaming.new``, before
``streaming.start``, so a child killed while starting its session still leaves
it findable.

Key ``avatar:item_session:<queue item id>`` — JSON ``{"session_id", "own",
"owner"}``, with a TTL well past the item's budget; deleted when the item has
been said or its timeout handled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis
from django.conf import settings

KEY_PREFIX = "avatar:item_session:"


@dataclass(frozen=True)
class ItemSession:
    session_id: str
    own: bool
    owner: str


class ItemSessions:
    def __init__(self, url: str | None = None) -> None:
        self._redis = redis.Redis.from_url(url or settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)

    def record(self, item_key: str, session_id: str, *, own: bool, owner: str, ttl: int) -> None:
        value = json.dumps({"session_id": session_id, "own": own, "owner": owner})
        self._redis.set(KEY_PREFIX + item_key, value, ex=max(1, ttl))

    def take(self, item_key: str) -> ItemSession | None:
        """The item's record, removed (GETDEL): one ``on_timeout`` handles it."""
        raw = self._redis.getdel(KEY_PREFIX + item_key)
        if not raw:
            return None
        try:
            record = json.loads(raw)
            return ItemSession(str(record["session_id"]), bool(record["own"]), str(record.get("owner", "")))
        except (ValueError, KeyError, TypeError):
            return None

    def forget(self, item_key: str) -> None:
        self._redis.delete(KEY_PREFIX + item_key)

    def close(self) -> None:
        self._redis.close()
