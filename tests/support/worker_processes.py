"""Running real service workers from a test: ``running_workers(vhost, slugs)``.

Each worker is ``python -m workers <slug>`` (the production launcher) in its own
process group, pointed at the test database and the test's vhost through
``tests.support.servers.subprocess_env``, with its output in a log file. The context
manager returns once every worker consumes its queue, and stops (or kills)
them all on exit.

    with running_workers(vhost, ["dinochrome"]) as workers:
        ...
        workers.log("dinochrome")       # everything the worker printed
        workers.kill("dinochrome")      # SIGKILL the whole worker
        workers.start("dinochrome")     # start it again and wait until it consumes

With ``discards=True`` the discard accounting process runs beside them, started
with the supervisor's own command line (``manage.py consume_discarded``) under
the name ``DISCARDS``; it is ready once it consumes ``events.discarded``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import amqp

from project.queue_system.queues import DISCARDED_QUEUE
from tests.support import ROOT
from tests.support.servers import Vhost, subprocess_env
from workers.supervisor import DISCARDS, discards_argv

READY_TIMEOUT = 90.0


class WorkerProcesses:
    def __init__(
        self,
        vhost: Vhost,
        extra_env: dict[str, str] | None,
        logdir: Path,
        worker_args: dict[str, list[str]] | None = None,
    ) -> None:
        self.vhost = vhost
        self.extra_env = dict(extra_env or {})
        self.worker_args = dict(worker_args or {})
        self.logdir = logdir
        self.procs: dict[str, subprocess.Popen] = {}
        self._logs: dict[str, Path] = {}
        self._suffix = uuid.uuid4().hex[:6]

    def start(self, slug: str, *, wait: bool = True) -> subprocess.Popen:
        """Start ``python -m workers <slug>`` (or, for ``DISCARDS``, the discard accounting)."""
        log = self.logdir / f"{slug}.log"
        self._logs[slug] = log
        env = subprocess_env(self.vhost, **self.extra_env)
        env.setdefault("TTE_DRAIN_WATCHDOG_SECONDS", "30")
        if slug == DISCARDS:
            argv = discards_argv()
        else:
            argv = [os.environ.get("PYTHON", _python()), "-m", "workers", slug, "--node-suffix", self._suffix]
            argv += self.worker_args.get(slug, [])
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[slug] = proc
        if wait:
            self.wait_ready(slug)
        return proc

    def wait_ready(self, slug: str, timeout: float = READY_TIMEOUT) -> None:
        """Until the worker's queue has a consumer (Celery consumes only once it is ready)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[slug]
            if proc.poll() is not None:
                raise RuntimeError(f"worker {slug} exited with {proc.returncode}:\n{self.log(slug)[-4000:]}")
            if consumers(self.vhost, DISCARDED_QUEUE if slug == DISCARDS else f"svc.{slug}") > 0:
                return
            time.sleep(0.2)
        raise TimeoutError(f"worker {slug} not consuming after {timeout:.0f} s:\n{self.log(slug)[-4000:]}")

    def log(self, slug: str) -> str:
        path = self._logs.get(slug)
        return path.read_text(errors="replace") if path and path.exists() else ""

    def children(self, slug: str) -> list[int]:
        """Pids of the worker's child processes (a SYNC worker's prefork child runs the handler)."""
        out = subprocess.run(["pgrep", "-P", str(self.procs[slug].pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def kill(self, slug: str, sig: int = signal.SIGKILL) -> None:
        """Signal the worker's whole process group and wait for its leader."""
        proc = self.procs[slug]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(timeout=60)

    def stop(self, slug: str, timeout: float = 60.0) -> int:
        """SIGTERM (Celery's warm shutdown) and wait; SIGKILL after ``timeout``."""
        proc = self.procs[slug]
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill(slug)
        # Leftover children of the group (never expected) go too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.returncode

    def stop_all(self) -> None:
        for slug in list(self.procs):
            self.stop(slug)


def _python() -> str:
    import sys

    return sys.executable


def consumers(vhost: Vhost, queue: str) -> int:
    conn = amqp.Connection(**_amqp_params(vhost))
    try:
        conn.connect()
        channel = conn.channel()
        try:
            _, _, count = channel.queue_declare(queue, passive=True)
        except amqp.exceptions.NotFound:
            return 0
        return count
    except OSError:
        return 0
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def _amqp_params(vhost: Vhost) -> dict:
    from kombu import Connection

    info = Connection(vhost.broker_url).info()
    return {
        "host": f"{info['hostname']}:{info['port']}",
        "userid": info["userid"],
        "password": info["password"],
        "virtual_host": info["virtual_host"],
    }


@contextlib.contextmanager
def running_workers(
    vhost: Vhost,
    slugs: list[str],
    extra_env: dict[str, str] | None = None,
    *,
    discards: bool = False,
    worker_args: dict[str, list[str]] | None = None,
) -> Iterator[WorkerProcesses]:
    """``worker_args``: more arguments of ``python -m workers`` per slug."""
    with tempfile.TemporaryDirectory(prefix="tte-workers-") as logdir:
        workers = WorkerProcesses(vhost, extra_env, Path(logdir), worker_args)
        if discards:
            slugs = [*slugs, DISCARDS]
        try:
            for slug in slugs:
                workers.start(slug, wait=False)
            for slug in slugs:
                workers.wait_ready(slug)
            yield workers
        except BaseException:
            # The logs die with the temporary directory: show them with the failure.
            for slug in workers.procs:
                print(f"----- worker {slug} log (tail) -----\n{workers.log(slug)[-6000:]}")
            raise
        finally:
            workers.stop_all()
