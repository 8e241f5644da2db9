#!/usr/bin/env python
"""Soak: the whole system as a streamer runs it, at a big live's steady rate, for a long time.

    .venv/bin/python scripts/bench/soak.py [--minutes 30] [--rate 300] [--exclusive] [--keep]

``manage.py start_event_system --simulate steady`` (supervisor, capture and writer, a worker
per service, discard accounting) against the simulator's steady live: the demo's mix at
``--rate`` messages/s, ended by the streamer after ``--minutes``. Its own database
(``<DATABASE_URL name>_soak``, emptied first and last), RabbitMQ vhost and overlay stream.
The services are the demo's two as populate_initial_data shapes them (SYNC with DinoChrome's
events, queue 50; ASYNC with the overlays', 8 threads, queue 100), both the real
OverlaysService with ``--card-seconds`` cards: no external endpoint. Every
``--sample-seconds`` it reads /proc for each process by role, and for PostgreSQL, RabbitMQ
and Redis as a group each (PSS; they serve the whole machine), and prints one line. The
simulator plays TikTok: shown, not in the total.

The last line is one JSON object:
  events            sent (messages), expected (rows: a streak is one), stored, per second
  lost              expected rows not stored + non-discardable QueueItems missing or failed:
                    must be 0
  backlog_at_end    non-discardable QueueItems still queued after the system's drain
                    (``--settle`` s): a service slower than the live, not a loss
  items             QueueItems by service and status
  rss_mb, rss_growth_mb   per role at the live's end, and minus the sample ``--warmup`` s in
  gift_latency_p99_ms     per service, for gifts sent in the first and the last ``--window`` s:
                    the simulator's send time (a streak's first message) → QueueItem.started_at
  cpu_core_share    CPU seconds / live seconds (1.0 = one core): total (processes and servers),
                    processes, per role; machine_busy_share: /proc/stat, all cores
  server_restarts, log_problems, system_exit_code
                    what disturbed the run (the most frequent log problems are on stderr)
  machine           python_loop_ms, pipe_round_trip_us, cpu_steal_pct (bench_setup.MachineGauge)
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import bench_setup as bench  # noqa: E402 - after the path set-up

from tests.support.servers import create_vhost, delete_vhost  # noqa: E402

CARD_CLASS = "project.services.overlays.services.OverlaysService"
LOCK_KEY = 0x50A4_0017  # pg_advisory_lock: one soak per database at a time
FAULT_LOCK = "/tmp/tte-faults.lock"  # noqa: S108 - tests/support/outages.py's lock, shared by its name
SERVERS = {
    "postgres": "servers:postgresql",
    "beam.smp": "servers:rabbitmq",
    "epmd": "servers:rabbitmq",
    "erl_child_setup": "servers:rabbitmq",
    "inet_gethost": "servers:rabbitmq",
    "redis-server": "servers:redis",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the live")
    parser.add_argument("--rate", type=float, default=300.0, help="messages per second the simulator sends")
    parser.add_argument("--sample-seconds", type=float, default=10.0, help="interval of the /proc samples")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds of live before the RSS baseline")
    parser.add_argument("--window", type=float, default=120.0, help="seconds of the start and end latency windows")
    parser.add_argument("--settle", type=float, default=60.0, help="seconds the system may drain after the live")
    parser.add_argument("--card-seconds", type=float, default=0.01, help="display time of each overlay card")
    parser.add_argument("--keep", action="store_true", help="keep the rows, the system's log and the samples")
    parser.add_argument(
        "--exclusive",
        action="store_true",
        help=f"hold the fault suite's machine-wide lock ({FAULT_LOCK}) for the run: no fault test (tests/faults) "
        "stops a server under the soak, and none runs until it ends",
    )
    args = parser.parse_args()
    fault_lock = hold_fault_lock() if args.exclusive else None

    bench.use_locked_bench_database("soak", LOCK_KEY, "soak")
    gauge = bench.MachineGauge()
    from django.db import connection

    empty_tables()
    create_services(args.card_seconds)
    stream = f"soak:{uuid.uuid4().hex[:6]}:cards"
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    sent_log, summary_path, system_log = workdir / "sent.log", workdir / "summary.json", workdir / "system.log"
    live_seconds = args.minutes * 60
    # The simulated streamer ends the live, so every message sent must be stored; --duration is
    # only a safety net (a capture stopped by it would miss the last frames).
    argv = [
        sys.executable, "manage.py", "start_event_system", "--simulate", "steady", "--username", "soak", "--quiet",
        "--duration", f"{2 * live_seconds + 60:g}", "--drain-timeout", f"{args.settle:g}",
        "--summary-json", str(summary_path), f"--simulator-arg=--steady-rate={args.rate:g}",
        f"--simulator-arg=--steady-seconds={live_seconds:g}", f"--simulator-arg=--sent-log={sent_log}",
    ]  # fmt: skip
    system = vhost = result = None
    samples: list[dict] = []
    tree = ProcessTree()
    try:
        created = create_vhost("soak")
        vhost, broker_url = created.name, created.broker_url
        bench.log(f"database {connection.settings_dict['NAME']}, vhost {vhost}, files in {workdir}")
        env = dict(os.environ, CELERY_BROKER_URL=broker_url, OVERLAYS_STREAM=stream, PYTHONUNBUFFERED="1")
        with open(system_log, "ab") as out:
            # Its own session: a Ctrl+C in the terminal reaches the soak, which then stops the system in order.
            system = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        live_started = wait_for_live(system, sent_log, system_log)
        sample_until_exit(system, tree, samples, live_started, live_seconds, args)
        if system.returncode != 0:
            bench.log(f"start_event_system exited with {system.returncode}:\n{tail(system_log)}")
        result = with_database_retries(lambda: report(args, samples, sent_log, summary_path, live_started, gauge))
        result |= {
            "server_restarts": tree.server_restarts,
            "system_exit_code": system.returncode,
            "log_problems": note_log_problems(system_log),
        }
    finally:
        stop(system, tree)
        for step in (
            lambda: vhost and delete_vhost(created),
            lambda: redis_client().delete(stream),
            lambda: args.keep or empty_tables(),
        ):
            try:
                step()
            except Exception as exc:
                bench.log(f"cleanup step failed: {type(exc).__name__}: {exc}")
        if args.keep or result is None:
            (workdir / "samples.json").write_text(json.dumps(samples))
            bench.log(f"the system's log, the messages sent and the samples: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        if fault_lock is not None:
            fault_lock.close()
    print(json.dumps(result), flush=True)
    return 0 if result["lost"] == 0 and result["system_exit_code"] == 0 else 1


# -- set-up -------------------------------------------------------------------------------------


def empty_tables() -> None:
    # The soak's own database: TRUNCATE leaves no dead rows for autovacuum to chew on mid-run.
    from django.db import connection

    from project.app_config.models import Config
    from project.queue_system.models import QueueItem, Service, ServiceEventConfig
    from project.tiktok_events.models import LiveEvent, LiveSession

    tables = [m._meta.db_table for m in (QueueItem, LiveEvent, LiveSession, ServiceEventConfig, Service, Config)]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


def create_services(card_seconds: float) -> None:
    """The demo's two active services, in the shapes populate_initial_data gives them."""
    from project.app_config.config import set_config
    from project.queue_system.models import Service, ServiceEventConfig
    from project.queue_system.seed_data import DINOCHROME_EVENTS, OVERLAYS_EVENTS
    from project.services.overlays.cards import CARD_TYPES, DISPLAY_TIMES_CONFIG_KEY

    set_config(DISPLAY_TIMES_CONFIG_KEY, json.dumps(dict.fromkeys(CARD_TYPES, card_seconds)))
    for slug, mode, concurrency, max_queue, table in (
        ("soak-sync", "SYNC", 1, 50, DINOCHROME_EVENTS),
        ("soak-async", "ASYNC", 8, 100, OVERLAYS_EVENTS),
    ):
        service = Service.objects.create(
            name=slug, slug=slug, service_class=CARD_CLASS, mode=mode, concurrency=concurrency, max_queue_size=max_queue
        )
        ServiceEventConfig.objects.bulk_create(
            [ServiceEventConfig(service=service, event_type=t, priority=p, discardable=d) for t, p, d in table]
        )


