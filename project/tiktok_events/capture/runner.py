# Design: docs/architecture.md#processes
"""One capture run: connect, keep connected, end cleanly.

- Connected means connected: the WebSocket opened *and* a frame came through
  it. Only then is "✅ Connected" printed and the LiveSession created; every
  reconnect continues it (same session, message ids de-duplicated).
- Before the live starts, the capture waits for it (``wait_for_live``), polling
  the live check with back-off; no sign request is spent on an offline live.
- Each failure gets its own wait (``retry.RetryPolicy``): a dropped socket
  reconnects within seconds (the ladder starts again after a healthy minute); a
  sign-server rate limit is waited out as long as the server asks (or 30 s to
  15 min); a refused WebSocket is retried on the same slow ladder and given up
  after ``give_up_after`` refusals in a row. A socket that stays open but silent
  for ``silence_timeout`` is closed by a watchdog and reconnected.
- The live's end, the streamer offline for longer than ``offline_grace`` during
  a reconnect, Ctrl+C, SIGTERM or ``duration`` end the run: open streaks are
  closed, every queued event is written and dispatched, then the session is
  marked ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
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
from project.tiktok_events.capture.access import NO_KEY_WARNING, TikTokAccess
from project.tiktok_events.capture.client import BLOCKED_ADVICE, SignWatch, build_client, explain, prepare_parsing
from project.tiktok_events.capture.endpoints import CaptureAborted, TikTokEndpoints
from project.tiktok_events.capture.leftovers import store_leftovers
from project.tiktok_events.capture.output import CaptureOutput
from project.tiktok_events.capture.pipeline import CapturePipeline
from project.tiktok_events.capture.retry import RetryPolicy, backoff_delay
from project.tiktok_events.capture.writer import PRIORITY, BatchWriter, priority_lane_setting
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
    access: TikTokAccess = field(default_factory=TikTokAccess)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    streak_timeout: float = 10.0
    silence_timeout: float = 60.0
    wait_for_live: bool = True  # False (--no-wait): an offline streamer ends the run at once
    connect_timeout: float = 20.0  # from the socket's opening to its first frame
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


def _log_failed_note(future: asyncio.Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("could not note the connection state", extra={"error": str(future.exception())[:200]})


class CaptureRunner:
    def __init__(self, options: CaptureOptions, output: CaptureOutput) -> None:
        self.options = options
        self.output = output
        # Session rows are written from a thread; event batches by the batch writer.
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="capture-sessions")
        self.batch_writer = BatchWriter(separate_process=options.writer_process)
        # The priority lane's own writer (pipeline.py), unless CAPTURE_PRIORITY_LANE=0.
        self.priority_writer = (
            BatchWriter(separate_process=options.writer_process, role=PRIORITY) if priority_lane_setting() else None
        )
        self.pipeline = CapturePipeline(
            output,
            self.batch_writer,
            streak_timeout=options.streak_timeout,
            host_username=options.username,
            priority_writer=self.priority_writer,
        )
        self.session: LiveSession | None = None
        self.reconnects = 0
        self._stop = asyncio.Event()
        self._stop_reason = ""
        self._client = None
        self._leftovers: asyncio.Task | None = None
        self._first_frame = asyncio.Event()  # set by the first frame of a new connection
        self._connected_at = 0.0
        self._socket_task: asyncio.Task | None = None
        self._sign_watch = SignWatch()
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
            writers = [w for w in (self.batch_writer, self.priority_writer) if w is not None]
            writers_ready = asyncio.gather(*(w.start() for w in writers))
            prepare_parsing()
            await writers_ready
            if self.priority_writer is not None:
                self.pipeline.priority_types = await self.priority_writer.priority_types()
            # Beside the live, not before it: a live does not wait for an old one's events.
            spill_dir = self.pipeline.backlog.spill_dir
            self._leftovers = asyncio.create_task(
                store_leftovers(self.output, spill_dir, streak_timeout=self.options.streak_timeout)
            )
            if await self._connect(first=True):
                status, reason = await self._stay_connected()
            else:
                reason = self._stop_reason
                self.output.line(f"⏹️  Stopped before the LIVE started ({reason}).")
        except CaptureAborted as exc:
            status, reason = LiveSession.Status.FAILED, str(exc)
            raise
        finally:
            await self._shutdown(flusher, status, reason)
        return CaptureResult(self.session_id, status, reason, self.reconnects, self.pipeline.stats.as_dict())

    # -- connecting -------------------------------------------------------------------------------

    async def _connect(self, *, first: bool) -> bool:
        """Connect, waiting and retrying as each failure deserves; False when asked to stop meanwhile.

        Raises CaptureAborted when there is nothing to wait for (a wrong handle, refusals past
        ``give_up_after``, an offline live past its grace period or without ``wait_for_live``).
        """
        policy = self.options.retry
        failures = refusals = polls = 0
        offline_since: float | None = None
        while not self._stop.is_set():
            failure = await self._attempt()
            if failure is None:
                await self._connected(first)
                return True
            kind, message = failure
            if kind == "stop":
                break
            log.warning("connect failed", extra={"kind": kind, "error": message[:300], "first": first})
            if kind in ("offline", "not_found"):
                offline_since = offline_since or time.monotonic()
                if first and (kind == "not_found" or not self.options.wait_for_live):
                    raise CaptureAborted(message, kind)
                if not first and time.monotonic() - offline_since >= policy.offline_grace:
                    raise CaptureAborted(message, "offline")
                delay = backoff_delay(polls, policy.live_poll_base, policy.live_poll_max)
                self._say_offline(first, polls, delay, policy.offline_grace - (time.monotonic() - offline_since))
                polls += 1
            elif kind == "rate_limited":
                hint = self._sign_watch.hint()
                if hint is not None:
                    delay, why = hint.seconds + random.uniform(0, min(5.0, hint.seconds / 10)), hint.source  # noqa: S311
                else:
                    delay, why = backoff_delay(refusals, policy.refusal_base, policy.refusal_max), "back-off"
                refusals += 1
                self._say_waiting(f"{message} Next try at {{at}} (in {{delay}}, {why}).", delay)
                if not self.options.access.sign_api_key and refusals == 1:
                    self.output.warning(NO_KEY_WARNING)
            elif kind == "blocked":
                refusals += 1
                if refusals >= policy.give_up_after:
                    raise CaptureAborted(
                        f"{message} {refusals} refusals in a row: giving up. {BLOCKED_ADVICE}", "blocked"
                    )
                delay = backoff_delay(refusals - 1, policy.refusal_base, policy.refusal_max)
                self._say_waiting(
                    f"{message} Refusal {refusals} of {policy.give_up_after}; next try at {{at}} (in {{delay}}). "
                    + BLOCKED_ADVICE,
                    delay,
                )
            else:
                failures += 1
                if first and failures >= policy.give_up_after:
                    raise CaptureAborted(f"Could not connect to TikTok after {failures} attempts: {message}")
                delay = backoff_delay(failures - 1, policy.drop_base, policy.drop_max)
                self.output.reconnecting(message, delay, failures)
            await self._sleep(delay)
        return False

    async def _attempt(self) -> tuple[str, str] | None:
        """One try (one sign request at most): None once a frame came through the new socket."""
        if self._client is None:
            self._client = build_client(
                self.options.username, self.options.endpoints, self.pipeline, self.options.access
            )
            self._sign_watch.attach(self._client)
            self._client.frame_listener = self._on_frame
            if self.recorder is not None:
                self._client.first_fetch_listener = self.recorder.first_fetch
        self._sign_watch.reset()
        self._first_frame.clear()
        try:
            # The client's socket loop; kept here: the client forgets it when the live ends.
            socket_task = self._socket_task = await self._client.start(
                fetch_live_check=True, room_id=self.options.access.room_id
            )
        except Exception as exc:
            return explain(exc, self.options.username, self._sign_watch)
        frame = asyncio.create_task(self._first_frame.wait())
        stop = asyncio.create_task(self._stop.wait())
        try:
            done, _ = await asyncio.wait(
                {socket_task, frame, stop}, timeout=self.options.connect_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            frame.cancel()
            stop.cancel()
        if frame in done:
            return None
        error = None if socket_task not in done or socket_task.cancelled() else socket_task.exception()
        await self._disconnect()
        if stop in done:
            return "stop", self._stop_reason
        if socket_task in done:
            return explain(error, self.options.username)
        return "other", f"the socket opened but TikTok sent nothing for {self.options.connect_timeout:g} s"

    async def _connected(self, first: bool) -> None:
        room_id = str(self._client.room_id)
        self.pipeline.last_activity = self._connected_at = time.monotonic()
        if first:
            self.output.connected(self.options.username, room_id)
            await self._create_session(room_id)
        else:
            self.reconnects += 1
            self.output.reconnected(self.options.username, room_id)
            self._note_connection("")
            if self.session and room_id != self.session.room_id:
                await self._in_writer(store.update_room, self.session.pk, room_id)

    def _say_waiting(self, template: str, delay: float) -> None:
        at = dt.datetime.now() + dt.timedelta(seconds=delay)
        wait = f"{delay:.0f} s" if delay < 120 else f"{delay / 60:.1f} min"
        self.output.line("⏳ " + template.format(at=at.strftime("%H:%M:%S"), delay=wait))

    def _say_offline(self, first: bool, polls: int, delay: float, grace_left: float) -> None:
        who = f"@{self.options.username}"
        if first and polls == 0:
            self.output.line(f"⏳ Waiting for {who} to go live… (checking again in {delay:.0f} s; Ctrl+C to stop)")
        elif first:
            self.output.line(f"⏳ {who} is not live yet; checking again in {delay:.0f} s")
        else:
            self.output.line(
                f"⏳ {who} reads offline; waiting up to {max(0.0, grace_left):.0f} s more for the LIVE to come "
                f"back (checking again in {delay:.0f} s)"
            )

    async def _create_session(self, room_id: str) -> None:
        self.session = await self._in_writer(
            store.create_session, self.options.username, self.options.session_name, room_id
        )
        self.pipeline.set_session(self.session.pk)
        self.output.session_created(self.session.pk, self.options.session_name)

    async def _stay_connected(self) -> tuple[str, str]:
        policy = self.options.retry
        attempt = 0
        while True:
            outcome = await self._wait_for_disconnect()
            if outcome == "stop":
                return LiveSession.Status.ENDED, self._stop_reason
            if self.pipeline.live_ended:
                return LiveSession.Status.ENDED, "the LIVE ended"
            now = time.monotonic()
            if now - self._connected_at >= policy.healthy_after and self.pipeline.last_activity > self._connected_at:
                attempt = 0  # a drop after a healthy stretch is a new blip, not the next of a series
            await self._disconnect()
            # Reconnect into the same session; offline past the grace period means the live is over.
            delay = backoff_delay(attempt, policy.drop_base, policy.drop_max)
            self.output.reconnecting(outcome, delay, attempt + 1)
            self._note_connection(f"connection lost ({outcome}); reconnect attempt {attempt + 1} in {delay:.0f} s")
            await self._sleep(delay)
            try:
                connected = await self._connect(first=False)
            except CaptureAborted as exc:
                if exc.kind in ("offline", "not_found"):
                    return LiveSession.Status.ENDED, "the streamer is no longer live"
                return LiveSession.Status.FAILED, str(exc)
            if not connected:
                return LiveSession.Status.ENDED, self._stop_reason
            attempt = attempt + 1 if outcome != "silent" else 0

    async def _wait_for_disconnect(self) -> str:
        """Until the socket ends, goes silent, or a stop is asked: 'stop', 'silent' or the error."""
        task = self._socket_task
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
        except asyncio.CancelledError:
            # TikTokLive awaits its socket task, which a dropped connection may have had
            # cancelled: that CancelledError is the socket's, not this task's.
            if asyncio.current_task().cancelling():
                raise
            log.info("disconnect did not finish cleanly", extra={"error": "the socket task was cancelled"})
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
            await self.pipeline.stop_tasks()
            kept = self.pipeline.keep_unstored_on_disk()
            log.error(
                "pending events could not be written in 120 s; kept on disk for the next start",
                extra={"pending": self.pipeline.pending, "kept_on_disk": kept},
            )
            self.output.warning(f"{kept} events could not be stored; they are kept on disk for the next capture.")
        if self.session is not None:
            stats = self.pipeline.stats
            await self._in_writer(
                store.end_session,
                self.session.pk,
                status,
                reason,
                reconnects=self.reconnects,
                behind_max_seconds=round(stats.behind.max_ms / 1000, 3),
            )
            self.output.finished(self.session.pk, stats.total_stored, reason, stats.likes_room_total)
        if self._leftovers is not None:
            try:
                await asyncio.wait_for(self._leftovers, timeout=120)
            except TimeoutError:
                log.error("a leftover spill file could not be stored in 120 s; it stays for the next start")
        await self.batch_writer.close()
        if self.priority_writer is not None:
            await self.priority_writer.close()
        if self.recorder is not None:
            self.recorder.close()
            self.output.line(f"⏺️  Recorded {self.recorder.frames} frames to {self.recorder.path}")
        await self._in_writer(_close_database_connection)
        self.writer.shutdown(wait=True)

    def _note_connection(self, note: str) -> None:
        """The session row says why the capture is away (for the control room). Not awaited: a
        reconnect never waits for PostgreSQL; the session thread keeps the notes in order."""
        if self.session is None:
            return
        future = asyncio.ensure_future(self._in_writer(store.note_connection, self.session.pk, note))
        future.add_done_callback(_log_failed_note)

    def _on_frame(self, data: bytes, arrival: float) -> None:
        self._first_frame.set()
        if self.recorder is not None:
            self.recorder.frame(data, arrival)

    # -- helpers ----------------------------------------------------------------------------------

    async def _in_writer(self, fn, *args, **kwargs):
        # Session rows survive a PostgreSQL restart like the batches do: a new connection, again.
        return await asyncio.get_running_loop().run_in_executor(
            self.writer,
            functools.partial(
                retry_database, functools.partial(fn, *args, **kwargs), fn.__name__, give_up_after=SESSION_RETRY_SECONDS
            ),
        )

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)


def _close_database_connection() -> None:
    connection.close()  # the calling thread's own connection
