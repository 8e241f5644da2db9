"""Child processes of the tests and benchmarks: stopping one for sure, and collecting one's output while it runs."""

from __future__ import annotations

import os
import signal
import subprocess
import threading

from tests.support import ROOT
from tests.support.waiting import wait_for


def stop(process: subprocess.Popen, timeout: float = 30.0, sig: int = signal.SIGTERM) -> None:
    """Ask ``process`` to stop with ``sig``, give it ``timeout`` s, then kill it; wait either way."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


class Output:
    """A subprocess in its own process group whose output is collected line by line while it runs."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for_text(self, needle: str, timeout: float = 120.0) -> None:
        wait_for(lambda: needle in self.text or self.proc.poll() is not None, timeout=timeout, what=needle)
        assert needle in self.text, f"{needle!r} never printed:\n{self.text[-4000:]}"

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def close(self) -> None:
        """Stop it as Ctrl+C would: a supervisor's workers run in process groups of their own,
        so SIGKILL to it alone would leave them running."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self._reader.join(timeout=5)
