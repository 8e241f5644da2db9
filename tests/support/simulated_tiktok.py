"""A simulator the test starts itself, and captures pointed at it like at the real TikTok.

``--simulate`` hides the simulator inside the capture; these tests need to see
what the capture did to TikTok and its sign server (how many sign requests,
when, with which key), so they start the simulator, point the capture at it
with TIKTOK_APP_URL / TIKTOK_WEBCAST_URL / TIKTOK_SIGN_URL (the path a real
live takes) and read ``/simulator/status`` afterwards::

    with simulator({"steps": [...], "blocked_sockets": 2}) as tiktok:
        run = capture(vhost, tiktok, args=["--give-up-after", "3"])
        assert tiktok.status()["sign_requests"] == 3
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.support.capture import ROOT, CaptureRun
from tests.support.servers import Vhost, subprocess_env

SIMULATOR = ROOT / "scripts" / "tiktok_simulator.py"

# Retries short enough for a test; each test overrides what it is about.
FAST_RETRIES = {
    "TTE_CAPTURE_DROP_BACKOFF_SECONDS": "0.2",
    "TTE_CAPTURE_REFUSAL_BACKOFF_SECONDS": "0.5",
    "TTE_CAPTURE_LIVE_POLL_SECONDS": "1",
    "TTE_CAPTURE_LIVE_POLL_MAX_SECONDS": "2",
}


@dataclass
class Simulator:
    ready: dict[str, Any]

    def status(self) -> dict[str, Any]:
        return requests.get(self.ready["status_url"], timeout=10).json()

    @property
    def env(self) -> dict[str, str]:
        return {
            "TIKTOK_APP_URL": self.ready["app_url"],
            "TIKTOK_WEBCAST_URL": self.ready["webcast_url"],
            "TIKTOK_SIGN_URL": self.ready["sign_url"],
        }


@contextlib.contextmanager
def simulator(scenario: str | dict[str, Any], *args: str) -> Iterator[Simulator]:
    """A built-in scenario by name, or a JSON scenario object (``{"steps": [...], ...options}``)."""
    with tempfile.TemporaryDirectory(prefix="simulator-") as tmp:
        if isinstance(scenario, dict):
            path = Path(tmp) / "scenario.json"
            path.write_text(json.dumps(scenario, ensure_ascii=False), encoding="utf-8")
            source = ["--scenario-file", str(path)]
        else:
            source = ["--scenario", scenario]
        proc = subprocess.Popen(
            [sys.executable, str(SIMULATOR), *source, "--port", "0", *args], stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        try:
            yield Simulator(json.loads(proc.stdout.readline()))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            proc.stdout.close()


def capture(
    vhost: Vhost | None,
    tiktok: Simulator,
    *,
    args: list[str] | tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    timeout: float = 180,
    username: str = "simulated_streamer",
) -> CaptureRun:
    """``manage.py capture_tiktok_live`` against ``tiktok`` until it ends; its output and summary."""
    with tempfile.TemporaryDirectory(prefix="capture-") as tmp:
        summary = Path(tmp) / "summary.json"
        proc = subprocess.run(
            [
                os.environ.get("PYTHON", sys.executable),
                "manage.py",
                "capture_tiktok_live",
                "--username",
                username,
                "--summary-json",
                str(summary),
                *args,
            ],
            cwd=ROOT,
            env=subprocess_env(vhost, **{**FAST_RETRIES, **tiktok.env, **(env or {})}),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        data = json.loads(summary.read_text()) if summary.exists() else {}
    return CaptureRun(proc.returncode, proc.stdout + proc.stderr, data)