def hold_fault_lock():
    """The fault tests' lock, taken as they take it; closing the file (or exiting) releases it."""
    handle = open(FAULT_LOCK, "a")
    bench.log(f"waiting for the fault suite's lock {FAULT_LOCK} ...")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def redis_client():
    import redis
    from django.conf import settings

    return redis.Redis.from_url(settings.REDIS_URL)


def wait_for_live(system: subprocess.Popen, sent_log: Path, system_log: Path, timeout: float = 300.0) -> float:
    """The wall time the simulator sent its first message (the workers start before the capture)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if system.poll() is not None:
            raise RuntimeError(f"start_event_system exited with {system.returncode}:\n{tail(system_log)}")
        with contextlib.suppress(FileNotFoundError), sent_log.open() as sent:
            if (first := sent.readline()).endswith("\n"):
                return int(first.split()[3]) / 1000
        time.sleep(0.2)
    raise TimeoutError(f"no message sent within {timeout:.0f} s:\n{tail(system_log)}")


def tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


# -- sampling -----------------------------------------------------------------------------------


class ProcessTree:
    """The system's processes by role (from their command lines), every one ever seen (to stop them),
    and the servers' restarts (their oldest process changed: a neighbour's fault test, a crash)."""

    def __init__(self) -> None:
        self.seen: dict[int, int] = {}  # pid → start time (clock ticks): a recycled pid is not ours
        self.server_starts: dict[str, int] = {}
        self.server_restarts: dict[str, int] = dict.fromkeys(sorted(set(SERVERS.values())), 0)

    def sample(self, root: int) -> dict[int, tuple[str, float, float]]:
        """pid → (role, memory MB, CPU seconds): the system's tree (RSS), then the servers (PSS)."""
        found: dict[int, tuple[str, float, float]] = {}
        stack = [(root, "")]
        while stack:
            pid, parent_role = stack.pop()
            if (stat := bench.process_stat(pid)) is not None:
                self.seen.setdefault(pid, stat[2])
                role = role_of(pid == root, bench.process_cmdline(pid), parent_role)
                found[pid] = (role, stat[1], stat[0])
                stack += [(child, role) for child in bench.process_children(pid)]
        oldest: dict[str, int] = {}
        for entry in Path("/proc").iterdir():
            role = SERVERS.get(bench.process_name(int(entry.name))) if entry.name.isdigit() else None
            if role and (stat := bench.process_stat(int(entry.name))) is not None:
                found[int(entry.name)] = (role, bench.process_pss_mb(int(entry.name)) or stat[1], stat[0])
                oldest[role] = min(stat[2], oldest.get(role, stat[2]))
        for role, started in oldest.items():
            self.server_restarts[role] += self.server_starts.get(role, started) != started
        self.server_starts |= oldest
        return found

    def leftovers(self) -> list[int]:
        return [pid for pid, started in self.seen.items() if (stat := bench.process_stat(pid)) and stat[2] == started]


