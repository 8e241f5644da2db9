"""The push channel between OverlaysService and the /overlays/ page: a Redis stream.

Why a stream and not plain pub/sub: pub/sub forgets whatever is published while nobody
listens, so every reconnect of the OBS page (a reload, a network blip, a web server
restart) would lose the cards of that moment. A stream keeps the last few hundred cards
with ids, and the page's EventSource sends back the id of the last card it saw
(``Last-Event-ID``) when it reconnects, so it resumes exactly where it stopped. Stream
ids are Redis' own millisecond clock, which also tells how long a replayed card still
has to stay on screen. Unlike pub/sub channels, streams live in the Redis database of
``REDIS_URL``, so two installations sharing one Redis server never see each other's
cards.

When Redis goes away (a restart: it comes back empty) the stream ends cleanly with a
``retry:`` and an ``unavailable`` event instead of a 500: the browser's EventSource
reconnects by itself after that delay, again and again until Redis answers, and then
resumes after its Last-Event-ID (the card ids of a restarted Redis carry on from the
clock, so they sort after the ones the page saw). The web server's thread is freed at
once rather than held by a page waiting for Redis.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import redis
from django.conf import settings

from project.env import env_int, env_str
from project.redis_outage import REDIS_DOWN

logger = logging.getLogger("services.overlays")

KEEP_CARDS = 500  # approximate length the stream is trimmed to
REPLAY_WINDOW_MS = 60_000  # a page that (re)opens without an id still shows cards younger than this
# How long the browser waits before it reconnects after an ``unavailable`` end.
UNAVAILABLE_RETRY_MS = 2000
_ID = re.compile(r"^\d{1,20}-\d{1,20}$")

_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def stream_key() -> str:
    return getattr(settings, "OVERLAYS_STREAM", None) or env_str("OVERLAYS_STREAM", "overlays:cards")


def heartbeat_seconds() -> int:
    return int(getattr(settings, "OVERLAYS_SSE_HEARTBEAT", 0) or env_int("OVERLAYS_SSE_HEARTBEAT", 15, minimum=1))


def max_stream_seconds() -> int:
    return int(getattr(settings, "OVERLAYS_SSE_MAX_SECONDS", 0) or env_int("OVERLAYS_SSE_MAX_SECONDS", 300, minimum=5))


def publisher() -> redis.Redis:
    """A shared client for publishing (its connection pool is thread-safe)."""
    url = settings.REDIS_URL
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            client = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=5, socket_timeout=10)
            _clients[url] = client
        return client


def publish_card(card: dict[str, Any], client: redis.Redis | None = None) -> str:
    """Append one card (it must carry ``duration_ms``) to the stream; returns its stream id."""
    if int(card.get("duration_ms", 0)) <= 0:
        raise ValueError(f"card {card.get('id')!r} needs a positive duration_ms")
    client = client or publisher()
    return client.xadd(
        stream_key(), {"card": json.dumps(card, ensure_ascii=False)}, maxlen=KEEP_CARDS, approximate=True
    )


def id_millis(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


def valid_id(value: str | None) -> str | None:
    """The client's last seen id if it looks like a stream id; anything else starts afresh."""
    value = (value or "").strip()
    return value if _ID.match(value) else None


def _redis_now_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def sse_events(last_id: str | None) -> Iterator[str]:
    """Server-sent events for the page: the cards after ``last_id``, pings in between.

    Each card goes out with ``remaining_ms``: how much of its display time is left by
    Redis' clock, so a card replayed after a reconnect leaves the screen on time and an
    expired one is not shown at all. The stream ends after ``max_stream_seconds`` and the
    browser reconnects with its last id: a thread of the web server is never held by a
    client that vanished without the socket noticing.
    """
    heartbeat = heartbeat_seconds()
    client = redis.Redis.from_url(
        settings.REDIS_URL, decode_responses=True, socket_connect_timeout=5, socket_timeout=heartbeat + 10
    )
    key = stream_key()
    deadline = time.monotonic() + max_stream_seconds()
    try:
        try:
            if last_id is None:
                last_id = f"{max(0, _redis_now_ms(client) - REPLAY_WINDOW_MS)}-0"
        except REDIS_DOWN as exc:
            yield _unavailable(exc)
            return
        yield f"retry: 1000\nevent: hello\ndata: {json.dumps({'heartbeat_ms': heartbeat * 1000})}\n\n"
        while time.monotonic() < deadline:
            try:
                batches = client.xread({key: last_id}, block=heartbeat * 1000, count=100)
                now_ms = _redis_now_ms(client) if batches else 0
            except REDIS_DOWN as exc:
                yield _unavailable(exc)
                return
            if not batches:
                # A named event, not an SSE comment: the page's watchdog only sees events.
                yield "event: ping\ndata: {}\n\n"
                continue
            for entry_id, fields in batches[0][1]:
                last_id = entry_id
                try:
                    card = json.loads(fields["card"])
                except (KeyError, ValueError):
                    continue  # not written by publish_card: nothing a page could show
                remaining = id_millis(entry_id) + int(card.get("duration_ms", 0)) - now_ms
                if remaining <= 0:
                    continue
                card["remaining_ms"] = remaining
                yield f"id: {entry_id}\nevent: card\ndata: {json.dumps(card, ensure_ascii=False)}\n\n"
    finally:
        client.close()


_last_unavailable_log = 0.0


def _unavailable(exc: BaseException) -> str:
    """The last message of a stream whose Redis went away: reconnect in a moment."""
    global _last_unavailable_log
    # Every open page comes back every UNAVAILABLE_RETRY_MS while Redis is away: one line
    # per half minute tells the story.
    if time.monotonic() - _last_unavailable_log >= 30:
        _last_unavailable_log = time.monotonic()
        logger.warning(
            "overlay stream ended: Redis unavailable (%s); pages reconnect every %s ms",
            type(exc).__name__,
            UNAVAILABLE_RETRY_MS,
            extra={"service": "overlays"},
        )
    data = json.dumps({"reason": "redis unavailable", "retry_ms": UNAVAILABLE_RETRY_MS})
    return f"retry: {UNAVAILABLE_RETRY_MS}\nevent: unavailable\ndata: {data}\n\n"
