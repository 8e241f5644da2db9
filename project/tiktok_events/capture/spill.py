"""The spill file: events waiting on disk while PostgreSQL is away and the backlog is full.

One append-only JSON-lines file per session (``<CAPTURE_SPILL_DIR>/session-<id>.jsonl``),
one ``CapturedEvent`` a line, in the order they were received. The pipeline
appends to its end and reads from its start: a queue on disk in front of the
one in memory. Each append is flushed to the kernel (a killed capture loses
nothing it spilled) and the file is fsynced at most once per ``FSYNC_SECONDS``
(a machine crash may lose that last second).

The capture holds an exclusive ``flock`` on its file: a file nobody holds is
one a dead capture left, which the next capture stores (``leftover_files``).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, TextIO

from project.tiktok_events.capture.normalize import CapturedEvent

log = logging.getLogger("capture.spill")

FSYNC_SECONDS = 1.0
NAME = re.compile(r"^session-(\d+)\.jsonl$")


def spill_path(directory: Path, session_id: int) -> Path:
    return Path(directory) / f"session-{session_id}.jsonl"


def encode(event: CapturedEvent) -> str:
    return json.dumps(
        {
            "event_type": event.event_type,
            "msg_id": event.msg_id,
            "user_id": event.user_id,
            "user_unique_id": event.user_unique_id,
            "user_nickname": event.user_nickname,
            "user_nickname_raw": event.user_nickname_raw,
            "event_data": event.event_data,
            "received_at": event.received_at.isoformat(),
            "received_mono": event.received_mono,
            "frame_sent_ms": event.frame_sent_ms,
            "streakable": event.streakable,
            "streak_end": event.streak_end,
            "repeat_count": event.repeat_count,
            "group_id": event.group_id,
        },
        ensure_ascii=False,
    )


def decode(line: str, *, same_process: bool) -> CapturedEvent:
    data: dict[str, Any] = json.loads(line)
    data["received_at"] = dt.datetime.fromisoformat(data["received_at"])
    if not same_process:
        # Another process's monotonic clock means nothing here.
        data["received_mono"] = time.monotonic()
    return CapturedEvent(**data)


class SpillFile:
    """Appended to and read from by one thread (the capture's event loop)."""

    def __init__(self, path: Path, *, adopted: bool = False) -> None:
        self.path = Path(path)
        self.adopted = adopted  # left by a dead capture: read only
        self.appended = 0
        self.read_count = 0
        self._writer: TextIO | None = None
        self._reader: TextIO | None = None
        self._synced_at = 0.0
        self._at_end = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Held until removed: tells a capture starting meanwhile the file is not a leftover.
        self._lock = open(self.path, "a", encoding="utf-8")
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)

    @property
    def unread(self) -> bool:
        """Events on disk not read back yet."""
        if self.adopted:
            return not self._at_end
        return self.read_count < self.appended

    def append(self, event: CapturedEvent) -> None:
        if self._writer is None:
            self._writer = open(self.path, "a", encoding="utf-8")
        self._writer.write(encode(event) + "\n")
        self._writer.flush()
        self.appended += 1
        now = time.monotonic()
        if now - self._synced_at >= FSYNC_SECONDS:
            os.fsync(self._writer.fileno())
            self._synced_at = now

    def read(self, limit: int) -> list[CapturedEvent]:
        """Up to ``limit`` events, in order, from where the last read stopped."""
        if self._reader is None:
            self._reader = open(self.path, encoding="utf-8")
        events: list[CapturedEvent] = []
        while len(events) < limit:
            position = self._reader.tell()
            line = self._reader.readline()
            if not line:
                self._at_end = True
                break
            if not line.endswith("\n"):
                if self.adopted:
                    # A dead capture's last line, cut short by the kill: it never was whole.
                    log.warning("skipped a spilled event cut short", extra={"file": str(self.path)})
                    self._at_end = True
                    break
                self._reader.seek(position)  # being written by this process: read it next time
                break
            try:
                events.append(decode(line, same_process=not self.adopted))
            except (ValueError, TypeError, KeyError):
                log.exception("skipped an unreadable spilled event", extra={"file": str(self.path)})
            self.read_count += 1
        return events

    def unread_lines(self) -> list[str]:
        """The whole lines not read back yet, as written."""
        if self._writer is not None:
            self._writer.flush()
        with open(self.path, encoding="utf-8") as handle:
            if self._reader is not None:
                handle.seek(self._reader.tell())
            return [line for line in handle if line.endswith("\n")]

    def close(self) -> None:
        """Stop using the file; it stays (and its lock goes) for the next capture."""
        for handle in (self._writer, self._reader):
            if handle is not None:
                handle.close()
        self._writer = self._reader = None
        self._lock.close()

    def remove(self) -> None:
        """Everything in it is stored: the file goes."""
        for handle in (self._writer, self._reader):
            if handle is not None:
                handle.close()
        self._writer = self._reader = None
        self.path.unlink(missing_ok=True)
        self._lock.close()  # closing releases the lock


def write_leftover(path: Path, events: list[CapturedEvent], then: list[str]) -> None:
    """``events`` then the lines ``then``, as the session's spill file for the next capture
    (written aside and renamed: a crash leaves the old file or the new one, never half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_suffix(".writing")
    with open(aside, "w", encoding="utf-8") as handle:
        handle.writelines(encode(event) + "\n" for event in events)
        handle.writelines(then)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(aside, path)


def leftover_files(directory: Path) -> list[tuple[int, Path]]:
    """Spill files of captures that died before storing them: (session id, path), oldest session first."""
    found = []
    directory = Path(directory)
    if not directory.is_dir():
        return []
    for path in directory.iterdir():
        match = NAME.match(path.name)
        if not match:
            continue
        with open(path, "a", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live capture's own
            fcntl.flock(handle, fcntl.LOCK_UN)
        found.append((int(match.group(1)), path))
    return sorted(found)
