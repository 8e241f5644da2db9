"""One capture run: connect, keep connected, end cleanly.

- The LiveSession is created once the first connection works, and every
  reconnect continues it (same session, message ids de-duplicated).
- A dropped socket reconnects with exponential backoff and jitter; a socket
  that stays open but silent for ``silence_timeout`` is closed by a watchdog
  and reconnected. The live's end, the streamer going offline, Ctrl+C, SIGTERM
  or ``duration`` end the run: open streaks are closed, every queued event is
  written and dispatched, then the session is marked ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from project.queue_system.infrastructure import retry_database
from project.tiktok_events.capture import store
from project.tiktok_events.capture.client import build_client, explain, prepare_parsing, retry_after
from project.tiktok_events.capture.endpoints import CaptureAborted, TikTokEndpoints
from project.tiktok_events.capture.leftovers import store_leftovers
from project.tiktok_events.capture.output import CaptureOutput
from project.tiktok_events.capture.pipeline import CapturePipeline
from project.tiktok_events.capture.writer import BatchWriter
from project.tiktok_events.models import LiveSession

# The session's own statements (create, room id, end) outlast a PostgreSQL restart
# or fail-over; an operator who stops PostgreSQL for good sees the error after this.
SESSION_RETRY_SECONDS = 300.0

log = logging.getLogger("capture")


@dataclass
class CaptureOptions:
    username: str
    session_name: str = ""
    endpoints: TikTokEndpoints = field(default_factory=TikTokEndpoints)
    streak_timeout: float = 10.0
    silence_timeout: float = 60.0
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    first_connect_attempts: int = 5
    duration: float | None = None
    writer_process: bool = True  # write batches from a separate process (two cores instead of one)
    record_path: str | None = None  # --record: every frame as received, for --simulate FILE


@dataclass
class CaptureResult:
    session_id: int | None
    status: str
    reason: str
    reconnects: int
    stats: dict[str, Any]


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: half fixed, half random, so clients do not reconnect in step."""
    delay = min(cap, base * (2**attempt))
    return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - jitter, not cryptography


