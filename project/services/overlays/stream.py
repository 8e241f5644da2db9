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

The pages of one web process share one Redis connection and one reader thread
(:mod:`project.services.overlays.reader`), which catches each page up from its last id
and hands it the new cards.

When Redis goes away (a restart: it comes back empty) the stream stays open: it sends
an ``unavailable`` event, pings the page as usual while the reader tries Redis every
``REDIS_POLL_SECONDS``; once Redis answers it sends ``available`` and the cards after
the last one the page got (the card ids of a restarted Redis carry on from the clock,
so they sort after the ones the page saw). Ending the stream instead would leave the
page without a stream for the browser's reconnect delay just when the cards held back
by the outage are published, and a short card could expire on the server before the
page came back. A page that opens while Redis is away gets the same stream (its replay
window then starts from Redis' clock when it is back). Either way the stream ends after
``max_stream_seconds`` and the browser reconnects: never a 500, never a hung thread.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import redis
from django.conf import settings

from project.env import env_int, env_str
from project.services.overlays.reader import REPLAY_WINDOW_MS, hub_for, id_key
from project.streams import paced_events

__all__ = ["REPLAY_WINDOW_MS", "publish_card", "sse_events"]

KEEP_CARDS = 500  # approximate length the stream is trimmed to
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


def sse_events(last_id: str | None) -> Iterator[str]:
    """Server-sent events for the page: the cards after ``last_id``, pings in between.

    The cards come from this process's shared reader (:mod:`.reader`), which catches the
    page up from ``last_id`` and then hands it every new card. Each card goes out with
    ``remaining_ms``: how much of its display time is left by Redis' clock, so a card
    replayed after a reconnect leaves the screen on time and an expired one is not shown
    at all. The stream ends after ``max_stream_seconds`` and the browser reconnects with
    its last id: a thread of the web server is never held by a client that vanished
    without the socket noticing.
    """
    subscription = hub_for(settings.REDIS_URL, stream_key()).subscribe(last_id)
    seen: tuple[int, int] | None = None

    def messages(timeout: float) -> list[str] | None:
        nonlocal seen
        delivery = subscription.get(timeout=timeout)
        if delivery is None:
            return None
        if delivery.kind != "cards":
            reason = {"reason": "redis unavailable"} if delivery.kind == "unavailable" else {}
            return [f"event: {delivery.kind}\ndata: {json.dumps(reason)}\n\n"]
        if seen is None:
            seen = id_key(subscription.floor or "0-0")
        out = []
        for entry_id, fields in delivery.entries:
            if id_key(entry_id) <= seen:
                continue  # the catch-up already gave it
            seen = id_key(entry_id)
            try:
                card = json.loads(fields["card"])
            except (KeyError, ValueError):
                continue  # not written by publish_card: nothing a page could show
            remaining = id_millis(entry_id) + int(card.get("duration_ms", 0)) - delivery.now_ms
            if remaining <= 0:
                continue
            card["remaining_ms"] = remaining
            out.append(f"id: {entry_id}\nevent: card\ndata: {json.dumps(card, ensure_ascii=False)}\n\n")
        return out

    try:
        yield from paced_events(
            messages,
            heartbeat=heartbeat_seconds(),
            max_seconds=max_stream_seconds(),
            ended=lambda: subscription.dropped,
        )
    finally:
        subscription.close()
