"""Server-sent event streams of the web process: how many it serves at once, and the slot each holds.

Each open stream holds a thread of the web server for as long as it lasts; with more
streams than threads nothing else would be served. Each kind of stream (the overlays, the
control room) counts its own in a ``StreamSlots`` with its own limit.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator

from django.http import HttpResponse, StreamingHttpResponse


class StreamSlots:
    """The streams this process serves now; at most ``limit()``."""

    def __init__(self, limit: Callable[[], int]) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._open = 0

    def take(self) -> bool:
        with self._lock:
            if self._open >= self._limit():
                return False
            self._open += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self._open = max(0, self._open - 1)

    @property
    def open(self) -> int:
        with self._lock:
            return self._open


class HeldStream:
    """A stream's events holding one slot of ``slots`` until it ends or is closed.

    The server closes the response whether or not it read it (a client gone before the
    first byte): ``close`` gives the slot back then too.
    """

    def __init__(self, events: Generator[str, None, None], slots: StreamSlots) -> None:
        self._events = events
        self._slots = slots
        self._held = True

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self._events
        finally:
            self.close()

    def close(self) -> None:
        if self._held:
            self._held = False
            self._slots.give_back()
            self._events.close()


def event_stream(
    events: Generator[str, None, None], slots: StreamSlots, *, full: str, retry_after: int
) -> HttpResponse:
    """A stream endpoint's response: ``events`` as text/event-stream holding one of ``slots``, or,
    with every slot taken, 503 saying ``full`` with Retry-After."""
    if not slots.take():
        events.close()
        response = HttpResponse(full, status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(retry_after)
        return response
    response = StreamingHttpResponse(HeldStream(events, slots), content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache, no-store"
    response["X-Accel-Buffering"] = "no"  # nginx in front must not buffer the stream
    return response


def paced_events(
    wait: Callable[[float], Iterable[str] | None],
    *,
    heartbeat: float,
    max_seconds: float,
    ended: Callable[[], bool] = lambda: False,
) -> Iterator[str]:
    """The frame of a page's event stream: a hello naming the heartbeat; then the messages
    ``wait(timeout)`` gives (None: nothing within ``timeout`` s), a ping after ``heartbeat`` s
    without one (a named event, not an SSE comment: the pages' watchdogs only see events);
    the end after ``max_seconds`` or once ``ended()``, and the browser reconnects. A thread
    of the web server is never held by a client that vanished without the socket noticing.
    """
    deadline = time.monotonic() + max_seconds
    yield f"retry: 1000\nevent: hello\ndata: {json.dumps({'heartbeat_ms': heartbeat * 1000})}\n\n"
    next_ping = time.monotonic() + heartbeat
    while not ended():
        now = time.monotonic()
        if now >= deadline:
            return
        if now >= next_ping:
            yield "event: ping\ndata: {}\n\n"
            next_ping = time.monotonic() + heartbeat
            continue
        messages = wait(min(next_ping, deadline) - now)
        sent = False
        for message in messages or ():
            sent = True
            yield message
        if sent:
            next_ping = time.monotonic() + heartbeat
