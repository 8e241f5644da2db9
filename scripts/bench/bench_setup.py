"""What every benchmark does before Django starts: its own database, so a run never touches
the streamer's rows, and log lines on stderr (stdout ends with the one JSON line)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1/tiktok_events"


class MachineGauge:
    """How fast this machine is during a run, reported beside a bench's figures.

    The same code on this machine has measured up to 2.8× apart from one session
    to another (RabbitMQ and process wake-ups more than plain Python), so a figure
    is only comparable with figures taken at the same machine speed. Two quick
    probes at the start — a plain Python loop (one core's speed) and pipe round
    trips between two processes (the wake-ups every queue hop costs) — and the
    share of CPU time the hypervisor took away (steal) over the whole run.
    """

    def __init__(self) -> None:
        self.python_loop_ms = round(_python_loop_ms(), 1)
        self.pipe_round_trip_us = round(_pipe_round_trip_us(), 1)
        self._cpu = _cpu_times()

    def figures(self) -> dict:
        now = _cpu_times()
        steal = None
        if self._cpu and now:
            total = sum(now) - sum(self._cpu)
            steal = round(100 * (now[7] - self._cpu[7]) / total, 1) if total > 0 else 0.0
        return {
            "python_loop_ms": self.python_loop_ms,
            "pipe_round_trip_us": self.pipe_round_trip_us,
            "cpu_steal_pct": steal,
        }


def _python_loop_ms(iterations: int = 2_000_000) -> float:
    import time

    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(iterations):
            pass
        best = min(best, time.perf_counter() - started)
    return best * 1000


def _pipe_round_trip_us(trips: int = 20_000) -> float:
    """One byte to a child process and back, the child on whichever core the kernel picks."""
    import time

    child_reads, parent_writes = os.pipe()
    parent_reads, child_writes = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: echo every byte, then leave without running any cleanup
        try:
            for _ in range(trips):
                os.write(child_writes, os.read(child_reads, 1))
        finally:
            os._exit(0)
    try:
        started = time.perf_counter()
        for _ in range(trips):
            os.write(parent_writes, b"x")
            os.read(parent_reads, 1)
        return (time.perf_counter() - started) / trips * 1e6
    finally:
        os.waitpid(pid, 0)
        for fd in (child_reads, parent_writes, parent_reads, child_writes):
            os.close(fd)


def _cpu_times() -> list[int] | None:
    """The machine's CPU time counters (user … steal), from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    values = [int(v) for v in fields[1:9]]
    return values if fields and fields[0] == "cpu" and len(values) == 8 else None


def cpu_busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy so far (user, nice, system, irq, softirq:
    every process, the servers included), from /proc/stat; None where there is none."""
    times = _cpu_times()
    if times is None:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, _steal = times
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def process_stat(pid: int) -> tuple[float, float, int] | None:
    """(CPU seconds, RSS MB, start time in clock ticks) of a process, from /proc/<pid>/stat;
    None once it is gone (or a zombie). The start time tells a recycled pid apart."""
    fields = _proc_text(f"/proc/{pid}/stat").rsplit(")", 1)[-1].split()
    if len(fields) < 22 or fields[0] == "Z":
        return None
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return cpu, int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20, int(fields[19])


def process_children(pid: int) -> list[int]:
    """The pids a process (any of its threads) started, from /proc."""
    with contextlib.suppress(OSError):
        return [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in _proc_text(task / "children").split()]
    return []


def process_name(pid: int) -> str:
    return _proc_text(f"/proc/{pid}/comm").strip()


def process_cmdline(pid: int) -> list[str]:
    return _proc_text(f"/proc/{pid}/cmdline").rstrip("\0").split("\0")


def process_pss_mb(pid: int) -> float | None:
    """Proportional set size: memory shared between processes (a server's) is counted once overall."""
    for line in _proc_text(f"/proc/{pid}/smaps_rollup").splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return None


def _proc_text(path: str | Path) -> str:
    try:
        return Path(path).read_text()
    except OSError:  # the process is gone, or another user's and not readable
        return ""


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def load_dotenv(path: Path) -> None:
    # The settings module reads DATABASE_URL when imported: the bench's own database
    # must be in the environment before that, so .env is read here first.
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                os.environ.setdefault(key.strip(), value.strip().strip("'\""))


def use_bench_database(suffix: str) -> None:
    """Point DATABASE_URL at ``<database>_<suffix>``, create it if missing, then set Django up."""
    load_dotenv(ROOT / ".env")
    parts = urlsplit(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    os.environ["DATABASE_URL"] = urlunsplit(parts._replace(path=parts.path.rstrip("/") + f"_{suffix}"))
    subprocess.run([sys.executable, str(ROOT / "scripts" / "ensure_database.py")], check=True, env=os.environ)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()


def use_locked_bench_database(suffix: str, lock_key: int, what: str) -> None:
    """``use_bench_database``, migrated, then hold ``lock_key`` (a PostgreSQL advisory lock, kept
    for the connection's life): one run of a benchmark per database at a time."""
    use_bench_database(suffix)
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        log(f"waiting for the {what} lock (one run per database) ...")
        cursor.execute("SELECT pg_advisory_lock(%s)", [lock_key])
