"""The shared overlay reader across a Redis outage, on the real Redis: the pages of a process
reach it through a TCP relay the test cuts and mends (Redis itself keeps running for the
other test runs on this machine)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from django.conf import settings as django_settings

from project.services.overlays.stream import publish_card, sse_events
from tests.support.web_servers import parse_sse


class CuttableLink:
    """A TCP relay to Redis: ``cut()`` drops every connection and refuses new ones, ``mend()`` lets them in."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut_off = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            if self.cut_off:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.cut_off = True
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def mend(self) -> None:
        self.cut_off = False

    def close(self) -> None:
        self.listener.close()
        self.cut()


def until(events: Iterator[str], wanted: str, limit: int = 30) -> list[dict]:
    """The page's events up to and including the first ``wanted`` one (pings come every second)."""
    seen = []
    for _ in range(limit):
        seen.append(parse_sse(next(events)))
        if seen[-1]["event"] == wanted or (seen[-1]["event"] == "card" and seen[-1]["data"]["id"] == wanted):
            return seen
    raise AssertionError(f"no {wanted} in {[m['event'] for m in seen]}")


def card_ids(messages: list[dict]) -> list[str]:
    return [m["data"]["id"] for m in messages if m["event"] == "card"]


def card(card_id: str) -> dict:
    return {"id": card_id, "type": "gift", "nickname": "Ana", "text": "sent Rose", "duration_ms": 30_000}


def readers_named(key: str) -> list[dict]:
    clients = redis.Redis.from_url(django_settings.REDIS_URL).client_list()
    return [c for c in clients if c.get("name", "").endswith(f":{key}") and c["name"].startswith("overlays-reader:")]


@pytest.fixture
def link(settings):
    real = urlsplit(settings.REDIS_URL)
    relay = CuttableLink(real.hostname or "127.0.0.1", real.port or 6379)
    settings.REDIS_URL = urlunsplit((real.scheme, f"127.0.0.1:{relay.port}", real.path, "", ""))
    try:
        yield relay, redis.Redis.from_url(urlunsplit(real), decode_responses=True)
    finally:
        relay.close()


@pytest.mark.slow
def test_pages_sharing_the_reader_hear_of_an_outage_and_get_the_cards_published_during_it(
    overlay_stream, settings, link
):
    relay, direct = link
    settings.OVERLAYS_SSE_HEARTBEAT = 1
    first, second = sse_events(None), sse_events(None)
    late = None
    try:
        assert parse_sse(next(first))["event"] == parse_sse(next(second))["event"] == "hello"
        publish_card(card("before"), client=direct)
        assert card_ids(until(first, "before")) == card_ids(until(second, "before")) == ["before"]
        assert len(readers_named(overlay_stream)) == 1, "two pages, one reader"

        relay.cut()
        for page in (first, second):
            assert until(page, "unavailable")[-1]["data"] == {"reason": "redis unavailable"}
        publish_card(card("during"), client=direct)
        late = sse_events(None)  # a page that opens while Redis is out of reach
        assert [m["event"] for m in (parse_sse(next(late)), parse_sse(next(late)))] == ["hello", "unavailable"]

        relay.mend()
        for page, expected in ((first, ["during"]), (second, ["during"]), (late, ["before", "during"])):
            got = until(page, "during")
            assert "available" in [m["event"] for m in got]
            assert card_ids(got) == expected, "nothing lost, nothing twice (the late page replays the last minute)"
        assert len(readers_named(overlay_stream)) == 1
    finally:
        for page in (first, second, late):
            if page is not None:
                page.close()
