"""A capture of a simulated live that a fault test can break in the middle.

Unlike ``tests.support.capture.run_capture`` (which lets ``--simulate`` start
the simulator inside the capture), the simulator runs here as a process of its
own, so the test can ask it what it sent (``/simulator/status``) and compare
that with what was stored::

    with simulated_live(seconds=30, likes=100, comments=20) as live:
        capture = CaptureProcess.start(vhost, live)
        wait_for(lambda: LiveEvent.objects.count() > 200, ...)
        with postgres_stopped():
            time.sleep(8)
        run = capture.wait()
        sent = live.sent()
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.capture import ROOT, CaptureRun
from tests.support.processes import stop
from tests.support.servers import Vhost, subprocess_env
from tests.support.simulated_tiktok import Simulator


class SimulatedLive(Simulator):
    def sent(self) -> int:
        """Distinct messages the simulator sent (the live's end included)."""
        return self.status()["unique_messages_sent"]


@contextlib.contextmanager
def simulated_live(*, seconds: float, likes: int, comments: int) -> Iterator[SimulatedLive]:
    """The simulator's flood scenario at a steady rate (a gift every 0.5 s, a follow every
    second, ``likes`` and ``comments`` per second) for ``seconds``, then the live's end."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "scripts" / "tiktok_simulator.py"),
            "--scenario=flood",
            f"--flood-seconds={seconds}",
            f"--flood-likes={likes}",
            f"--flood-comments={comments}",
            "--exit-with-parent",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        yield SimulatedLive(ready)
    finally:
        stop(proc, timeout=10)


@dataclass
class CaptureProcess:
    proc: subprocess.Popen
    tmp: tempfile.TemporaryDirectory
    summary_path: Path
    output: list[str] = field(default_factory=list)

    @classmethod
    def start(
        cls, vhost: Vhost, live: SimulatedLive, *, env: dict[str, str] | None = None, args: list[str] | None = None
    ) -> CaptureProcess:
        tmp = tempfile.TemporaryDirectory(prefix="capture-fault-")
        summary = Path(tmp.name) / "summary.json"
        proc = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "capture_tiktok_live",
                "--username",
                "simulated_streamer",
                "--quiet",
                "--summary-json",
                str(summary),
                *(args or []),
            ],
            cwd=ROOT,
            env=subprocess_env(vhost, **live.env, **(env or {})),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        return cls(proc, tmp, summary)

    def wait(self, timeout: float = 300) -> CaptureRun:
        try:
            output, _ = self.proc.communicate(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        summary = json.loads(self.summary_path.read_text()) if self.summary_path.exists() else {}
        self.tmp.cleanup()
        return CaptureRun(self.proc.returncode, output, summary)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.tmp.cleanup()
