# Design: docs/architecture.md#processes
"""WorkerSupervisor: one worker process per active service, plus the discard accounting.

Used by ``run_queue_workers`` and ``start_event_system``::

    supervisor = WorkerSupervisor(slugs=None, verbose=False, stdout=sys.stdout)
    supervisor.start()            # spawn; returns the ManagedProcess list
    supervisor.wait_ready(60)     # until every service queue has its consumer
    while running:
        supervisor.check()        # restart what died (with a back-off); call every second or so
        ...
    supervisor.stop()             # SIGTERM (Celery warm shutdown), SIGKILL after a timeout

Each worker is ``python -m workers <slug>`` in its own process group (so a
terminal's Ctrl+C reaches only the supervisor, which then stops them in order).
Their output is read line by line: with ``verbose`` everything is echoed with a
``[slug]`` prefix; otherwise only the per-event result lines (``✅ [DinoChrome]
CommentEvent (P:6) completed``) and warnings/errors. Stopping never loses an
item: tasks are acked late, so one interrupted mid-way is redelivered.

Call ``start``/``check`` from one long-lived thread.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from project.env import env_int
from workers.command import launcher_argv
from workers.supervisor_watch import SUPERVISOR_PID_ENV

ROOT = Path(__file__).resolve().parent.parent
DISCARDS = "discard-accounting"


def discards_argv() -> list[str]:
    """The discard accounting process a supervisor runs beside the workers (``manage.py consume_discarded``)."""
    return [sys.executable, str(ROOT / "manage.py"), "consume_discarded"]


READ_CHUNK = 65536  # bytes of a worker's output read at once
_KV_MSG = re.compile(r'\bmsg=("(?:[^"\\]|\\.)*"|\S+)')
_KV_LEVEL = re.compile(r"\blevel=(\w+)")
_KV_LOGGER = re.compile(r"\blogger=(\S+)")


@dataclass
class ManagedProcess:
    name: str  # the service slug, or "discard-accounting"
    argv: list[str]
    label: str = ""
    max_queue_size: int | None = None
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    next_start: float = 0.0
    reader: threading.Thread | None = field(default=None, repr=False)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


class WorkerSupervisor:
    def __init__(
        self,
        slugs: list[str] | None = None,
        verbose: bool = False,
        stdout: TextIO | None = None,
        *,
        discards: bool = True,
        env: dict[str, str] | None = None,
        node_suffix: str = "",
    ) -> None:
        self.slugs = slugs
        self.verbose = verbose
        self.stdout = stdout or sys.stdout
        self.discards = discards
        self.env = dict(os.environ if env is None else env)
        # Each process leaves by itself if this one is killed outright (workers/supervisor_watch.py).
        self.env[SUPERVISOR_PID_ENV] = str(os.getpid())
        self.node_suffix = node_suffix
        self.processes: dict[str, ManagedProcess] = {}
        self._write_lock = threading.Lock()
        self._stopping = False

    # -- lifecycle --------------------------------------------------------

    def services(self):
        """The Service rows this supervisor runs: the active ones, or those named."""
        from project.queue_system.models import Service

        services = Service.objects.order_by("name")
        if self.slugs:
            found = list(services.filter(slug__in=self.slugs))
            missing = set(self.slugs) - {s.slug for s in found}
            if missing:
                raise ValueError(f"no service with slug {', '.join(sorted(missing))}")
            return found
        return list(services.filter(is_active=True))

    def start(self) -> list[ManagedProcess]:
        loglevel = "INFO"
        for service in self.services():
            managed = ManagedProcess(
                service.slug,
                # The per-task lines are only shown with --verbose: not written without it.
                launcher_argv(
                    service.slug, node_suffix=self.node_suffix, loglevel=loglevel, quiet_tasks=not self.verbose
                ),
                label=service.name,
                max_queue_size=service.max_queue_size,
            )
            self.processes[service.slug] = managed
            self._spawn(managed)
        if self.discards:
            managed = ManagedProcess(DISCARDS, discards_argv(), label="Discard accounting")
            self.processes[DISCARDS] = managed
            self._spawn(managed)
        return list(self.processes.values())

    def wait_ready(self, timeout: float = 90.0) -> list[str]:
        """Wait until each service queue has a consumer; returns the slugs still not ready."""
        from project.queue_system.broker import CONNECTION_ERRORS, BrokerError, close_quietly, open_connection
        from project.queue_system.queues import main_queue_name

        deadline = time.monotonic() + timeout
        waiting = [name for name in self.processes if name != DISCARDS]
        while waiting and time.monotonic() < deadline:
            try:
                connection = open_connection()
            except BrokerError:
                time.sleep(1)
                continue
            try:
                for slug in list(waiting):
                    channel = connection.channel()
                    with contextlib.suppress(*CONNECTION_ERRORS, Exception):
                        _, _, consumers = channel.queue_declare(main_queue_name(slug), passive=True)
                        if consumers:
                            waiting.remove(slug)
            finally:
                close_quietly(connection)
            if waiting:
                self.check()
                time.sleep(0.3)
        return waiting

    def check(self) -> list[str]:
        """Restart every process that died (not while stopping); returns their names."""
        restarted = []
        if self._stopping:
            return restarted
        now = time.monotonic()
        for managed in self.processes.values():
            if managed.alive or managed.proc is None:
                continue
            if managed.next_start == 0.0:
                # Died: restart at once if it ran a while, else back off (a worker
                # that cannot start must not spin).
                lived = now - managed.started_at
                delay = 0.0 if lived > 30 else min(30.0, 2.0 ** min(managed.restarts, 5))
                managed.next_start = now + delay
                self._say(
                    f"⚠️  {managed.label or managed.name} exited with code {managed.proc.returncode}; "
                    f"restarting{f' in {delay:.0f}s' if delay else ''}"
                )
            if now >= managed.next_start:
                managed.restarts += 1
                self._spawn(managed)
                restarted.append(managed.name)
        return restarted

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM every process, wait up to ``timeout`` for the current items to finish, then SIGKILL."""
        self._stopping = True
        for managed in self.processes.values():
            if managed.alive:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(managed.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for managed in self.processes.values():
            if managed.proc is None:
                continue
            try:
                managed.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._say(f"⚠️  {managed.label} did not stop in {timeout:.0f}s; killed (its item will be redelivered)")
            # Anything left in the group (a prefork child) goes too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(managed.proc.pid, signal.SIGKILL)
            managed.proc.wait()
        for managed in self.processes.values():
            if managed.reader is not None:
                managed.reader.join(timeout=5)

    def stats(self, since=None):
        """``project.queue_system.stats.service_stats`` for the supervised services."""
        from project.queue_system.stats import service_stats

        return service_stats([n for n in self.processes if n != DISCARDS] or None, since=since)

    # -- internals --------------------------------------------------------

    def _spawn(self, managed: ManagedProcess) -> None:
        managed.proc = subprocess.Popen(
            managed.argv,
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        _lower_priority(managed.proc.pid)
        managed.started_at = time.monotonic()
        managed.next_start = 0.0
        managed.reader = threading.Thread(
            target=self._read, args=(managed, managed.proc), name=f"output-{managed.name}", daemon=True
        )
        managed.reader.start()

    def _read(self, managed: ManagedProcess, proc: subprocess.Popen) -> None:
        """Show a worker's output as it comes, what arrived together in one write.

        Under ``start_event_system`` this thread shares the capture's process: read line by
        line (a wake-up, a write and a flush per line: thousands a second in a flood) it took a
        quarter of that process's samples under live_load.py, time the capture's parsing waits
        for. Whole chunks cost one wake-up and one write each.
        """
        fd = proc.stdout.fileno()
        rest = b""
        while chunk := os.read(fd, READ_CHUNK):
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            self._show_lines(managed.name, lines)
        self._show_lines(managed.name, [rest])
        proc.stdout.close()

    def _show_lines(self, name: str, lines: list[bytes]) -> None:
        shown = []
        for raw in lines:
            line = raw.decode("utf-8", errors="replace").rstrip()
            if line and (text := self.format_line(name, line)) is not None:
                shown.append(text)
        if shown:
            self._say("\n".join(shown))

    def format_line(self, name: str, line: str) -> str | None:
        """What the terminal shows for one output line of a worker (None: nothing)."""
        if self.verbose:
            return f"[{name}] {line}"
        logger = _KV_LOGGER.search(line)
        level = _KV_LEVEL.search(line)
        if logger and logger.group(1) in ("queue.events", "celery.redirected"):
            message = _KV_MSG.search(line)
            if message:
                text = message.group(1)
                text = text[1:-1].replace('\\"', '"') if text.startswith('"') else text
                # print() in a service (as the seeds' custom services do) is the service talking.
                return text if logger.group(1) == "queue.events" else f"[{name}] {text}"
        if level and level.group(1) in ("ERROR", "CRITICAL"):
            return f"[{name}] {line}"
        if line.startswith(("error:", "warning:", "Traceback")):
            return f"[{name}] {line}"
        return None

    def _say(self, text: str) -> None:
        with self._write_lock:
            self.stdout.write(text + "\n")
            with contextlib.suppress(Exception):
                self.stdout.flush()


# TTE_ (TikTok Live Events) marks the project's own variables (docs/configuration.md).
NICE_ENV = "TTE_WORKER_NICE"


def _lower_priority(pid: int) -> None:
    """Workers and the discard accounting yield the CPU to the capture (TTE_WORKER_NICE): on a
    busy machine the live's events are read and stored first, and a worker's work waits instead.
    Set before the launcher execs Celery and forks its pool, which inherit it."""
    nice = env_int(NICE_ENV, 0, minimum=0)
    if nice:
        with contextlib.suppress(OSError):  # the process already left
            os.setpriority(os.PRIO_PROCESS, pid, nice)
