"""``--simulate``: run the capture against the local TikTok LIVE simulator.

The simulator is a fake (``scripts/tiktok_simulator.py``); product code never
imports it. ``--simulate`` starts it as a separate process, reads the URLs it
prints when ready and hands them to the client as ordinary endpoint settings —
the same path as pointing TIKTOK_APP_URL / TIKTOK_WEBCAST_URL /
TIKTOK_SIGN_URL at any other server. The process is stopped on exit.
A recording (``--record FILE``, see ``recording``) is played with ``--replay``.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from django.conf import settings

from project.tiktok_events.capture import recording
from project.tiktok_events.capture.endpoints import TikTokEndpoints

SIMULATOR = Path(settings.BASE_DIR) / "scripts" / "tiktok_simulator.py"
READY_TIMEOUT = 180.0  # the flood scenario serializes its frames before it is ready


class SimulatorError(RuntimeError):
    pass


def simulator_command(scenario: str, extra: list[str] | None = None) -> list[str]:
    if scenario.endswith(recording.EXTENSION) or recording.is_recording(scenario):
        source = ["--replay", scenario]  # the simulator says it if the file is not a recording after all
    elif scenario.endswith(".json"):
        source = ["--scenario-file", scenario]
    else:
        source = ["--scenario", scenario]
    return [sys.executable, str(SIMULATOR), *source, "--port", "0", "--exit-with-parent", *(extra or [])]


@contextlib.contextmanager
def simulated_tiktok(
    scenario: str, extra: list[str] | None = None, *, while_starting: Callable[[], object] | None = None
) -> Iterator[tuple[TikTokEndpoints, dict]]:
    """Start the simulator; yield (endpoints for the client, its ready line); stop it.

    ``while_starting`` runs while the simulator boots (both import TikTokLive,
    which takes seconds: done in parallel, on two cores).
    """
    if not SIMULATOR.is_file():
        raise SimulatorError(f"{SIMULATOR} is missing: --simulate needs the repository's scripts/ directory")
    proc = subprocess.Popen(simulator_command(scenario, extra), stdout=subprocess.PIPE, text=True)
    try:
        if while_starting is not None:
            while_starting()
        ready = _read_ready_line(proc)
        endpoints = TikTokEndpoints(ready["app_url"], ready["webcast_url"], ready["sign_url"])
        yield endpoints, ready
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def _read_ready_line(proc: subprocess.Popen) -> dict:
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + READY_TIMEOUT
    try:
        while time.monotonic() < deadline:
            if not selector.select(timeout=0.5):
                if proc.poll() is not None:
                    raise SimulatorError(f"the simulator exited with code {proc.returncode} (see its messages above)")
                continue
            line = proc.stdout.readline()
            if not line:
                raise SimulatorError(f"the simulator exited with code {proc.wait()} before it was ready")
            with contextlib.suppress(json.JSONDecodeError):
                message = json.loads(line)
                if message.get("event") == "ready":
                    return message
    finally:
        selector.close()
    raise SimulatorError(f"the simulator was not ready after {READY_TIMEOUT:.0f} s")
