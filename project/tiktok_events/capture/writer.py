"""Where event batches are written: a separate writer process (or, for tests, a thread).

TikTokLive parses every message in Python (≈0.45 ms each on a 2-core
machine) and storing plus dispatching an event costs about as much again
(QueueItems through the ORM, publishing with confirms). In one process both
share one core through the GIL; the writer process gives the capture two.
Batches go to it in order, one at a time, as plain data (``WriteBatch``).

The priority lane (pipeline.py) has a writer process of its own (``role=PRIORITY``):
its small batches of gifts, follows and subscriptions never queue behind the main
writer's batch of likes.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import TYPE_CHECKING

# Only Django-free imports here: the writer process imports this module before
# django.setup() has run (in its initializer).
from project.env import env_bool
from project.tiktok_events.capture.batches import WriteBatch, WriteResult

if TYPE_CHECKING:
    from project.queue_system.streaming import BatchOutcome

log = logging.getLogger("capture.writer")

PARENT_CHECK_SECONDS = 1.0
MAIN = "main"
PRIORITY = "priority"


def priority_lane_setting() -> bool:
    """CAPTURE_PRIORITY_LANE (default on): gifts, follows and subscriptions through their own writer."""
    return env_bool("CAPTURE_PRIORITY_LANE", True)


def _start_worker() -> None:
    # Ctrl+C in a terminal signals the whole process group: the parent decides when
    # the writer stops (after the last batch), so the writer ignores it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _exit_with_the_capture()
    import django

    django.setup()


def _exit_with_the_capture() -> None:
    """A capture killed outright (SIGKILL, out of memory) never closes its writer, which would
    stay idle for ever with its connections open: the writer leaves once its parent is gone.

    Nothing is lost: a batch being written either commits or rolls back, and what is stored
    but not confirmed stays pending for the next start (``redispatch_pending``).
    """
    # The pid the capture gave this process, not getppid(): a capture that ended while this
    # process was still starting has already left it to init (a writer then stayed for ever).
    spawned_by = multiprocessing.parent_process()
    parent = spawned_by.pid if spawned_by is not None else os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        log.error("the capture process is gone; its writer process stops")
        os._exit(1)

    threading.Thread(target=watch, name="capture-parent-watch", daemon=True).start()


def _write(batch: WriteBatch) -> WriteResult:
    from project.tiktok_events.capture.handoff import write_and_dispatch

    return write_and_dispatch(batch)


def _finish(timeout: float | None) -> list[BatchOutcome]:
    from project.tiktok_events.capture.handoff import finish

    return finish(timeout)


def _priority_types() -> frozenset[str]:
    from project.tiktok_events.capture.handoff import priority_types

    return priority_types(fresh=True)


def _warm_up(*, pending_older_than: float = 10.0, left_by: str = "an earlier run", redispatch: bool = True) -> int:
    """Connections, queues and policies ready before the first batch; then what ``left_by``
    left pending (``redispatch_pending``; items younger than ``pending_older_than`` seconds
    may still be a live capture's own; not by the priority lane's writer: the main one does
    it). Returns how many items were republished."""
    from django.db import connection

    from project.queue_system.dispatcher import redispatch_pending
    from project.tiktok_events.capture import handoff

    connection.ensure_connection()
    dispatcher = handoff.dispatcher()
    dispatcher.warm_up()
    if not redispatch:
        return 0
    result = redispatch_pending(older_than=pending_older_than, dispatcher=dispatcher)
    if result.confirmed:
        log.warning(f"republished the items {left_by} left pending", extra={"items": result.confirmed})
    return result.confirmed


def _recover() -> int:
    """First job of a writer started after one died: what the dead one left pending (stored,
    committed, never confirmed) is seconds old."""
    try:
        return _warm_up(pending_older_than=0, left_by="a dead writer")
    except Exception:
        # Nobody waits for this job: say it here. The items stay pending for the next start
        # (or manage.py redispatch_pending).
        log.exception("could not republish what the dead writer left pending")
        return 0


def _close_worker() -> None:
    from django.db import connection

    from project.tiktok_events.capture import handoff

    handoff.close()
    connection.close()


def _process_executor() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker
    )


_WARM_UPS = {MAIN: _warm_up, PRIORITY: partial(_warm_up, redispatch=False)}
_prestarted: dict[str, tuple[ProcessPoolExecutor, Future]] = {}


def prestart() -> None:
    """Start the writer processes and their warm-ups now, while the caller does other slow work
    (the capture command, while the simulator boots: each of them loads for seconds, on two
    cores). The next ``BatchWriter`` of each role with a separate process takes it over."""
    roles = [MAIN, PRIORITY] if priority_lane_setting() else [MAIN]
    for role in roles:
        if role not in _prestarted:
            executor = _process_executor()
            _prestarted[role] = (executor, executor.submit(_WARM_UPS[role]))


def discard_prestarted() -> None:
    """Stop the prestarted writers nobody took over (the run ended before it began)."""
    while _prestarted:
        _role, (executor, _warming) = _prestarted.popitem()
        executor.shutdown(wait=True, cancel_futures=True)


class BatchWriter:
    def __init__(self, *, separate_process: bool = True, role: str = MAIN) -> None:
        self.separate_process = separate_process
        self.role = role
        self._warming: Future | None = None
        if separate_process and role in _prestarted:
            self._executor, self._warming = _prestarted.pop(role)
        else:
            self._executor: Executor = self._new_executor()

    def _new_executor(self) -> Executor:
        if self.separate_process:
            return _process_executor()
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="capture-batches")

    async def start(self) -> None:
        """Start the writer (process, Django, database connection) before the first events arrive."""
        if self._warming is not None:
            await asyncio.wrap_future(self._warming)
            return
        await asyncio.get_running_loop().run_in_executor(self._executor, _WARM_UPS[self.role])

    async def priority_types(self) -> frozenset[str]:
        """The event types some active service keeps (see ``handoff.priority_types``)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, _priority_types)

    def submit(self, batch: WriteBatch) -> asyncio.Future | None:
        """Hand the batch to the writer now, not at the event loop's next turn (which a capture
        parsing a backlog of frames gives only between them); ``write`` awaits it. None when the
        writer cannot take it (``write`` then submits it again, and replaces a dead writer)."""
        try:
            return asyncio.get_running_loop().run_in_executor(self._executor, _write, batch)
        except Exception:  # BrokenProcessPool, RuntimeError of an executor shut down
            return None

    async def write(self, batch: WriteBatch, submitted: asyncio.Future | None = None) -> WriteResult:
        loop = asyncio.get_running_loop()
        try:
            if submitted is not None:
                return await submitted
            return await loop.run_in_executor(self._executor, _write, batch)
        except BrokenProcessPool:
            # The writer process died (killed, out of memory): start another; the
            # caller retries the batch. Its transaction either committed before the
            # death (its rows are then found already stored) or never happened.
            log.error("the writer process died; starting a new one")
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = self._new_executor()
            # Runs before the retried batch (one worker, jobs in order). A failure
            # here is the retried batch's failure too, and retried with it.
            self._executor.submit(_recover)
            raise

    async def finish(self, timeout: float | None = None) -> list[BatchOutcome]:
        """Settle the batches whose confirms are still awaited (see ``handoff.write_and_dispatch``);
        with a ``timeout``, what settled within it."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, _finish, timeout)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, _close_worker)
        except Exception as exc:
            log.info("closing the writer", extra={"error": str(exc)[:200]})
        await loop.run_in_executor(None, self._executor.shutdown, True)
