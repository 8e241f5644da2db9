#!/usr/bin/env python
"""Live load: a gift's reaction time, TikTok → service, while a big live floods likes and chat.

    .venv/bin/python scripts/bench/live_load.py [--phase-seconds 20] [--load-rate 300]
        [--flood-likes 2000] [--flood-comments 150] [--exclusive] [--keep]

The whole system as ``manage.py start_event_system --simulate live-load`` runs it: the
simulator, the unmodified TikTokLive client in the capture, its writers, RabbitMQ, the
discard accounting, and two services in the demo's shapes (SYNC with DinoChrome's events,
queue 50; ASYNC with the overlays', 8 threads, queue 100) whose no-op handler records in
Redis when it started. The simulator's ``live-load`` live sends a probe gift (a Galaxy,
never a streak) every 0.5 s through four phases: a warm-up (not counted), *idle* (nothing
else), *load* (the demo's mix at ``--load-rate`` messages/s), *flood* (``--flood-likes``
likes and ``--flood-comments`` comments per second). A gift's latency is its send time
(the simulator's ``--sent-log``) → its handler's start, per service.

First, with nothing else running, the baseline: a plain Celery prefork worker's round trip
``send_task`` → task start on an idle worker (``celery_baseline.round_trips``). Its own
database (``<DATABASE_URL name>_liveload``, emptied first and last), RabbitMQ vhost and
Redis keys. ``CAPTURE_PRIORITY_LANE=0`` in the environment runs the capture without its
priority lane, for a comparison.

The last line is one JSON object:
  idle, load, flood     per phase: gift_p50_ms, gift_p99_ms, gift_max_ms per service
                        ("sync", "async"), gifts (probes sent), events_per_s (messages the
                        simulator sent per second), cpu_ms_per_event (the whole machine's
                        busy CPU, /proc/stat, per message sent) and cpu_ms_per_event_by_role
                        (each process of the system, from /proc/<pid>/stat)
  celery_p50_ms, celery_p99_ms
                        the plain Celery round trip on an idle worker (the same run)
  load_vs_idle, flood_vs_idle
                        gift_p99_ms of the phase / of idle, per service (targets ≤ 1.5, ≤ 3)
  idle_vs_celery        idle gift_p99_ms / celery_p99_ms, per service (target ≤ 5)
  lost                  probe gifts that never started in a service, and gift, follow or
                        subscription items not completed (must be 0)
  priority_lane, priority_batches, system_exit_code, machine
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
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
import celery_baseline  # noqa: E402
from soak import ProcessTree, empty_tables, hold_fault_lock, redis_client, stop, tail, wait_for_live  # noqa: E402

from project.queue_system.base_service import BaseQueueService  # noqa: E402
from tests.support.figures import percentile  # noqa: E402
from tests.support.servers import create_vhost, delete_vhost  # noqa: E402

SERVICE_CLASS = "scripts.bench.live_load.LiveLoadService"
KEY_ENV = "LIVE_LOAD_REDIS_KEY"
LOCK_KEY = 0x11FE_10AD  # pg_advisory_lock: one run per database at a time
PHASES = ("idle", "load", "flood")  # the simulator's live-load phases after its warm-up
SERVICES = (("sync", "SYNC", 1, 50), ("async", "ASYNC", 8, 100))


class LiveLoadService(BaseQueueService):
    """The bench's service: a no-op that records, for each gift, when its handler started."""

    def on_start(self) -> None:
        import redis
        from django.conf import settings

        self._redis = redis.Redis.from_url(settings.REDIS_URL)
        self._key = f"{os.environ.get(KEY_ENV, 'live-load')}:{self.service.slug}"

    def process_event(self, live_event, queue_item) -> bool:
        started = time.time()
        if live_event.event_type == "GiftEvent":
            self._redis.rpush(self._key, json.dumps([live_event.msg_id, started]))
        return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase-seconds", type=float, default=20.0, help="length of idle, load and flood each")
    parser.add_argument("--load-rate", type=float, default=300.0, help="messages/s of the demo mix in the load phase")
    parser.add_argument("--flood-likes", type=int, default=2000, help="likes per second in the flood phase")
    parser.add_argument("--flood-comments", type=int, default=150, help="comments per second in the flood phase")
    parser.add_argument("--samples", type=int, default=200, help="plain Celery round trips")
    parser.add_argument("--sample-seconds", type=float, default=0.5, help="interval of the CPU samples")
    parser.add_argument("--drain-timeout", type=float, default=60.0, help="seconds the workers may drain at the end")
    parser.add_argument("--keep", action="store_true", help="keep the rows and the system's log")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="sample every process of the system with py-spy (requirements-dev.txt) during the live: DIR/live.txt "
        "(collapsed stacks), and the busiest functions of each process on stderr; slows the system a little",
    )
    parser.add_argument(
        "--exclusive", action="store_true", help="hold the fault suite's lock: no fault test stops a server meanwhile"
    )
    args = parser.parse_args()
    fault_lock = hold_fault_lock() if args.exclusive else None

    bench.use_locked_bench_database("liveload", LOCK_KEY, "live-load")
    gauge = bench.MachineGauge()
    from django.db import connection

    from project.celery import app

    empty_tables()
    create_services()
    key = f"live-load:{uuid.uuid4().hex[:6]}"
    workdir = Path(tempfile.mkdtemp(prefix="live-load-"))
    sent_log, summary_path, system_log = workdir / "sent.log", workdir / "summary.json", workdir / "system.log"
    created = create_vhost("live-load")
    from django.conf import settings

    settings.CELERY_BROKER_URL = app.conf.broker_url = created.broker_url
    env = dict(os.environ, CELERY_BROKER_URL=created.broker_url, PYTHONUNBUFFERED="1", **{KEY_ENV: key})
    rds = redis_client()
    system = result = None
    tree = ProcessTree()
    samples: list[dict] = []
    try:
        bench.log(f"database {connection.settings_dict['NAME']}, vhost {created.name}, files in {workdir}")
        celery_latencies = plain_celery_round_trips(args, env, workdir, rds, key)
        argv = [
            sys.executable, "manage.py", "start_event_system", "--simulate", "live-load", "--username", "liveload",
            "--quiet", "--summary-json", str(summary_path), "--drain-timeout", f"{args.drain_timeout:g}",
            "--duration", f"{4 * args.phase_seconds + 300:g}",
            f"--simulator-arg=--phase-seconds={args.phase_seconds:g}",
            f"--simulator-arg=--steady-rate={args.load_rate:g}",
            f"--simulator-arg=--flood-likes={args.flood_likes}",
            f"--simulator-arg=--flood-comments={args.flood_comments}",
            f"--simulator-arg=--sent-log={sent_log}",
        ]  # fmt: skip
        with open(system_log, "ab") as out:
            system = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        wait_for_live(system, sent_log, system_log)
        profiler = start_profiler(args.profile, system.pid)
        deadline = time.time() + 4 * args.phase_seconds + args.drain_timeout + 300
        while system.poll() is None:
            if time.time() > deadline:
                raise TimeoutError(f"start_event_system did not end after its live:\n{tail(system_log)}")
            samples.append({"t": time.time(), "busy": bench.cpu_busy_seconds(), "procs": tree.sample(system.pid)})
            time.sleep(args.sample_seconds)
        if system.returncode != 0:
            bench.log(f"start_event_system exited with {system.returncode}:\n{tail(system_log)}")
        if profiler is not None:
            profiler.wait(timeout=60)
            summarize_profile(Path(args.profile) / "live.txt")
        result = report(args, sent_log, summary_path, samples, rds, key, celery_latencies)
        result |= {"system_exit_code": system.returncode, "machine": gauge.figures()}
    finally:
        stop(system, tree)
        for step in (
            lambda: delete_vhost(created),
            lambda: rds.delete(*rds.keys(f"{key}*") or [f"{key}:none"]),
            lambda: args.keep or empty_tables(),
        ):
            try:
                step()
            except Exception as exc:
                bench.log(f"cleanup step failed: {type(exc).__name__}: {exc}")
        if args.keep or result is None:
            bench.log(f"the system's log and the messages sent: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        if fault_lock is not None:
            fault_lock.close()
    print(json.dumps(result), flush=True)
    return 0 if result["lost"] == 0 and result["system_exit_code"] == 0 else 1


def create_services() -> None:
    from project.queue_system.models import Service, ServiceEventConfig
    from project.queue_system.seed_data import DINOCHROME_EVENTS, OVERLAYS_EVENTS

    for (name, mode, concurrency, max_queue), table in zip(SERVICES, (DINOCHROME_EVENTS, OVERLAYS_EVENTS), strict=True):
        service = Service.objects.create(
            name=f"Live load {name}",
            slug=f"liveload-{name}",
            service_class=SERVICE_CLASS,
            mode=mode,
            concurrency=concurrency,
            max_queue_size=max_queue,
        )
        ServiceEventConfig.objects.bulk_create(
            [ServiceEventConfig(service=service, event_type=t, priority=p, discardable=d) for t, p, d in table]
        )


def plain_celery_round_trips(args, env: dict, workdir: Path, rds, key: str) -> list[float]:
    """The baseline, before the system starts: a plain worker alone, then stopped."""
    from project.queue_system.broker import close_quietly, open_connection, passive_counts

    with open(workdir / "plain-worker.log", "ab") as out:
        worker = subprocess.Popen(
            celery_baseline.worker_argv(key.rsplit(":", 1)[1]), cwd=ROOT, env=env, stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            if worker.poll() is not None:
                raise RuntimeError(f"the plain Celery worker exited:\n{tail(workdir / 'plain-worker.log')}")
            connection = open_connection()
            try:
                counts = passive_counts(connection, [celery_baseline.PLAIN_QUEUE]).get(celery_baseline.PLAIN_QUEUE)
            finally:
                close_quietly(connection)
            if counts and counts[1]:
                break
            if time.monotonic() > deadline:
                raise TimeoutError("the plain Celery worker did not consume within 120 s")
            time.sleep(0.2)
        latencies = celery_baseline.round_trips(rds, f"{key}:plain", samples=args.samples, warmup=10, gap_ms=5)
    finally:
        stop_process(worker)
    bench.log(f"plain Celery round trip: p50 {percentile(latencies, 0.5):.2f} ms p99 {percentile(latencies, 0.99):.2f}")
    return latencies


def start_profiler(directory: str | None, pid: int) -> subprocess.Popen | None:
    if not directory:
        return None
    Path(directory).mkdir(parents=True, exist_ok=True)
    py_spy = Path(sys.executable).with_name("py-spy")
    argv = [str(py_spy), "record", "--pid", str(pid), "--subprocesses", "--gil", "--rate", "50"]
    argv += ["--format", "raw", "--output", str(Path(directory) / "live.txt")]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize_profile(path: Path, top: int = 8) -> None:
    """The functions each process spent its samples in (innermost frame), busiest first."""
    if not path.exists():
        bench.log(f"no profile in {path} (is py-spy installed? pip install -r requirements-dev.txt)")
        return
    by_process: dict[str, dict[str, int]] = {}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not count.isdigit() or len(frames) < 2:
            continue
        # py-spy nests a child's stacks under its parents': the innermost "process …" frame is its own.
        process = [frame for frame in frames if frame.startswith("process ")][-1]
        frames = frames[frames.index(process) + 1 :] or ["(no frame)"]
        for mark, name in (
            ("tiktok_simulator", "simulator"),
            ("consume_discarded", "discards"),
            ("spawn_main", "capture writers"),
            ("liveload-sync", "worker sync"),
            ("liveload-async", "worker async"),
            ("start_event_system", "capture + supervisor"),
        ):
            if mark in process:
                process = name
                break
        innermost = frames[-1].split(" (")[0]
        functions = by_process.setdefault(process, {})
        functions[innermost] = functions.get(innermost, 0) + int(count)
    for process, functions in sorted(by_process.items(), key=lambda item: -sum(item[1].values())):
        total = sum(functions.values())
        busiest = sorted(functions.items(), key=lambda item: -item[1])[:top]
        bench.log(f"{process}: {total} samples; " + "; ".join(f"{f} {100 * n / total:.0f}%" for f, n in busiest))


def stop_process(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait()


def report(args, sent_log: Path, summary_path: Path, samples: list[dict], rds, key: str, celery: list[float]) -> dict:
    from project.queue_system.models import QueueItem
    from project.tiktok_events.models import LiveEvent

    sent: list[tuple[int, str, int]] = []  # (msg_id, kind, send time ms)
    for line in sent_log.read_text().splitlines():
        msg_id, kind, _repeat, at_ms = line.split()
        sent.append((int(msg_id), kind, int(at_ms)))
    sent_at = {msg_id: at for msg_id, _, at in sent}
    probes = dict(
        LiveEvent.objects.filter(event_type="GiftEvent", user_unique_id__endswith="_probe").values_list(
            "msg_id", "user_unique_id"
        )
    )
    # (Only this run's: the sent log is its simulator's.)
    phase_of = {msg_id: handle.removesuffix("_probe") for msg_id, handle in probes.items() if msg_id in sent_at}
    # A phase runs from its first probe's send time to the next phase's (the flood: to the last message).
    starts: dict[str, float] = {}
    for msg_id, phase in phase_of.items():
        starts[phase] = min(starts.get(phase, float("inf")), sent_at[msg_id] / 1000)
    if not set(PHASES) <= set(starts):
        raise RuntimeError(f"probes stored for the phases {sorted(starts)} only: the live did not run its course")
    bounds = {phase: (starts[phase], starts[PHASES[i + 1]] if i + 1 < len(PHASES) else max(sent_at.values()) / 1000)
              for i, phase in enumerate(PHASES)}  # fmt: skip

    started: dict[str, dict[int, float]] = {}
    for name, *_ in SERVICES:
        entries = [json.loads(raw) for raw in rds.lrange(f"{key}:liveload-{name}", 0, -1)]
        started[name] = {}
        for msg_id, at in entries:
            started[name].setdefault(msg_id, at)  # the first start (a redelivery would be a second)
    result: dict = {}
    lost = 0
    for phase in PHASES:
        begin, end = bounds[phase]
        ids = [m for m, p in phase_of.items() if p == phase]
        figures: dict = {"gifts": len(ids)}
        for name, *_ in SERVICES:
            delays = [(started[name][m] - sent_at[m] / 1000) * 1000 for m in ids if m in started[name]]
            lost += len(ids) - len(delays)
            figures[name] = {
                "gift_p50_ms": round(percentile(delays, 0.5), 1) if delays else None,
                "gift_p99_ms": round(percentile(delays, 0.99), 1) if delays else None,
                "gift_max_ms": round(max(delays), 1) if delays else None,
            }
        messages = sum(1 for _, _, at in sent if begin * 1000 <= at < end * 1000)
        figures["events_per_s"] = round(messages / (end - begin), 1)
        figures |= phase_cpu(samples, begin, end, messages)
        result[phase] = figures
    kept = QueueItem.objects.filter(discardable=False).exclude(status=QueueItem.Status.COMPLETED).count()
    lost += kept
    celery_p99 = percentile(celery, 0.99)

    def ratio(phase: str, base: str = "idle") -> dict:
        return {
            name: round(result[phase][name]["gift_p99_ms"] / result[base][name]["gift_p99_ms"], 2)
            if result[phase][name]["gift_p99_ms"] and result[base][name]["gift_p99_ms"]
            else None
            for name, *_ in SERVICES
        }

    summary = json.loads(summary_path.read_text()).get("capture", {}) if summary_path.exists() else {}
    result |= {
        "celery_p50_ms": round(percentile(celery, 0.5), 2),
        "celery_p99_ms": round(celery_p99, 2),
        "load_vs_idle": ratio("load"),
        "flood_vs_idle": ratio("flood"),
        "idle_vs_celery": {
            name: round(result["idle"][name]["gift_p99_ms"] / celery_p99, 2)
            if result["idle"][name]["gift_p99_ms"]
            else None
            for name, *_ in SERVICES
        },
        "lost": lost,
        "kept_items_not_completed": kept,
        "priority_lane": os.environ.get("CAPTURE_PRIORITY_LANE", "1") not in ("0", "false", "no", "off"),
        "priority_batches": summary.get("priority_batches"),
        "phase_seconds": args.phase_seconds,
    }
    bench.log(
        f"capture summary: {json.dumps({k: summary.get(k) for k in ('events_stored', 'batches', 'priority_batches')})}"
    )
    return result


def phase_cpu(samples: list[dict], begin: float, end: float, messages: int) -> dict:
    """The machine's busy CPU and each role's, between the samples nearest the phase's bounds, per message."""
    inside = [s for s in samples if begin <= s["t"] <= end]
    if len(inside) < 2 or not messages:
        return {"cpu_ms_per_event": None, "cpu_ms_per_event_by_role": {}}
    first, last = inside[0], inside[-1]
    share = messages * (last["t"] - first["t"]) / (end - begin)  # the messages of the sampled span
    roles: dict[str, float] = {}
    for pid, (role, _, seconds) in last["procs"].items():
        if role.startswith("servers:") or role == "simulator":
            continue
        roles[role] = roles.get(role, 0.0) + seconds - (first["procs"][pid][2] if pid in first["procs"] else 0.0)
    for pid, (role, _, seconds) in last["procs"].items():
        if role.startswith("servers:"):
            roles[role] = (
                roles.get(role, 0.0) + seconds - (first["procs"][pid][2] if pid in first["procs"] else seconds)
            )
    return {
        "cpu_ms_per_event": round((last["busy"] - first["busy"]) * 1000 / share, 3),
        "cpu_ms_per_event_by_role": {role: round(s * 1000 / share, 3) for role, s in sorted(roles.items()) if s > 0},
    }


if __name__ == "__main__":
    sys.exit(main())
