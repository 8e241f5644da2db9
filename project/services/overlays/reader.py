"""One Redis reader per web process, shared by every overlay stream the process serves.

Each open /overlays/ page used to hold a Redis connection of its own, blocked in
``XREAD``: thirty pages were thirty connections and thirty blocked reads of the same
stream. Here one thread per process (per Redis URL and stream key) reads the stream and
hands each batch of cards to the queue of every open page; the page's thread only
waits on its queue. The reader's connection is named ``overlays-reader:<pid>:<key>``
in ``CLIENT LIST``.

Resume stays exact. A page that opens (or reconnects with ``Last-Event-ID``) is caught
up by the reader itself, between two reads: the cards after the page's last id up to
the reader's position (``XRANGE``), then the page joins the live hand-out, which goes
on from that same position, so no card falls between the two and none comes twice. A
page that names no id starts ``REPLAY_WINDOW_MS`` before Redis' clock. The reader
blocks at most ``READ_BLOCK_MS`` at a time, so a new page waits at most that long for
its catch-up; cards published while pages listen are handed out as soon as Redis has
them.

When Redis goes away the reader tells every page ``unavailable``, tries Redis every
``REDIS_POLL_SECONDS`` and tells them ``available`` once it answers; then it reads on
from its position (a restarted Redis is empty, and its new card ids carry on from the
clock, so they sort after the ones already handed out). A page that opens meanwhile
hears ``unavailable`` at once and is caught up when Redis is back.

A page that stops reading (its queue holds ``QUEUE_LIMIT`` deliveries) is dropped: its
stream ends and the browser reconnects with the last id it got. The thread ends when
no page listens.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field

import redis

from project.redis_outage import REDIS_DOWN

logger = logging.getLogger("services.overlays")

REPLAY_WINDOW_MS = 60_000  # a page that (re)opens without an id still shows cards younger than this
READ_BLOCK_MS = 1000  # longest wait of a new page for its catch-up
# How often the reader tries Redis while it is away: a card published when it is back
# reaches the pages within this delay.
REDIS_POLL_SECONDS = 0.5
QUEUE_LIMIT = 1000
_CATCH_UP_BATCH = 200


def id_key(entry_id: str) -> tuple[int, int]:
    millis, _, sequence = entry_id.partition("-")
    return int(millis), int(sequence or 0)


@dataclass
class Delivery:
    kind: str  # "cards", "unavailable" or "available"
    entries: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    now_ms: int = 0  # Redis' clock when the cards were read: what is left of their display time


class Subscription:
    """One open page: the reader fills its queue, the page's thread empties it."""

    def __init__(self, hub: Hub, last_id: str | None) -> None:
        self.hub = hub
        self.last_id = last_id
        # The id at or below which nothing is delivered; set by the reader when it catches the page up.
        self.floor: str | None = None
        self.dropped = False
        self._queue: queue.Queue[Delivery] = queue.Queue(maxsize=QUEUE_LIMIT)

    def put(self, delivery: Delivery) -> bool:
        try:
            self._queue.put_nowait(delivery)
        except queue.Full:
            self.dropped = True
            return False
        return True

    def get(self, timeout: float) -> Delivery | None:
        try:
            return self._queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def close(self) -> None:
        self.hub.unsubscribe(self)


class Hub:
    """The reader thread of one (Redis URL, stream key) in this process, and the pages it serves."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key
        self.client_name = f"overlays-reader:{os.getpid()}:{key}"
        self._lock = threading.Lock()
        self._live: set[Subscription] = set()
        self._pending: list[Subscription] = []
        self._thread: threading.Thread | None = None
        self._position: str | None = None
        self._down = False
        self._last_outage_log = 0.0

    def subscribe(self, last_id: str | None) -> Subscription:
        subscription = Subscription(self, last_id)
        with self._lock:
            self._pending.append(subscription)
            if self._down:
                subscription.put(Delivery("unavailable"))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.client_name, daemon=True)
                self._thread.start()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._live.discard(subscription)
            if subscription in self._pending:
                self._pending.remove(subscription)

    def listeners(self) -> int:
        with self._lock:
            return len(self._live) + len(self._pending)

    # --- the reader thread ------------------------------------------------------------

    def _run(self) -> None:
        client = redis.Redis.from_url(
            self.url,
            decode_responses=True,
            socket_connect_timeout=5,
            socket_timeout=READ_BLOCK_MS / 1000 + 10,
            client_name=self.client_name,
        )
        try:
            while True:
                with self._lock:
                    if not self._live and not self._pending:
                        # Under the lock: a page subscribing from now on starts a new thread.
                        self._thread = None
                        self._position = None
                        return
                    pending = list(self._pending)
                try:
                    if self._down:
                        client.ping()
                        self._broadcast_state("available")
                    if self._position is None:
                        newest = client.xrevrange(self.key, count=1)
                        self._position = newest[0][0] if newest else "0-0"
                    for subscription in pending:
                        self._catch_up(client, subscription)
                    self._read(client)
                except REDIS_DOWN as exc:
                    self._broadcast_state("unavailable", exc)
                    time.sleep(REDIS_POLL_SECONDS)
        except Exception:
            logger.exception("overlay stream reader crashed", extra={"service": "overlays"})
            with self._lock:
                self._thread = None
                self._position = None
                for subscription in [*self._live, *self._pending]:
                    subscription.dropped = True  # their streams end; the browsers reconnect
                self._live.clear()
                self._pending.clear()
        finally:
            client.close()

    def _catch_up(self, client: redis.Redis, subscription: Subscription) -> None:
        start = subscription.last_id
        if start is None:
            start = f"{max(0, _redis_now_ms(client) - REPLAY_WINDOW_MS)}-0"
        entries: list[tuple[str, dict[str, str]]] = []
        lower = start
        if id_key(start) < id_key(self._position):
            while True:
                batch = client.xrange(self.key, min=f"({lower}", max=self._position, count=_CATCH_UP_BATCH)
                entries.extend(batch)
                if len(batch) < _CATCH_UP_BATCH:
                    break
                lower = batch[-1][0]
        now_ms = _redis_now_ms(client) if entries else 0
        with self._lock:
            if subscription not in self._pending:
                return  # the page went away meanwhile
            subscription.floor = start
            if entries:
                subscription.put(Delivery("cards", entries, now_ms))
            self._pending.remove(subscription)
            self._live.add(subscription)

    def _read(self, client: redis.Redis) -> None:
        batches = client.xread({self.key: self._position}, block=READ_BLOCK_MS, count=100)
        if not batches:
            return
        entries = batches[0][1]
        self._position = entries[-1][0]
        delivery = Delivery("cards", entries, _redis_now_ms(client))
        with self._lock:
            for subscription in list(self._live):
                if not subscription.put(delivery):
                    self._live.discard(subscription)

    def _broadcast_state(self, state: str, exc: BaseException | None = None) -> None:
        with self._lock:
            down = state == "unavailable"
            if self._down == down:
                return
            self._down = down
            for subscription in [*self._live, *self._pending]:
                subscription.put(Delivery(state))
        if down and time.monotonic() - self._last_outage_log >= 30:
            self._last_outage_log = time.monotonic()
            logger.warning(
                "overlay streams waiting for Redis (%s): %s", type(exc).__name__, exc, extra={"service": "overlays"}
            )


def _redis_now_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


_hubs: dict[tuple[str, str], Hub] = {}
_hubs_lock = threading.Lock()


def hub_for(url: str, key: str) -> Hub:
    with _hubs_lock:
        hub = _hubs.get((url, key))
        if hub is None:
            hub = _hubs[(url, key)] = Hub(url, key)
        return hub
