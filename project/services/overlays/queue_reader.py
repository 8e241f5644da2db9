"""What the "Next up" overlay shows for one SYNC service, read once a second for every open page.

**The snapshot.** "Now" is the service's item in status ``processing`` (the newest
started, should a dead worker's item still linger). "Next" are up to ``NEXT_COUNT``
pending, dispatched, non-discardable items (gifts, follows, subscriptions) in the order
the priority queue serves them: priority first, then dispatch time. "Waiting" counts
every pending item, likes and chat included. The three queries run in one read-only
repeatable-read transaction, so an item moving from pending to processing between them
is never shown twice nor missed. Names are the capture's cleaned nicknames, masked
where moderation matched them (:func:`project.moderation.screen`); the page inserts
them as text.

**One reader per service per web process.** Like :mod:`.reader` for the cards, the pages
of one process that watch the same service share one thread (named
``overlays-queue:<pid>:<service id>``) that reads the snapshot every ``POLL_SECONDS`` and
wakes the pages when it changed; a page only waits. Thirty open pages cost one read a
second, not thirty, and a page that opens gets the latest snapshot at once. The thread
holds its own database connection and closes it when no page watches any more. When the
database fails the pages hear ``unavailable`` (they keep what they show) and the thread
tries again a second later.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.db import Error as DatabaseError
from django.db import connection, transaction

from project.moderation import screen
from project.moderation import settings as moderation_settings
from project.queue_system.models import QueueItem
from project.services.event_fields import gift_fields, like_count
from project.services.overlays.cards import CARD_TYPES
from project.tiktok_events.capture.text_cleaning import clean_nickname

logger = logging.getLogger("services.overlays")

POLL_SECONDS = 1.0
NEXT_COUNT = 3
_ERROR_LOG_SECONDS = 30

_TEXTS = {
    "follow": "followed",
    "subscribe": "subscribed",
    "share": "shared the live",
    "comment": "commented",
    "join": "joined",
}


def describe(item: QueueItem, moderation: moderation_settings.ModerationSettings) -> dict[str, Any]:
    """One row of the overlay: who and what, as plain text."""
    event = item.live_event
    screening = screen(event, moderation)
    if screening.name_hit is not None:
        name = screening.shown_name()
    else:
        # The capture stores the cleaned nickname; cleaning again (idempotent) covers rows
        # written some other way. The raw nickname is never shown.
        name = clean_nickname(event.user_nickname, event.user_unique_id) or "someone"
    kind = CARD_TYPES.get(item.event_type, "other")
    row: dict[str, Any] = {"id": item.pk, "event_id": event.pk, "type": kind, "event_type": item.event_type}
    row["nickname"] = name
    if kind == "gift":
        gift = gift_fields(event)
        row.update(gift=gift["name"], count=gift["count"], image=gift["image"])
        row["text"] = f"{gift['name']} ×{gift['count']}" if gift["count"] > 1 else gift["name"]
    elif kind == "like":
        count = like_count(event)
        row["text"] = "sent a like" if count == 1 else f"sent {count} likes"
    else:
        # Only the kind of event, never a comment's text: the queue overlay shows who, not what they wrote.
        row["text"] = _TEXTS.get(kind) or item.event_type.removesuffix("Event").lower()
    return row


def read_snapshot(service_id: int) -> dict[str, Any]:
    """The running item, the next ones and the waiting count of one service, read consistently."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost:
            # A snapshot of one moment (and nothing written); inside a caller's transaction it is the caller's.
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        items = QueueItem.objects.filter(service_id=service_id)
        running = (
            items.filter(status=QueueItem.Status.PROCESSING)
            .select_related("live_event")
            .order_by("-started_at", "-id")
            .first()
        )
        upcoming = list(
            items.filter(status=QueueItem.Status.PENDING, discardable=False, dispatched_at__isnull=False)
            .select_related("live_event")
            .order_by("-priority", "dispatched_at", "id")[:NEXT_COUNT]
        )
        waiting = items.filter(status=QueueItem.Status.PENDING).count()
        moderation = moderation_settings.current() if running or upcoming else None
    return {
        "running": describe(running, moderation) if running else None,
        "next": [describe(item, moderation) for item in upcoming],
        "waiting": waiting,
    }


