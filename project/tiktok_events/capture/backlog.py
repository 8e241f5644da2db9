"""The capture's backlog while PostgreSQL is away: bounded in memory, then spilled to disk.

The pipeline keeps the events it could not store yet in memory, up to
``CAPTURE_BACKLOG_MAX_EVENTS``. Past that, every event received goes to the
session's spill file (``spill.py``) instead, and keeps going there while the
file holds events not read back: the file is a queue in front of the one in
memory, so order is kept. Once batches are stored again the pipeline refills
memory from the file whenever the backlog is down to half the bound; the file
is removed once every event read from it is stored.

While the capture is behind (events waiting longer than ``BEHIND_SECONDS``, or
on disk) it logs every ``REPORT_SECONDS`` how far: ``capture behind``
events_waiting, on_disk, seconds_behind, spilled_total.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from django.conf import settings

from project.env import env_int, env_str
from project.tiktok_events.capture.normalize import CapturedEvent
from project.tiktok_events.capture.output import CaptureOutput
from project.tiktok_events.capture.spill import SpillFile, spill_path, write_leftover

log = logging.getLogger("capture")

# Read here rather than in settings.py so the capture's limits sit with the code they bound.
DEFAULT_MAX_EVENTS = 50_000  # ≈ 3 minutes of a big live at 300 events/s; ≈ 50-100 MB held (≈ 1 KB a like)


def max_events_setting() -> int:
    """CAPTURE_BACKLOG_MAX_EVENTS: events held in memory while PostgreSQL is away."""
    return env_int("CAPTURE_BACKLOG_MAX_EVENTS", DEFAULT_MAX_EVENTS, minimum=1)


def spill_dir_setting() -> Path:
    """CAPTURE_SPILL_DIR: where the spill files go (default var/capture-spill in the project)."""
    return Path(env_str("CAPTURE_SPILL_DIR", "") or Path(settings.BASE_DIR) / "var" / "capture-spill")


REPORT_SECONDS = 5.0
BEHIND_SECONDS = 3.0
REFILL_CHUNK = 5_000  # events read back from the file at once


class Backlog:
    def __init__(self, output: CaptureOutput, *, max_events: int | None = None, spill_dir: Path | None = None) -> None:
        self.output = output
        self.max_events = max_events if max_events is not None else max_events_setting()
        self.spill_dir = Path(spill_dir) if spill_dir is not None else spill_dir_setting()
        self.spill: SpillFile | None = None
        self.spilled = 0  # events written to disk in this run
        # Rows queued by the pipeline up to the last event read back, and the first batch cut
        # after it: once both are written, everything read from the file is stored.
        self.rows_until = 0
        self.batch_after = 0
        self._reported_at = 0.0
        self._reporting = False

    # -- the way in -------------------------------------------------------------------------------

    @property
    def on_disk(self) -> int:
        """Events in the file not read back yet (of this run's; a leftover counts 0 until read)."""
        spill = self.spill
        return spill.appended - spill.read_count if spill is not None and not spill.adopted else 0

    def must_spill(self, session_id: int | None, waiting: int) -> bool:
        if self.spill is not None and self.spill.unread:
            return True  # behind events already on disk: order
        return session_id is not None and waiting >= self.max_events

    def put(self, event: CapturedEvent, session_id: int, waiting: int) -> bool:
        """Onto disk; False if the file cannot be written (the caller keeps the event in memory)."""
        try:
            if self.spill is None:
                self.spill = SpillFile(spill_path(self.spill_dir, session_id))
                log.warning(
                    "backlog full; events go to the spill file",
                    extra={"waiting": waiting, "max_events": self.max_events, "file": str(self.spill.path)},
                )
                self.output.warning(
                    f"{waiting} events are waiting to be stored (PostgreSQL unreachable?): the next ones are kept "
                    f"on disk in {self.spill.path} and stored, in order, once it is back."
                )
            self.spill.append(event)
        except OSError:
            log.exception("could not write the spill file; the backlog grows in memory", extra={"waiting": waiting})
            return False
        self.spilled += 1
        return True

    def adopt(self, path: Path) -> None:
        """A file a dead capture left: read back like this run's own (nothing is appended to it)."""
        self.spill = SpillFile(path, adopted=True)

    # -- the way out ------------------------------------------------------------------------------

    def take(self, waiting: int) -> list[CapturedEvent]:
        """Events to read back into memory (none while the backlog is over half the bound)."""
        if self.spill is None or not self.spill.unread:
            return []
        room = max(1, self.max_events // 2) - waiting
        if room <= 0:
            return []
        return self.spill.read(min(room, REFILL_CHUNK))

    def taken(self, rows_queued: int, next_batch: int) -> None:
        self.rows_until = rows_queued
        self.batch_after = next_batch

    def release_if_stored(self, rows_written: int, written_batch: int) -> None:
        """Remove the file once it is read to its end and all of it is stored."""
        spill = self.spill
        if spill is None or spill.unread or rows_written < self.rows_until or written_batch < self.batch_after:
            return
        spill.remove()
        self.spill = None
        log.info("the spill file is stored; removed", extra={"file": str(spill.path), "events": spill.read_count})
        if not spill.adopted:
            self.output.line(f"✅ The {spill.read_count} events kept on disk are stored")

    def keep_for_next_start(self, events: list[CapturedEvent], session_id: int) -> int:
        """The run ends before PostgreSQL is back: ``events`` (held in memory, older than any
        on disk) go to the head of the session's file, for the next capture (leftovers.py)."""
        then: list[str] = []
        if self.spill is not None:
            then = self.spill.unread_lines()
            self.spill.close()
            self.spill = None
        if events or then:
            write_leftover(spill_path(self.spill_dir, session_id), events, then)
        return len(events) + len(then)

    # -- how far behind ---------------------------------------------------------------------------

    def report(self, waiting: int, oldest_mono: float | None) -> None:
        """At most every ``REPORT_SECONDS``: how far behind the capture is, while it is."""
        now = time.monotonic()
        if now - self._reported_at < REPORT_SECONDS:
            return
        behind_s = now - oldest_mono if oldest_mono is not None else 0.0
        on_disk = self.on_disk
        if behind_s < BEHIND_SECONDS and not on_disk:
            if self._reporting:
                self._reporting = False
                log.info("capture caught up", extra={"events_waiting": waiting, "spilled_total": self.spilled})
            return
        self._reported_at, self._reporting = now, True
        log.warning(
            "capture behind",
            extra={
                "events_waiting": waiting + on_disk,
                "on_disk": on_disk,
                "seconds_behind": round(behind_s, 1),
                "spilled_total": self.spilled,
            },
        )
