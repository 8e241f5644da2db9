"""Benchmark: how fast an overlay card gets from Redis onto the OBS page.

Starts the web server as in production (gunicorn, gthread workers) on a free port,
opens /overlays/ in headless Chromium, publishes cards to a stream of its own and reads,
for each card, when the page put it on screen (the page's clock) against the card's
stream id (Redis' clock; same machine). Prints one JSON line of figures, last.

    .venv/bin/python scripts/bench/overlays_latency.py [--cards 200] [--rate 40]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from project.services.dinochrome.chrome import start_chromium  # noqa: E402
from project.services.overlays.stream import id_millis, publish_card, publisher  # noqa: E402
from tests.support.figures import percentile  # noqa: E402


def start_gunicorn(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, int]:
    out = log.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "project.wsgi:application", "--bind", "127.0.0.1:0",
         "--worker-class", "gthread", "--threads", "8", "--workers", "1", "--no-control-socket"],
        cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        match = re.search(r"Listening at: http://127.0.0.1:(\d+)", log.read_text())
        if match:
            return proc, int(match.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"gunicorn did not start:\n{log.read_text()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=200, help="cards published one by one")
    parser.add_argument("--rate", type=float, default=40.0, help="cards per second")
    parser.add_argument("--burst", type=int, default=8, help="cards published at once at the end")
    args = parser.parse_args()

    stream = f"overlays:bench:{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "OVERLAYS_STREAM": stream, "OVERLAYS_SSE_HEARTBEAT": "2", "PYTHONUNBUFFERED": "1"}
    settings.OVERLAYS_STREAM = stream
    with tempfile.TemporaryDirectory(prefix="bench-overlays-") as tmp:
        server, port = start_gunicorn(env, Path(tmp) / "gunicorn.log")
        browser = None
        try:
            browser = start_chromium(headless=True, window_size=(1920, 1080))
            driver = browser.driver
            driver.get(f"http://127.0.0.1:{port}/overlays/")
            deadline = time.monotonic() + 60
            while not driver.execute_script("return !!(window.overlays && window.overlays.connected())"):
                if time.monotonic() > deadline:
                    raise SystemExit("the overlay page did not connect")
                time.sleep(0.1)
            ids: dict[str, str] = {}
            for n in range(args.cards):
                card_id = f"b{n}"
                ids[card_id] = publish_card(
                    {"id": card_id, "type": "like", "nickname": f"viewer {n}", "text": "bench", "duration_ms": 1500}
                )
                time.sleep(1 / args.rate)
            for n in range(args.burst):
                card_id = f"burst{n}"
                ids[card_id] = publish_card(
                    {"id": card_id, "type": "gift", "nickname": f"fan {n}", "text": "burst", "duration_ms": 1500}
                )
            deadline = time.monotonic() + 30
            while True:
                shown = {e["id"]: e["shownAt"] for e in driver.execute_script("return window.overlays.history()")}
                if len(shown.keys() & ids.keys()) == len(ids) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        finally:
            if browser is not None:
                browser.quit()
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
            publisher().delete(stream)

    latencies = [shown[c] - id_millis(ids[c]) for c in ids if c in shown]
    burst = [shown[c] - id_millis(ids[c]) for c in ids if c.startswith("burst") and c in shown]
    print(
        json.dumps(
            {
                "bench": "overlays_latency",
                "server": "gunicorn gthread",
                "cards": len(ids),
                "shown": len(latencies),
                "missing": len(ids) - len(latencies),
                "p50_ms": statistics.median(latencies) if latencies else None,
                "p95_ms": percentile(latencies, 0.95) if latencies else None,
                "max_ms": max(latencies) if latencies else None,
                "burst_of": args.burst,
                "burst_max_ms": max(burst) if burst else None,
            }
        )
    )


if __name__ == "__main__":
    main()