def role_of(is_root: bool, argv: list[str], parent_role: str) -> str:
    text = " ".join(argv)
    if is_root:
        return "event-system"  # the supervisor and the capture share the command's process
    for mark, role in (
        ("tiktok_simulator.py", "simulator"),
        ("consume_discarded", "discards"),
        ("resource_tracker", "capture-resource-tracker"),
        ("multiprocessing.spawn", "capture-writer"),
    ):
        if mark in text:
            return role
    if parent_role.startswith("worker:"):
        return parent_role.removesuffix(":pool") + ":pool"  # a SYNC worker's prefork child runs the handler
    if "-n" in argv[:-1] and "@" in argv[argv.index("-n") + 1]:
        return "worker:" + argv[argv.index("-n") + 1].split("@")[0]  # celery, once the launcher exec'd it
    if argv[1:3] == ["-m", "workers"] and len(argv) > 3:
        return "worker:" + argv[3]
    return (parent_role or "other") + ":child"


def sample_until_exit(system, tree: ProcessTree, samples: list[dict], live_started, live_seconds, args) -> None:
    deadline = live_started + 2 * live_seconds + args.settle + 300
    next_at = time.time()
    analyze_at = live_started + args.warmup if autovacuum_off() else None
    while system.poll() is None:
        if time.time() > deadline:
            raise TimeoutError("start_event_system did not end after its live and its drain")
        samples.append({"t": time.time(), "busy": bench.cpu_busy_seconds(), "procs": tree.sample(system.pid)})
        progress(samples, live_started)
        if analyze_at is not None and time.time() >= analyze_at:
            analyze_at = analyze()
        next_at += args.sample_seconds
        while system.poll() is None and time.time() < next_at:
            time.sleep(0.2)


def autovacuum_off() -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        return cursor.fetchone()[0] == "off"


def analyze() -> None:
    """What autovacuum's autoanalyze does once the emptied tables fill. Without it the planner keeps
    the empty tables' plans: start_event_system's drain count took 40 s on a 35,000-event session."""
    from django.db import connection

    bench.log("PostgreSQL runs without autovacuum: ANALYZE of the events and items once, after the warm-up")
    try:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE tiktok_events_liveevent, queue_system_queueitem")
    except Exception as exc:  # a restarting database: the soak goes on without it
        bench.log(f"ANALYZE failed: {exc}")
        connection.close()


