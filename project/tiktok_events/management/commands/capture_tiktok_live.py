"""``manage.py capture_tiktok_live``: store and dispatch every event of a TikTok LIVE."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from django.core.management.base import BaseCommand, CommandError, CommandParser

from project.app_config.config import get_config
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
        help="capture from the local TikTok simulator: demo, flood, streaks, disconnect, weird-names, malformed, "
        "live-end, offline, not-found, rate-limit, or a scenario .json file",
    )
    parser.add_argument(
        "--record",
        metavar="FILE",
        help="write every frame TikTok sends, as received, to FILE; play it back with --simulate FILE",
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


def capture_options(options: dict, endpoints: TikTokEndpoints, username: str) -> CaptureOptions:
    from project.tiktok_events.capture.runner import CaptureOptions

    return CaptureOptions(
        username=username,
        session_name=options["session_name"],
        endpoints=endpoints,
        streak_timeout=options["streak_timeout"],
        silence_timeout=options["silence_timeout"],
        duration=options["duration"],
        record_path=options["record"],
    )


@contextlib.contextmanager
def endpoints_for(options: dict, output: CaptureOutput):
    if not options["simulate"]:
        yield TikTokEndpoints.from_settings()
        return
    extra = [arg for item in options["simulator_arg"] for arg in item.split("=", 1)] if options["simulator_arg"] else []
    output.line(f"🧪 Simulated TikTok LIVE: scenario {options['simulate']}")
    try:
        with simulated_tiktok(options["simulate"], extra, while_starting=lambda: importlib.import_module(RUNNER)) as (
            endpoints,
            _ready,
        ):
            yield endpoints
    except SimulatorError as exc:
        raise CommandError(f"Could not start the TikTok simulator: {exc}") from exc


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

    def handle(self, *args, **options):
        username = resolve_username(options["username"], options["simulate"])
        output = CaptureOutput(self.stdout, events=not options["quiet"])
        with endpoints_for(options, output) as endpoints:
            from project.tiktok_events.capture.runner import CaptureRunner

            runner = CaptureRunner(capture_options(options, endpoints, username), output)
            try:
                result = asyncio.run(runner.run())
            except CaptureAborted as exc:
                raise CommandError(f"❌ {exc}") from exc
        if options["summary_json"]:
            write_summary(options["summary_json"], result)
