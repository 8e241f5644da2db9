"""Spill files a dead capture left behind, stored by the next capture.

A capture killed while PostgreSQL was away (SIGKILL, out of memory, a power
cut after the last fsync) leaves its session's spill file: events received,
never stored. The next capture finds the files nobody holds (``spill.leftover_files``)
and stores each into its own session, in order, through a pipeline of its own
(its streaks closed at the end, QueueItems created and dispatched as for any
batch), beside the live it captures: on a thread writer, so the live keeps its
writer process. A message already stored (the dead capture had read part of
the file back) is kept once (``store.write_batch``).

Events the dead capture held only in memory are gone with it; at most
``CAPTURE_BACKLOG_MAX_EVENTS`` plus a batch.
"""

from __future__ import annotations

import logging
from pathlib import Path

from project.tiktok_events.capture.backlog import Backlog
from project.tiktok_events.capture.output import CaptureOutput
from project.tiktok_events.capture.pipeline import CapturePipeline
from project.tiktok_events.capture.spill import leftover_files
from project.tiktok_events.capture.writer import BatchWriter

log = logging.getLogger("capture")


async def store_leftovers(output: CaptureOutput, spill_dir: Path, *, streak_timeout: float) -> int:
    """Store every leftover spill file in ``spill_dir``; how many events were stored."""
    leftovers = leftover_files(spill_dir)
    if not leftovers:
        return 0
    quiet = CaptureOutput(output.stream, events=False)
    writer = BatchWriter(separate_process=False)
    total = 0
    try:
        await writer.start()
        for session_id, path in leftovers:
            backlog = Backlog(quiet, spill_dir=spill_dir)
            try:
                backlog.adopt(path)
            except BlockingIOError:
                continue  # taken by another capture starting at the same moment
            output.line(f"♻️  Storing the events a stopped capture left on disk for session #{session_id} ({path})")
            pipeline = CapturePipeline(quiet, writer, streak_timeout=streak_timeout, backlog=backlog)
            pipeline.set_session(session_id)
            await pipeline.close()
            await pipeline.run()
            stored = pipeline.stats.total_stored
            total += stored
            log.warning(
                "stored a spill file a stopped capture left",
                extra={"session_id": session_id, "events": stored, "file": str(path)},
            )
            output.line(f"✅ Session #{session_id}: {stored} events left on disk stored")
    except Exception:
        # What is not stored stays on disk for the next start.
        log.exception("storing a leftover spill file failed; it stays for the next start")
    finally:
        await writer.close()
    return total