@dataclass(frozen=True)
class State:
    version: int
    available: bool
    snapshot: dict[str, Any] | None


class Watch:
    """One open page's hold on a service's reader."""

    def __init__(self, reader: QueueReader) -> None:
        self.reader = reader
        self.seen = 0

    def next_state(self, timeout: float) -> State | None:
        """The state once it differs from the last one this page got, or None after ``timeout``."""
        state = self.reader.wait_past(self.seen, timeout)
        if state is not None:
            self.seen = state.version
        return state

    def close(self) -> None:
        self.reader.unsubscribe(self)


class QueueReader:
    """The reader thread of one service in this process, and the pages watching it."""

    def __init__(self, service_id: int) -> None:
        self.service_id = service_id
        self.thread_name = f"overlays-queue:{os.getpid()}:{service_id}"
        self.reads = 0  # snapshots read since the process started (tests and debugging)
        self._cond = threading.Condition()
        self._watches: set[Watch] = set()
        self._thread: threading.Thread | None = None
        self._version = 0
        self._state: State | None = None
        self._last_error_log = 0.0

    def subscribe(self) -> Watch:
        watch = Watch(self)
        with self._cond:
            self._watches.add(watch)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
                self._thread.start()
        return watch

    def unsubscribe(self, watch: Watch) -> None:
        with self._cond:
            self._watches.discard(watch)

    def listeners(self) -> int:
        with self._cond:
            return len(self._watches)

    def running(self) -> bool:
        with self._cond:
            return self._thread is not None

    def wait_past(self, version: int, timeout: float) -> State | None:
        with self._cond:
            self._cond.wait_for(
                lambda: self._state is not None and self._state.version != version, timeout=max(0.0, timeout)
            )
            state = self._state
        return state if state is not None and state.version != version else None

    # --- the reader thread ------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    if not self._watches:
                        # Under the lock: a page subscribing from now on starts a new thread.
                        self._thread = None
                        self._state = None
                        return
                started = time.monotonic()
                self._read_once()
                time.sleep(max(0.0, POLL_SECONDS - (time.monotonic() - started)))
        finally:
            connection.close()  # this thread's own connection

    def _read_once(self) -> None:
        try:
            snapshot = read_snapshot(self.service_id)
        except Exception as exc:
            # A database outage or a bug: the pages keep what they show and hear why; the next read retries.
            if isinstance(exc, DatabaseError):
                connection.close()  # a broken connection is not reused
            if time.monotonic() - self._last_error_log >= _ERROR_LOG_SECONDS:
                self._last_error_log = time.monotonic()
                logger.warning(
                    "queue overlay cannot read service %s (%s): %s",
                    self.service_id,
                    type(exc).__name__,
                    exc,
                    extra={"service": "overlays"},
                    exc_info=not isinstance(exc, DatabaseError),
                )
            self._publish(False, None)
            return
        self.reads += 1
        self._publish(True, snapshot)

    def _publish(self, available: bool, snapshot: dict[str, Any] | None) -> None:
        with self._cond:
            current = self._state
            if snapshot is None and current is not None:
                snapshot = current.snapshot  # an outage keeps the last snapshot
            if current is not None and current.available == available and current.snapshot == snapshot:
                return
            self._version += 1
            self._state = State(self._version, available, snapshot)
            self._cond.notify_all()


_readers: dict[int, QueueReader] = {}
_readers_lock = threading.Lock()


def reader_for(service_id: int) -> QueueReader:
    with _readers_lock:
        reader = _readers.get(service_id)
        if reader is None:
            reader = _readers[service_id] = QueueReader(service_id)
        return reader