def progress(samples: list[dict], live_started: float) -> None:
    """One line: what is stored, the gift/follow/sub backlog, the system's memory and CPU since the last sample."""
    from django.db import connection

    from project.queue_system.models import QueueItem
    from project.tiktok_events.models import LiveEvent

    now = samples[-1]
    ours = {pid: p for pid, p in now["procs"].items() if p[0] != "simulator"}
    rss = sum(mb for role, mb, _ in ours.values() if not role.startswith("servers:"))
    cpu = ""
    if len(samples) > 1:
        before, wall = samples[-2], now["t"] - samples[-2]["t"]
        used = sum(p[2] - before["procs"].get(pid, ("", 0.0, 0.0))[2] for pid, p in ours.items())
        cpu = f"  cpu {used / wall:.2f} cores, machine {(now['busy'] - before['busy']) / wall / os.cpu_count():.0%}"
    try:
        stored = LiveEvent.objects.count()
        backlog = QueueItem.objects.filter(discardable=False, status__in=("pending", "processing")).count()
        counts = f"stored {stored}  gift/follow/sub backlog {backlog}"
    except Exception as exc:  # a database restart must not end the soak: its figures come at the end
        counts = f"database: {type(exc).__name__}"
        connection.close()  # the next sample connects again
    print(f"t {now['t'] - live_started:5.0f} s  {counts}  rss {rss:.0f} MB{cpu}", flush=True)


# -- figures ------------------------------------------------------------------------------------


def report(args, samples, sent_log, summary_path, live_started, gauge) -> dict:
    from django.db.models import Count

    from project.queue_system.models import QueueItem, ServiceEventConfig
    from project.tiktok_events.models import LiveEvent

    sent_ms: dict[int, int] = {}  # messages that must become a row: all but a streak's later repeats
    sent = 0
    for line in sent_log.read_text().splitlines():
        msg_id, kind, repeat, at_ms = line.split()
        sent += 1
        if kind not in ("gift", "end") or repeat == "1":
            sent_ms[int(msg_id)] = int(at_ms)
    first_sent, last_sent = min(sent_ms.values()) / 1000, max(sent_ms.values()) / 1000
    stored_ids = set(LiveEvent.objects.values_list("msg_id", flat=True))
    missing_rows = len(sent_ms.keys() - stored_ids)

    items: dict[str, dict[str, int]] = {}
    for row in QueueItem.objects.values("service__slug", "status").annotate(n=Count("id")):
        items.setdefault(row["service__slug"], {})[row["status"]] = row["n"]
    kept = ServiceEventConfig.objects.filter(enabled=True, discardable=False)
    types = {t: LiveEvent.objects.filter(event_type=t).count() for t in set(kept.values_list("event_type", flat=True))}
    expected_items = sum(types[t] for t in kept.values_list("event_type", flat=True))
    kept_items = QueueItem.objects.filter(discardable=False)
    missing_items = max(0, expected_items - kept_items.count())
    failed = kept_items.filter(status=QueueItem.Status.FAILED).count()
    # Still queued when the system stopped (durable, they run at the workers' next start):
    # a service that fell behind, not a loss.
    unfinished = kept_items.filter(status__in=[QueueItem.Status.PENDING, QueueItem.Status.PROCESSING]).count()
    bench.log(f"sent {sent}, rows expected {len(sent_ms)}, missing {missing_rows}; items {json.dumps(items)}")
    bench.log(
        f"non-discardable items: {expected_items} expected, {missing_items} missing, {failed} failed, "
        f"{unfinished} still queued at the end"
    )

    live = [s for s in samples if s["t"] <= last_sent + args.sample_seconds / 2] or samples[:1]
    warm = next((s for s in live if s["t"] - live_started >= args.warmup), live[-1])
    end = live[-1]
    wall = end["t"] - live[0]["t"]
    rss_end, rss_warm = memory_by_role(end), memory_by_role(warm)
    cpu = cpu_by_role(live)
    total = sum(seconds for role, seconds in cpu.items() if role != "simulator")
    processes = total - sum(seconds for role, seconds in cpu.items() if role.startswith("servers:"))
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    return {
        "events": {
            "sent": sent,
            "expected": len(sent_ms),
            "stored": len(stored_ids & sent_ms.keys()),
            "sent_per_s": round(sent / max(last_sent - first_sent, 1e-9), 1),
            "stored_per_s": round(len(stored_ids) / max(last_sent - first_sent, 1e-9), 1),
        },
        "lost": missing_rows + missing_items + failed,
        "backlog_at_end": unfinished,
        "items": items,
        "rss_mb": {role: round(mb, 1) for role, mb in sorted(rss_end.items())},
        "rss_growth_mb": {role: round(mb - rss_warm.get(role, 0.0), 1) for role, mb in sorted(rss_end.items())},
        "gift_latency_p99_ms": gift_latency(sent_ms, first_sent, last_sent, args.window),
        "cpu_core_share": {
            name: round(seconds / wall, 3) if wall > 0 else None
            for name, seconds in [("total", total), ("processes", processes), *sorted(cpu.items())]
        },
        "machine_busy_share": round((end["busy"] - live[0]["busy"]) / wall / os.cpu_count(), 3) if wall else None,
        "live_seconds": round(last_sent - first_sent, 1),
        "sampled_seconds": round(wall, 1),
        "rate": args.rate,
        "capture": {key: summary.get(key) for key in ("status", "reason", "reconnects")},
        "machine": gauge.figures(),
    }


