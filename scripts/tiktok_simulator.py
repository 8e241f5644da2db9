#!/usr/bin/env python
"""A local TikTok LIVE for the capture: run it, point the TikTokLive client at it.

    python scripts/tiktok_simulator.py --scenario demo --port 0
    python scripts/tiktok_simulator.py --scenario-file my_live.json --port 8765
    python scripts/tiktok_simulator.py --replay last_night.ttlive --speed 2

Scenarios: demo, flood, steady, live-load, streaks, disconnect, weird-names, malformed,
live-end, offline, not-found, rate-limit, offline-then-live, blocked, rate-limit-long
(see scripts/tiktok_sim/scenarios.py for the JSON step format of --scenario-file).
--replay plays a recording made with ``manage.py capture_tiktok_live --record FILE``
(see scripts/tiktok_sim/replay.py).

When ready it prints ONE JSON line on stdout with the URLs to configure, e.g.
``{"event": "ready", "app_url": "http://127.0.0.1:41234", "webcast_url":
"http://127.0.0.1:41234/webcast", "sign_url": "http://127.0.0.1:41234", ...}``
— ``manage.py capture_tiktok_live --simulate`` reads it, and so can you:
set TIKTOK_APP_URL, TIKTOK_WEBCAST_URL and TIKTOK_SIGN_URL to those values.
It serves until SIGINT/SIGTERM (or its parent exits, with --exit-with-parent).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import signal
import sys

from aiohttp import web
from tiktok_sim.replay import ReplayError, load_replay
from tiktok_sim.scenarios import BUILT_IN, ScenarioError, flood, live_load, load_file, steady
from tiktok_sim.server import LiveRoom, build_app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--scenario", choices=sorted(BUILT_IN), default="demo")
    source.add_argument("--scenario-file", help="JSON list of steps (see scripts/tiktok_sim/scenarios.py)")
    source.add_argument("--replay", metavar="FILE", help="play a recording (capture_tiktok_live --record FILE)")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="with --replay: recorded gaps divided by this (0: no waiting)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed in the ready line)")
    parser.add_argument("--ping-interval", type=float, default=5.0, help="heartbeat interval offered to the client")
    parser.add_argument("--flood-seconds", type=float, default=10.0)
    parser.add_argument("--flood-likes", type=int, default=2000, help="like messages per second in the flood")
    parser.add_argument("--flood-comments", type=int, default=150, help="comments per second in the flood")
    parser.add_argument("--steady-rate", type=float, default=300.0, help="messages per second of the steady scenario")
    parser.add_argument("--steady-seconds", type=float, help="the steady live ends after this long (default: never)")
    parser.add_argument(
        "--phase-seconds",
        type=float,
        default=20.0,
        help="live-load: each phase's length (idle, then --steady-rate of the demo mix, then the flood's rates)",
    )
    parser.add_argument(
        "--sent-log",
        metavar="PATH",
        help="append one line per message sent: msg_id, type, repeat_count, send time (ms since the epoch)",
    )
    parser.add_argument("--exit-with-parent", action="store_true", help="stop when the process that started it dies")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    if args.replay:
        scenario = load_replay(args.replay, args.speed)
    elif args.scenario_file:
        scenario = load_file(args.scenario_file)
    elif args.scenario == "flood":
        scenario = flood(args.flood_seconds, args.flood_likes, args.flood_comments)
    elif args.scenario == "steady":
        scenario = steady(args.steady_rate, args.steady_seconds)
    elif args.scenario == "live-load":
        scenario = live_load(args.phase_seconds, args.steady_rate, args.flood_likes, args.flood_comments)
    else:
        scenario = BUILT_IN[args.scenario]()
    # Line-buffered: a bench reads it while the live runs, and the process may be killed at the end.
    sent_log = open(args.sent_log, "a", encoding="ascii", buffering=1) if args.sent_log else None
    room = LiveRoom(
        scenario,
        room_id=7_300_000_000_000_000_000 + secrets.randbelow(10**15),
        ping_interval=args.ping_interval,
        sent_log=sent_log,
    )
    if scenario.prebuild:
        room.prebuild()
    runner = web.AppRunner(build_app(room, args.host), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # the port the OS picked for --port 0
    base = f"http://{args.host}:{port}"
    ready = {
        "event": "ready",
        "scenario": scenario.name,
        "room_id": str(room.room_id),
        "base_url": base,
        "app_url": base,
        "webcast_url": f"{base}/webcast",
        "sign_url": base,
        "status_url": f"{base}/simulator/status",
    }
    print(json.dumps(ready), flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()
    try:
        while not stop.is_set():
            if args.exit_with_parent and os.getppid() != parent:
                break
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                pass
    finally:
        await runner.cleanup()
        if sent_log is not None:
            sent_log.close()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="simulator %(levelname)s %(message)s", stream=sys.stderr)
    args = parse_args(argv)
    try:
        asyncio.run(serve(args))
    except ReplayError as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        return 2
    except ScenarioError as exc:
        print(f"simulator: bad scenario: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