class CaptureRunner:
    def __init__(self, options: CaptureOptions, output: CaptureOutput) -> None:
        self.options = options
        self.output = output
        # Session rows are written from a thread; event batches by the batch writer.
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="capture-sessions")
        self.batch_writer = BatchWriter(separate_process=options.writer_process)
        self.pipeline = CapturePipeline(output, self.batch_writer, streak_timeout=options.streak_timeout)
        self.session: LiveSession | None = None
        self.reconnects = 0
        self._stop = asyncio.Event()
        self._stop_reason = ""
        self._client = None
        self._leftovers: asyncio.Task | None = None
        self.frames_received = 0  # WebSocket messages of the current connection
        self.recorder = None
        if options.record_path:
            from project.tiktok_events.capture.recording import Recorder

            self.recorder = Recorder(options.record_path, username=options.username)

    # -- public -----------------------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        """Ask the run to end (thread-safe only from the event loop; signals call it there)."""
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()

    @property
    def session_id(self) -> int | None:
        return self.session.pk if self.session else None

    async def run(self) -> CaptureResult:
        loop = asyncio.get_running_loop()
        for sig, reason in ((signal.SIGINT, "stopped with Ctrl+C"), (signal.SIGTERM, "stopped (SIGTERM)")):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop, reason)
        if self.options.duration:
            loop.call_later(self.options.duration, self.stop, f"--duration {self.options.duration:g} s reached")
        flusher = asyncio.create_task(self.pipeline.run())
        status, reason = LiveSession.Status.ENDED, ""
        try:
            self.output.starting(self.options.username)
            # The writer process starts while this one prepares protobuf parsing (both ≈ 0.5 s).
            writer_ready = asyncio.ensure_future(self.batch_writer.start())
            prepare_parsing()
            await writer_ready
            # Beside the live, not before it: a live does not wait for an old one's events.
            spill_dir = self.pipeline.backlog.spill_dir
            self._leftovers = asyncio.create_task(
                store_leftovers(self.output, spill_dir, streak_timeout=self.options.streak_timeout)
            )
            if not await self._connect(first=True):
                raise CaptureAborted(self._stop_reason or "stopped before connecting")
            status, reason = await self._stay_connected()
        except CaptureAborted as exc:
            status, reason = LiveSession.Status.FAILED, str(exc)
            raise
        finally:
            await self._shutdown(flusher, status, reason)
        return CaptureResult(self.session_id, status, reason, self.reconnects, self.pipeline.stats.as_dict())

    # -- connecting -------------------------------------------------------------------------------

    async def _connect(self, *, first: bool) -> bool:
        """Connect (retrying); False when asked to stop meanwhile. Raises CaptureAborted."""
        attempt = 0
        while not self._stop.is_set():
            if self._client is None:
                self._client = build_client(self.options.username, self.options.endpoints, self.pipeline)
                self._client.frame_listener = self._on_frame
                if self.recorder is not None:
                    self._client.first_fetch_listener = self.recorder.first_fetch
            try:
                await self._client.start(fetch_live_check=True)
            except Exception as exc:
                kind, message = explain(exc, self.options.username)
                log.warning("connect failed", extra={"kind": kind, "error": str(exc)[:300], "first": first})
                if kind in ("offline", "not_found"):
                    raise CaptureAborted(message, kind) from exc
                if first and kind == "other" and attempt + 1 >= self.options.first_connect_attempts:
                    raise CaptureAborted(
                        f"Could not connect to TikTok after {attempt + 1} attempts: {message}"
                    ) from exc
                if kind == "rate_limited":
                    delay = retry_after(exc) + random.uniform(0, 1)  # noqa: S311
                    self.output.warning(message)
                else:
                    delay = backoff_delay(attempt, self.options.backoff_base, self.options.backoff_max)
                    self.output.reconnecting(message, delay, attempt + 1)
                attempt += 1
                await self._sleep(delay)
                continue
            room_id = str(self._client.room_id)
            self.pipeline.last_activity = time.monotonic()
            if first:
                self.output.connected(self.options.username, room_id)
                await self._create_session(room_id)
            else:
                self.reconnects += 1
                self.output.reconnected(self.options.username, room_id)
                if self.session and room_id != self.session.room_id:
                    await self._in_writer(store.update_room, self.session.pk, room_id)
            return True
        return False

    async def _create_session(self, room_id: str) -> None:
        self.session = await self._in_writer(
            store.create_session, self.options.username, self.options.session_name, room_id
        )
        self.pipeline.set_session(self.session.pk)
        self.output.session_created(self.session.pk, self.options.session_name)

    async def _stay_connected(self) -> tuple[str, str]:
        attempt = 0
        while True:
            outcome = await self._wait_for_disconnect()
            if outcome == "stop":
                return LiveSession.Status.ENDED, self._stop_reason
            if self.pipeline.live_ended:
                return LiveSession.Status.ENDED, "the LIVE ended"
            await self._disconnect()
            # Reconnect into the same session; offline now means the live is over.
            delay = backoff_delay(attempt, self.options.backoff_base, self.options.backoff_max)
            self.output.reconnecting(outcome, delay, attempt + 1)
            await self._sleep(delay)
            try:
                connected = await self._connect(first=False)
            except CaptureAborted as exc:
                if exc.kind == "offline":
                    return LiveSession.Status.ENDED, "the streamer is no longer live"
                return LiveSession.Status.FAILED, str(exc)
            if not connected:
                return LiveSession.Status.ENDED, self._stop_reason
            attempt = attempt + 1 if outcome != "silent" else 0

    async def _wait_for_disconnect(self) -> str:
        """Until the socket ends, goes silent, or a stop is asked: 'stop', 'silent' or the error."""
        task = self._client._event_loop_task  # the client's socket loop (set by start())
        stop_wait = asyncio.create_task(self._stop.wait())
        watchdog = asyncio.create_task(self._watchdog())
        try:
            done, _ = await asyncio.wait({task, stop_wait, watchdog}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (stop_wait, watchdog):
                waiter.cancel()
        if stop_wait in done:
            return "stop"
        if watchdog in done:
            log.warning("socket silent; reconnecting", extra={"seconds": self.options.silence_timeout})
            return "silent"
        exc = task.exception() if not task.cancelled() else None
        if exc is not None:
            log.warning("socket closed with an error", extra={"error": f"{type(exc).__name__}: {exc}"[:300]})
            return f"{type(exc).__name__}: {exc}"[:120]
        return "socket closed"

    async def _watchdog(self) -> None:
        timeout = self.options.silence_timeout
        while True:
            await asyncio.sleep(min(1.0, timeout / 4))
            if time.monotonic() - self.pipeline.last_activity > timeout:
                return

    # -- ending -----------------------------------------------------------------------------------

    async def _disconnect(self) -> None:
        if self._client is None:
            return
        try:
            await asyncio.wait_for(self._client.disconnect(), timeout=10)
        except Exception as exc:  # a dead socket must not block the reconnect or the shutdown
            log.info("disconnect did not finish cleanly", extra={"error": str(exc)[:200]})

    async def _shutdown(self, flusher: asyncio.Task, status: str, reason: str) -> None:
        await self._disconnect()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.web.close()
        await self.pipeline.close()
        try:
            await asyncio.wait_for(flusher, timeout=120)
        except TimeoutError:
            # PostgreSQL is still away: what was received is kept on disk for the next start.
            kept = self.pipeline.keep_unstored_on_disk()
            log.error(
                "pending events could not be written in 120 s; kept on disk for the next start",
                extra={"pending": self.pipeline.pending, "kept_on_disk": kept},
            )
            self.output.warning(f"{kept} events could not be stored; they are kept on disk for the next capture.")
        if self.session is not None:
            await self._in_writer(store.end_session, self.session.pk, status, reason)
            self.output.finished(self.session.pk, self.pipeline.stats.total_stored, reason)
        if self._leftovers is not None:
            try:
                await asyncio.wait_for(self._leftovers, timeout=120)
            except TimeoutError:
                log.error("a leftover spill file could not be stored in 120 s; it stays for the next start")
        await self.batch_writer.close()
        if self.recorder is not None:
            self.recorder.close()
            self.output.line(f"⏺️  Recorded {self.recorder.frames} frames to {self.recorder.path}")
        await self._in_writer(_close_database_connection)
        self.writer.shutdown(wait=True)

    def _on_frame(self, data: bytes, arrival: float) -> None:
        self.frames_received += 1
        if self.recorder is not None:
            self.recorder.frame(data, arrival)

    # -- helpers ----------------------------------------------------------------------------------

    async def _in_writer(self, fn, *args):
        # Session rows survive a PostgreSQL restart like the batches do: a new connection, again.
        return await asyncio.get_running_loop().run_in_executor(
            self.writer,
            functools.partial(
                retry_database, functools.partial(fn, *args), fn.__name__, give_up_after=SESSION_RETRY_SECONDS
            ),
        )

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)


def _close_database_connection() -> None:
    connection.close()  # the calling thread's own connection