def with_database_retries(read, attempts: int = 24):
    """The figures are read after the run: wait out a PostgreSQL restart (another test's) meanwhile."""
    from django.db import OperationalError, connection

    for attempt in range(attempts):
        try:
            return read()
        except OperationalError as exc:
            if attempt == attempts - 1:
                raise
            bench.log(f"database unavailable ({exc}); retrying in 5 s")
            connection.close()
            time.sleep(5)
    raise AssertionError("not reached")


def memory_by_role(sample: dict) -> dict[str, float]:
    roles: dict[str, float] = {}
    for role, mb, *_ in sample["procs"].values():
        roles[role] = roles.get(role, 0.0) + mb
    return roles


def cpu_by_role(samples: list[dict]) -> dict[str, float]:
    """CPU seconds per role between the first and the last sample; a process born in between counts from 0."""
    first, last_seen = samples[0]["procs"], {}
    for sample in samples:
        last_seen.update(sample["procs"])
    roles: dict[str, float] = {}
    for pid, (role, _, seconds) in last_seen.items():
        roles[role] = roles.get(role, 0.0) + seconds - (first[pid][2] if pid in first else 0.0)
    return roles


def gift_latency(sent_ms: dict[int, int], first_sent: float, last_sent: float, window: float) -> dict:
    from project.queue_system.models import QueueItem

    delays: dict[str, dict[str, list[float]]] = {"start": {}, "end": {}}
    never_started = 0
    rows = QueueItem.objects.filter(event_type="GiftEvent").values_list(
        "service__slug", "live_event__msg_id", "started_at"
    )
    for slug, msg_id, started_at in rows:
        if started_at is None or msg_id not in sent_ms:
            never_started += 1
            continue
        sent = sent_ms[msg_id] / 1000
        delay = (started_at.timestamp() - sent) * 1000
        for name, inside in (("start", sent < first_sent + window), ("end", sent >= last_sent - window)):
            if inside:
                delays[name].setdefault(slug, []).append(delay)
    if never_started:
        bench.log(f"{never_started} gift item(s) never started (counted in lost if not completed)")
    return {
        name: {slug: {"p99": round(p99(values), 1), "count": len(values)} for slug, values in sorted(by_slug.items())}
        for name, by_slug in delays.items()
    }


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def note_log_problems(system_log: Path) -> int:
    """Warnings, errors and tracebacks the system printed: on stderr, the most frequent kinds first."""
    kinds: dict[str, int] = {}
    for line in system_log.read_text(errors="replace").splitlines():
        if any(mark in line for mark in ("ERROR", "Traceback", "WARNING", "⚠️", "❌")):
            kind = re.sub(r"\d+", "N", re.sub(r"ts=\S+ |\[[0-9a-f-]{36}\]", "", line))[:160]
            kinds[kind] = kinds.get(kind, 0) + 1
    for kind, count in sorted(kinds.items(), key=lambda item: -item[1])[:12]:
        bench.log(f"system log, {count}×: {kind}")
    return sum(kinds.values())


# -- stopping -----------------------------------------------------------------------------------


def stop(system: subprocess.Popen | None, tree: ProcessTree) -> None:
    """Stop the system as a streamer would (Ctrl+C, then a second one to skip the drain), then
    whatever of its processes is still there (the workers have process groups of their own), by pid."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl+C must not leave processes behind
    try:
        if system is not None and system.poll() is None:
            tree.sample(system.pid)  # every process it has now
            for pause in (2.0, 70.0):  # the supervisor gives its workers up to 60 s to stop
                with contextlib.suppress(ProcessLookupError):
                    os.kill(system.pid, signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    system.wait(timeout=pause)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if left := tree.leftovers():
                bench.log(f"stopping what the system left running ({sig.name}): {left}")
                for pid in left:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
                time.sleep(5)
        if system is not None:
            system.wait()
    finally:
        signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # the way out of Ctrl+C: everything stopped
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        bench.log("interrupted: everything the soak started is stopped")
        sys.exit(130)
