"""``manage.py capture_tiktok_live``: store and dispatch every event of a TikTok LIVE."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from django.core.management.base import BaseCommand, CommandError, CommandParser

from project.app_config.config import get_config
from project.env import EnvError
from project.tiktok_events.capture.access import NO_KEY_WARNING, AccessError, TikTokAccess
from project.tiktok_events.capture.endpoints import CaptureAborted, TikTokEndpoints
from project.tiktok_events.capture.output import CaptureOutput
from project.tiktok_events.capture.simulator import SimulatorError, simulated_tiktok

if TYPE_CHECKING:
    from project.tiktok_events.capture.runner import CaptureOptions, CaptureResult

RUNNER = "project.tiktok_events.capture.runner"  # imports TikTokLive: slow, so imported late


def add_capture_arguments(parser: CommandParser) -> None:
    """Options shared with start_event_system."""
    parser.add_argument("--username", help="TikTok @handle (default: Config tiktok_user, or TIKTOK_USER)")
    parser.add_argument("--session-name", default="", help="a name for this LiveSession")
    parser.add_argument(
        "--simulate",
        metavar="SCENARIO",
        help="capture from the local TikTok simulator: demo, flood, steady, live-load, streaks, disconnect, "
        "weird-names, malformed, live-end, offline, not-found, rate-limit, offline-then-live, blocked, "
        "rate-limit-long, a scenario .json file, or a recording made with --record (.ttlive)",
    )
    parser.add_argument(
        "--record",
        metavar="FILE",
        help="write every frame TikTok sends, as received, to FILE; play it back with --simulate FILE",
    )
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="stop at once if the streamer is not live (default: wait for the LIVE to start)",
    )
    parser.add_argument(
        "--offline-grace",
        type=float,
        default=180.0,
        metavar="SECONDS",
        help="during a reconnect, how long the LIVE may read offline before the session ends (default 180)",
    )
    parser.add_argument(
        "--give-up-after",
        type=int,
        metavar="N",
        help="refused connections in a row before giving up with an error (default 5, or TTE_CAPTURE_GIVE_UP_AFTER)",
    )
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--streak-timeout", type=float, default=10.0, help="close a gift streak silent this long (s)")
    parser.add_argument("--silence-timeout", type=float, default=60.0, help="reconnect a socket silent this long (s)")
    parser.add_argument("--summary-json", help="write the run's counts and latencies to this file")
    parser.add_argument(
        "--simulator-arg",
        action="append",
        default=[],
        help="extra argument for the simulator (repeatable), e.g. --simulator-arg=--flood-seconds=5",
    )


def resolve_username(given: str | None, simulate: str | None) -> str:
    username = (given or get_config("tiktok_user") or "").strip().lstrip("@")
    if not username and simulate:
        return "simulated_streamer"
    if not username:
        raise CommandError(
            "No TikTok username: pass --username NAME, or set tiktok_user in the admin (Config), "
            "or the TIKTOK_USER environment variable."
        )
    return username


def capture_access(output: CaptureOutput, *, simulated: bool) -> TikTokAccess:
    """The access settings (Config, then environment), checked; what they change is said at start."""
    try:
        access = TikTokAccess.from_config()
    except AccessError as exc:
        raise CommandError(f"❌ {exc}") from exc
    if not access.sign_api_key and not simulated:
        output.warning(NO_KEY_WARNING)
    for line in access.summary():
        output.line(f"🔐 {line}")
    return access


def capture_options(options: dict, endpoints: TikTokEndpoints, username: str, access: TikTokAccess) -> CaptureOptions:
    from project.tiktok_events.capture.retry import RetryPolicy
    from project.tiktok_events.capture.runner import CaptureOptions

    if options["give_up_after"] is not None and options["give_up_after"] < 1:
        raise CommandError("--give-up-after must be at least 1")
    try:
        access.check_session_host(endpoints.sign_url)
        retry = RetryPolicy.from_env(offline_grace=options["offline_grace"], give_up_after=options["give_up_after"])
    except (AccessError, EnvError) as exc:
        raise CommandError(f"❌ {exc}") from exc
    return CaptureOptions(
        username=username,
        session_name=options["session_name"],
        endpoints=endpoints,
        access=access,
        retry=retry,
        wait_for_live=not options["no_wait"],
        streak_timeout=options["streak_timeout"],
        silence_timeout=options["silence_timeout"],
        duration=options["duration"],
        record_path=options["record"],
    )


def build_runner(options: dict, endpoints: TikTokEndpoints, username: str, access: TikTokAccess, output):
    from project.tiktok_events.capture.runner import CaptureRunner

    try:
        return CaptureRunner(capture_options(options, endpoints, username, access), output)
    except OSError as exc:  # the --record file (the only file a runner opens)
        raise CommandError(f"❌ Cannot write the recording {options['record']}: {exc.strerror or exc}") from exc


def _while_the_simulator_starts() -> None:
    """The writer process (Django, the database, the broker) and TikTokLive's protobufs load for
    seconds each, like the simulator: all three at once."""
    from project.tiktok_events.capture import writer

    writer.prestart()
    importlib.import_module(RUNNER)


@contextlib.contextmanager
def endpoints_for(options: dict, output: CaptureOutput):
    if not options["simulate"]:
        from project.tiktok_events.capture import writer

        writer.prestart()  # it loads while this process imports TikTokLive (build_runner)
        yield TikTokEndpoints.from_settings()
        return
    extra = [arg for item in options["simulator_arg"] for arg in item.split("=", 1)] if options["simulator_arg"] else []
    output.line(f"🧪 Simulated TikTok LIVE: scenario {options['simulate']}")
    try:
        with simulated_tiktok(options["simulate"], extra, while_starting=_while_the_simulator_starts) as (
            endpoints,
            _ready,
        ):
            yield endpoints
    except SimulatorError as exc:
        raise CommandError(f"Could not start the TikTok simulator: {exc}") from exc


def quick_exit(code: int | str | None) -> NoReturn:
    """``sys.exit(code)`` without the interpreter's teardown: logs and output are flushed, then
    the process ends. A writer process still running (the run stopped before it began) sees
    its parent gone and leaves too."""
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def write_summary(path: str, result: CaptureResult, extra: dict | None = None) -> None:
    summary = {
        "session_id": result.session_id,
        "status": result.status,
        "reason": result.reason,
        "reconnects": result.reconnects,
        **result.stats,
        **(extra or {}),
    }
    Path(path).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


class Command(BaseCommand):
    help = (
        "Connect to a streamer's TikTok LIVE, store every event as a LiveEvent and dispatch it to the "
        "subscribed services. One LiveSession per run; ends with the live, Ctrl+C or SIGTERM."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_capture_arguments(parser)
        parser.add_argument("--quiet", action="store_true", help="no line per event, only status lines")

    def run_from_argv(self, argv):
        """As Django runs a command, then out without tearing the interpreter down: freeing
        TikTokLive's thousands of protobuf classes took 1.4 s of every run, and by then the
        capture has closed its session, its writer and its connections."""
        from project.tiktok_events.capture import writer

        try:
            super().run_from_argv(argv)
        except SystemExit as exc:
            writer.discard_prestarted()
            quick_exit(exc.code)
        quick_exit(0)

    def handle(self, *args, **options):
        username = resolve_username(options["username"], options["simulate"])
        output = CaptureOutput(self.stdout, events=not options["quiet"])
        access = capture_access(output, simulated=bool(options["simulate"]))
        with endpoints_for(options, output) as endpoints:
            runner = build_runner(options, endpoints, username, access, output)
            try:
                result = asyncio.run(runner.run())
            except CaptureAborted as exc:
                raise CommandError(f"❌ {exc}") from exc
        if options["summary_json"]:
            write_summary(options["summary_json"], result)
