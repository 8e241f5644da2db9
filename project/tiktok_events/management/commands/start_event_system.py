"""``manage.py start_event_system``: the service workers, the capture and the dashboard in one command."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import signal
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count, Q

from project.moderation.counts import ModerationCounts
from project.queue_system.infrastructure import DB_ERRORS, drop_connection, retry_database
from project.queue_system.models import QueueItem
from project.tiktok_events.capture import store
from project.tiktok_events.capture.endpoints import CaptureAborted
from project.tiktok_events.capture.output import CaptureOutput
from project.tiktok_events.dashboard import LINE, Dashboard, DashboardData, LikeTotals, LockedStream, ServiceRow
from project.tiktok_events.management.commands.capture_tiktok_live import (
    add_capture_arguments,
    build_runner,
    capture_access,
    endpoints_for,
    resolve_username,
)

UNFINISHED = (QueueItem.Status.PENDING, QueueItem.Status.PROCESSING)


class Command(BaseCommand):
    help = (
        "Start the worker of every active service, then capture the streamer's TikTok LIVE; print statistics "
        "every 30 s; Ctrl+C ends the session, lets the workers finish what was dispatched and stops them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_capture_arguments(parser)
        parser.add_argument("--verbose", action="store_true", help="every log line of the workers")
        parser.add_argument("--quiet", action="store_true", help="no line per captured event")
        parser.add_argument("--stats-interval", type=float, default=30.0, metavar="SECONDS")
        parser.add_argument(
            "--drain-timeout",
            type=float,
            default=120.0,
            metavar="SECONDS",
            help="after the capture ends, how long the workers may take to finish the dispatched items",
        )

    def handle(self, *args, **options):
        from workers.supervisor import DISCARDS, WorkerSupervisor

        username = resolve_username(options["username"], options["simulate"])
        out = LockedStream(getattr(self.stdout, "_out", self.stdout))
        say = CaptureOutput(out, events=not options["quiet"])
        self.started = time.monotonic()
        self.discards_name = DISCARDS
        access = capture_access(say, simulated=bool(options["simulate"]))  # a wrong setting stops before the workers
        self._header(say, username)

        supervisor = WorkerSupervisor(verbose=options["verbose"], stdout=out)
        self._start_workers(say, supervisor)
        dashboard = Dashboard(out)
        result = runner = None
        try:
            say.line(f"\n{LINE}\n📡 STARTING TIKTOK LIVE CAPTURE\n{LINE}\n")
            with endpoints_for(options, say) as endpoints:
                runner = build_runner(options, endpoints, username, access, say)
                result = asyncio.run(self._run(runner, supervisor, dashboard, say, options))
        except CaptureAborted as exc:
            raise CommandError(f"❌ {exc}") from exc
        finally:
            dashboard.close()
            say.line("🛑 Stopping the workers...")
            supervisor.stop()
            say.line(f"👋 {sum(1 for name in supervisor.processes if name != DISCARDS)} worker(s) stopped")
        if options["summary_json"] and runner is not None and result is not None:
            self._write_summary(options["summary_json"], result)

    # -- phases -------------------------------------------------------------------------------------

    def _header(self, say: CaptureOutput, username: str) -> None:
        say.line(f"{LINE}\n🚀 TIKTOK EVENT SYSTEM - START\n{LINE}\n")
        say.line(f"📺 Streamer: @{username}")
        say.line(f"🕐 Start time: {dt.datetime.now():%Y-%m-%d %H:%M:%S}")

    def _start_workers(self, say: CaptureOutput, supervisor) -> None:
        say.line(f"\n{LINE}\n📦 STARTING SERVICE WORKERS\n{LINE}\n")
        planned = supervisor.services()
        if not planned:
            say.warning("No active service: events are stored but nothing processes them (activate one in the admin).")
            return
        supervisor.start()
        for service in planned:
            say.line(f"🔧 Starting worker: {service.name}")
        not_ready = supervisor.wait_ready(timeout=120)
        for service in planned:
            if service.slug in not_ready:
                say.warning(f"{service.name}: not consuming yet (see its errors above)")
            else:
                say.line(f"  ✅ Worker active (max queue: {service.max_queue_size})")
        say.line(f"\n✅ {len(planned) - len(not_ready)} worker(s) started")

    async def _run(self, runner, supervisor, dashboard, say: CaptureOutput, options):
        say.line(f"{LINE}\n📊 SYSTEM ACTIVE - live monitoring\n{LINE}\n")
        say.line("💡 Press Ctrl+C to stop the system")
        say.line(f"📊 Statistics every {options['stats_interval']:g} seconds...\n")
        monitor = asyncio.create_task(self._monitor(runner, supervisor, dashboard, options["stats_interval"]))
        try:
            result = await runner.run()
            await self._drain(runner, supervisor, say, options["drain_timeout"])
            await asyncio.to_thread(self._show, runner, supervisor, dashboard)
            return result
        finally:
            monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await monitor

    async def _monitor(self, runner, supervisor, dashboard, interval: float) -> None:
        next_stats = time.monotonic() + interval
        while True:
            await asyncio.sleep(1.0)
            await asyncio.to_thread(supervisor.check)
            if time.monotonic() >= next_stats:
                next_stats = time.monotonic() + interval
                await asyncio.to_thread(self._show, runner, supervisor, dashboard)

    def _show(self, runner, supervisor, dashboard) -> None:
        note = ""
        try:
            stats = supervisor.stats() if supervisor.processes else []
        except Exception as exc:  # a database or broker restart must not stop the system
            stats, note = [], f"⚠️  statistics unavailable: {exc}"
        rows = [
            ServiceRow(
                name=entry.name,
                worker_up=bool(supervisor.processes.get(entry.slug) and supervisor.processes[entry.slug].alive),
                pending=entry.pending,
                processing=entry.processing,
                async_threads=entry.busy_threads,
            )
            for entry in stats
        ]
        data = DashboardData(
            uptime_seconds=time.monotonic() - self.started,
            session_id=runner.session_id,
            events_captured=runner.pipeline.stats.total_stored,
            services=rows,
            note=note,
            likes=LikeTotals.of(runner.pipeline.stats),
            moderation=_moderation_counts(runner.session_id),
        )
        behind = runner.pipeline.stats.behind
        if behind.behind:
            data.behind_seconds = behind.last_s
        dashboard.show(data)

    async def _drain(self, runner, supervisor, say: CaptureOutput, timeout: float) -> None:
        """Let the workers finish this session's items; a second Ctrl+C (or SIGTERM) skips the wait."""
        if runner.session_id is None or not supervisor.processes:
            return
        skip = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, skip.set)
        unfinished = await asyncio.to_thread(_unfinished, runner.session_id)
        if unfinished != 0:
            count = "the" if unfinished is None else str(unfinished)
            say.line(f"⏳ Waiting for the workers to finish {count} dispatched item(s) (Ctrl+C to skip)...")
        deadline = time.monotonic() + timeout
        while unfinished != 0 and not skip.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(skip.wait(), timeout=0.5)
            unfinished = await asyncio.to_thread(_unfinished, runner.session_id)
        if unfinished is None:
            say.warning("the database did not answer: the items left stay queued and run when the workers start again.")
        elif unfinished:
            say.warning(f"{unfinished} item(s) still waiting: they stay queued and run when the workers start again.")

    def _write_summary(self, path: str, result) -> None:
        summary = {
            "session_id": result.session_id,
            "status": result.status,
            "reason": result.reason,
            "reconnects": result.reconnects,
            "events_captured": (
                retry_database(lambda: store.session_counts(result.session_id), "count the events for the summary", {})
                if result.session_id
                else {}
            ),
            "services": (
                retry_database(lambda: _service_counts(result.session_id), "count the items for the summary", {})
                if result.session_id
                else {}
            ),
            "capture": result.stats,
        }
        Path(path).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _moderation_counts(session_id: int | None) -> ModerationCounts | None:
    if session_id is None:
        return None
    try:
        return ModerationCounts.for_session(session_id)
    except DB_ERRORS:
        drop_connection()  # a database restart must not stop the dashboard; the next count reconnects
        return None


def _unfinished(session_id: int) -> int | None:
    """Items of the session still to run; None while the database cannot tell (a restart: keep waiting)."""
    try:
        return QueueItem.objects.filter(live_event__session_id=session_id, status__in=UNFINISHED).count()
    except DB_ERRORS:
        drop_connection()  # the next count opens a new one
        return None


def _service_counts(session_id: int) -> dict[str, dict[str, int]]:
    Status = QueueItem.Status
    rows = (
        QueueItem.objects.filter(live_event__session_id=session_id)
        .values("service__slug")
        .annotate(
            completed=Count("id", filter=Q(status=Status.COMPLETED)),
            failed=Count("id", filter=Q(status=Status.FAILED)),
            discarded=Count("id", filter=Q(status=Status.DISCARDED)),
            pending=Count("id", filter=Q(status=Status.PENDING)),
            processing=Count("id", filter=Q(status=Status.PROCESSING)),
        )
    )
    return {row.pop("service__slug"): row for row in rows}
