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

When Redis goes away (a restart: it comes back empty) the stream stays open: it sends
an ``unavailable`` event, pings the page as usual and tries Redis every
``REDIS_POLL_SECONDS``; once Redis answers it sends ``available`` and reads on after
the last card the page got (the card ids of a restarted Redis carry on from the clock,
so they sort after the ones the page saw). Ending the stream instead would leave the
page without a stream for the browser's reconnect delay just when the cards held back
by the outage are published, and a short card could expire on the server before the
page came back. A page that opens while Redis is away gets the same stream (its replay
window then starts from the web server's clock). Either way the stream ends after
``max_stream_seconds`` and the browser reconnects: never a 500, never a hung thread.
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
# How often an open stream tries Redis while it is away: a card published when it is
# back reaches the page within this delay.
REDIS_POLL_SECONDS = 0.5
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
        if last_id is None:
            try:
                start_ms = _redis_now_ms(client)
            except REDIS_DOWN:
                # The web server's clock: a skew only shifts the replay window a little.
                start_ms = int(time.time() * 1000)
            last_id = f"{max(0, start_ms - REPLAY_WINDOW_MS)}-0"
        yield f"retry: 1000\nevent: hello\ndata: {json.dumps({'heartbeat_ms': heartbeat * 1000})}\n\n"
        while time.monotonic() < deadline:
            try:
                batches = client.xread({key: last_id}, block=heartbeat * 1000, count=100)
                now_ms = _redis_now_ms(client) if batches else 0
            except REDIS_DOWN as exc:
                yield from _wait_for_redis(client, exc, heartbeat, deadline)
                continue
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


_last_outage_log = 0.0


def _wait_for_redis(client: redis.Redis, exc: BaseException, heartbeat: int, deadline: float) -> Iterator[str]:
    """``unavailable``, pings while Redis is away, then ``available`` (or nothing: the stream's time is up)."""
    global _last_outage_log
    # Every open page waits here: one line per half minute tells the story.
    if time.monotonic() - _last_outage_log >= 30:
        _last_outage_log = time.monotonic()
        logger.warning(
            "overlay stream waiting for Redis (%s): %s", type(exc).__name__, exc, extra={"service": "overlays"}
        )
    yield f"event: unavailable\ndata: {json.dumps({'reason': 'redis unavailable'})}\n\n"
    next_ping = time.monotonic() + heartbeat
    while time.monotonic() < deadline:
        time.sleep(REDIS_POLL_SECONDS)
        try:
            client.ping()
        except REDIS_DOWN:
            if time.monotonic() >= next_ping:
                next_ping = time.monotonic() + heartbeat
                yield "event: ping\ndata: {}\n\n"
            continue
        yield "event: available\ndata: {}\n\n"
        return
