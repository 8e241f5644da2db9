#!/usr/bin/env python
"""Capture throughput: the simulator's flood, through the real TikTokLive client,
into PostgreSQL and two subscribed services on RabbitMQ.

    .venv/bin/python scripts/bench/capture.py [--seconds 10] [--likes 2000] [--comments 150]

It uses its own database (``<DATABASE_URL name>_bench``) and a throw-away
RabbitMQ vhost, starts the simulator with the flood scenario, points
``capture_tiktok_live`` at it (TIKTOK_*_URL, as for any server), and when the
live ends compares what the simulator sent with what was stored and
confirmed. No workers run: an item counts once the broker confirmed it.

The last line printed is one JSON object:
  events_per_s    events stored with every QueueItem confirmed, per second
                  (first event received → last batch confirmed)
  capture_p99_ms  99th percentile, frame sent by the simulator → its QueueItems confirmed
  capture_p50_ms  the median of the same
  offered_per_s   messages per second the simulator sent
  lost            messages sent but not stored + QueueItems not confirmed (must be 0)
  store_p50_ms/store_p99_ms/store_max_ms
                  per batch, in the writer process: its PostgreSQL transaction (rows,
                  QueueItems, commit); a commit waiting on a slow disk flush shows here
  confirm_p50_ms/confirm_p99_ms/confirm_max_ms
                  per batch: publishing its QueueItems until RabbitMQ confirmed them all
  broker_ceiling_events_per_s
                  measured first: two-service flood events/s RabbitMQ alone takes right
                  now (broker_ceiling.py's flood mix), the machine's speed for this run
  machine         python_loop_ms, pipe_round_trip_us, cpu_steal_pct (bench_setup.MachineGauge)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

from bench_setup import MachineGauge, log, use_bench_database  # noqa: E402 - after the path set-up
from broker_ceiling import flood_events_per_s  # noqa: E402

from tests.support.servers import create_vhost, delete_vhost  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the flood")
    parser.add_argument("--likes", type=int, default=2000, help="like messages per second")
    parser.add_argument("--comments", type=int, default=150, help="comments per second")
    args = parser.parse_args()

    use_bench_database("bench")
    gauge = MachineGauge()
    ceiling = flood_events_per_s()
    import requests
    from django.core.management import call_command

    from project.queue_system.models import QueueItem, Service, ServiceEventConfig
    from project.queue_system.seed_data import DINOCHROME_EVENTS, OVERLAYS_EVENTS
    from project.tiktok_events.models import LiveEvent, LiveSession

    call_command("migrate", verbosity=0)
    # The bench's own database: emptied at once (a DELETE of the last run's rows left dead
    # tuples whose vacuuming then ran during the flood).
    from django.db import connection

    tables = [m._meta.db_table for m in (QueueItem, LiveEvent, LiveSession, ServiceEventConfig, Service)]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    for slug, mode, concurrency, table in (
        ("bench-sync", "SYNC", 1, DINOCHROME_EVENTS),
        ("bench-async", "ASYNC", 8, OVERLAYS_EVENTS),
    ):
        service = Service.objects.create(
            name=slug,
            slug=slug,
            service_class="project.services.overlays.services.OverlaysService",
            mode=mode,
            concurrency=concurrency,
            max_queue_size=100,
        )
        for event_type, priority, discardable in table:
            ServiceEventConfig.objects.create(
                service=service, event_type=event_type, priority=priority, discardable=discardable
            )

    vhost = create_vhost("capture-bench")
    broker_url = vhost.broker_url
    env = dict(os.environ, CELERY_BROKER_URL=broker_url, PYTHONUNBUFFERED="1")

    log(f"building the flood: {args.seconds:g} s of {args.likes} likes/s + {args.comments} comments/s ...")
    simulator = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "scripts" / "tiktok_simulator.py"),
            "--scenario=flood",
            f"--flood-seconds={args.seconds}",
            f"--flood-likes={args.likes}",
            f"--flood-comments={args.comments}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ready = json.loads(simulator.stdout.readline())
        env.update(
            TIKTOK_APP_URL=ready["app_url"], TIKTOK_WEBCAST_URL=ready["webcast_url"], TIKTOK_SIGN_URL=ready["sign_url"]
        )
        with tempfile.TemporaryDirectory() as tmp:
            summary_path = Path(tmp) / "summary.json"
            log("capturing ...")
            started = time.monotonic()
            subprocess.run(
                [
                    sys.executable,
                    "manage.py",
                    "capture_tiktok_live",
                    "--username",
                    "bench",
                    "--quiet",
                    "--summary-json",
                    str(summary_path),
                ],
                cwd=ROOT,
                env=env,
                check=True,
                timeout=600,
            )
            log(f"capture finished in {time.monotonic() - started:.1f} s")
            summary = json.loads(summary_path.read_text())
        status = requests.get(ready["status_url"], timeout=10).json()
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)
        delete_vhost(vhost)

    session_id = summary["session_id"]
    sent = status["unique_messages_sent"]
    stored = LiveEvent.objects.filter(session_id=session_id).count()
    subscribed: dict[str, int] = {}
    for event_type in ServiceEventConfig.objects.filter(enabled=True).values_list("event_type", flat=True):
        subscribed[event_type] = subscribed.get(event_type, 0) + 1
    expected_items = sum(
        subscribed.get(event_type, 0)
        for event_type in LiveEvent.objects.filter(session_id=session_id).values_list("event_type", flat=True)
    )
    confirmed_items = QueueItem.objects.filter(live_event__session_id=session_id, dispatched_at__isnull=False).count()
    lost = max(0, sent - stored) + max(0, expected_items - confirmed_items)
    latency = summary.get("frame_to_confirm_ms") or {}
    log(f"sent {sent} messages, stored {stored} events, {confirmed_items}/{expected_items} items confirmed")
    log(f"capture summary: {json.dumps(summary)}")
    result = {
        "events_per_s": summary.get("events_per_s"),
        "capture_p99_ms": latency.get("p99"),
        "capture_p50_ms": latency.get("p50"),
        "offered_per_s": round(sent / args.seconds, 1),
        "events": stored,
        "lost": lost,
        **stage_figures("store", summary.get("store_ms")),
        **stage_figures("confirm", summary.get("confirm_ms")),
        "broker_ceiling_events_per_s": ceiling,
        "machine": gauge.figures(),
    }
    print(json.dumps(result))
    return 0 if lost == 0 else 1


def stage_figures(name: str, figures: dict | None) -> dict:
    figures = figures or {}
    return {f"{name}_{key}_ms": figures.get(key) for key in ("p50", "p99", "max")}


if __name__ == "__main__":
    sys.exit(main())
