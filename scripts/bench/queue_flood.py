#!/usr/bin/env python
"""Queue flood: N events of a mix through the real EventDispatcher into a SYNC and an
ASYNC service, real Celery workers (``python -m workers <slug>``) on the real broker.

    .venv/bin/python scripts/bench/queue_flood.py [--events 5000] [--mix like=70,comment=20,gift=5,follow=5]
        [--handler-ms 0] [--async-concurrency 8] [--batch 100] [--samples 200] [--phase-times] [--task-lines]

It uses its own database (``<DATABASE_URL name>_flood``, created and migrated if
needed; one run at a time, serialised by a PostgreSQL advisory lock), creates its
own two services, session and events there and deletes them at the end, and runs
in a throw-away RabbitMQ vhost. The discard accounting consumer runs as in
production (``manage.py consume_discarded``, what ``workers.supervisor`` starts).

Phases, in this order:
  1. Celery baselines (a plain queue, a plain Celery worker, the project's
     celeryconfig, no task-sent events): ``send_task`` one at a time with
     publisher confirms to a queue nobody consumes; then the round trip
     ``send_task`` → handler start on an idle worker (time.time() in Redis).
  2. Keep latency: single gifts dispatched one at a time (``dispatch``) to the
     idle SYNC worker, the only subscriber meanwhile (one task for one worker,
     as in the baseline); the handler writes ``time.time()`` into Redis. The
     log splits it: call → insert, insert → claimed, claimed → handler.
  3. SYNC worker rate: a backlog of non-discardable items for the SYNC service
     only, no-op handler; then the same for the plain Celery worker's no-op task
     (``celery_baseline.worker_rate``).
  4. Flood: batches of the mix to both services through the pipelined
     dispatcher the capture uses (``queue_system.streaming.DispatchPipeline``:
     this thread creates each batch's items, another publishes them and reads
     the confirms as they come, a third marks them), while the workers run and
     the discardable queues are sampled with passive declares; then everything
     must settle. ``--sequential`` floods through ``EventDispatcher.dispatch_many``
     instead, one batch after the other (insert, publish, confirm, mark, arm).
     ``--phase-times`` logs where the flood's time went, step by step: for the
     pipeline, the caller's insert and its wait for room to submit (together the
     caller's whole time), the publishing thread's encoding and the marking
     thread's UPDATEs; with ``--sequential``, each step of dispatch_many.

The last line printed is one JSON object:
  dispatched_per_s       flood events per second through the pipeline (or
                         dispatch_many with --sequential), every item created in
                         PostgreSQL, publisher-confirmed and marked dispatched (wall
                         time from the first batch until the last one is marked);
                         "dispatch" names which
  dispatched_items_per_s the same in QueueItems (one broker message each, as one
                         celery_confirm_per_s task): two per event here, one per service
  keep_p50_ms/p99_ms     dispatch call → handler start of a non-discardable item
                         (a gift) on an idle SYNC worker
  worker_items_per_s     items per second the SYNC worker completes from a backlog,
                         no-op handler (counted once the dispatching is over)
  worker_cpu_ms_per_item the SYNC worker's CPU (process and prefork child) per item of
                         that backlog: steadier than the rate when the machine's speed
                         varies; worker_task_lines says whether the workers wrote a
                         line per task (--task-lines)
  flood_cpu_busy_pct     the whole machine's CPU busy during the flood (every process,
                         the servers included; 100 = every core busy all along)
  flood_cpu_ms_per_event the machine's busy CPU time during the flood per flood event: at
                         full load, the cores divided by it bound dispatched_per_s
  inversions             SYNC items (all phases) started while an item of higher
                         priority was waiting: dispatched (confirmed) before the
                         worker finished its previous item, i.e. before it asked
                         the broker for the next one, and started later (must be 0)
  completed/failed/discarded/lost
                         final states of every item of the run; lost = neither
                         completed, failed nor discarded at the end (must be 0)
  max_discardable_depth  most ready messages seen in a discardable queue during the
                         flood and its settling (max_queue_size next to it)
  celery_confirm_per_s   plain Celery send_task with confirm_publish, one at a time
  celery_p99_ms          plain Celery send_task → handler start on an idle worker, p99
  celery_worker_items_per_s
                         a plain Celery prefork worker (concurrency 1) on a backlog of
                         no-op tasks; worker_vs_celery_worker = worker_items_per_s / it
                         (target ≥ 0.5)
  dispatched_vs_celery_confirm, keep_vs_celery_p99
                         the targets' ratios: dispatched_per_s / celery_confirm_per_s
                         (≥ 4), keep_p99_ms / celery_p99_ms (≤ 2)
  broker_ceiling_events_per_s
                         measured first, with nothing else running: two-service flood
                         events/s RabbitMQ alone takes right now (broker_ceiling.py's
                         flood mix); dispatched_vs_ceiling = dispatched_per_s / it, a
                         figure that moves less with the machine's speed
  machine                python_loop_ms, pipe_round_trip_us, cpu_steal_pct
                         (bench_setup.MachineGauge)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import celery_baseline  # noqa: E402
from bench_setup import (  # noqa: E402 - after the path set-up
    MachineGauge,
    cpu_busy_seconds,
    log,
    use_bench_database,
)
from broker_ceiling import flood_events_per_s  # noqa: E402

from project.queue_system.base_service import BaseQueueService  # noqa: E402
from tests.support.broker import DepthSampler  # noqa: E402
from tests.support.figures import count_inversions, percentile  # noqa: E402
from tests.support.servers import create_vhost, delete_vhost  # noqa: E402
from tests.support.waiting import wait_for  # noqa: E402

KEY_ENV = "QUEUE_FLOOD_REDIS_KEY"
SERVICE_CLASS = "scripts.bench.queue_flood.FloodService"
STREAMER = "queue-flood"
SLUG_PREFIX = "flood-"
LOCK_KEY = 0x7E5F_10D0  # pg_advisory_lock: one flood run per database at a time

ALIASES = {
    "gift": "GiftEvent",
    "subscribe": "SubscribeEvent",
    "sub": "SubscribeEvent",
    "follow": "FollowEvent",
    "comment": "CommentEvent",
    "chat": "CommentEvent",
    "share": "ShareEvent",
    "like": "LikeEvent",
    "join": "JoinEvent",
}


# -- code that runs inside the workers -------------------------------------


class FloodService(BaseQueueService):
    """The bench's service: records its start time for probe events, sleeps ``ms`` for the others."""

    def on_start(self) -> None:
        import redis
        from django.conf import settings

        self._redis = redis.Redis.from_url(settings.REDIS_URL)
        self._key = f"{os.environ.get(KEY_ENV, 'queue-flood')}:{self.service.slug}"

    def process_event(self, live_event, queue_item) -> bool:
        started = time.time()
        data = live_event.event_data or {}
        if data.get("probe"):
            self._redis.rpush(self._key, json.dumps([queue_item.pk, started]))
        ms = float(data.get("ms") or 0)
        if ms > 0:
            time.sleep(ms / 1000.0)
        return True


# -- helpers ------------------------------------------------------------------


def parse_mix(text: str) -> dict[str, float]:
    mix: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, _, weight = part.partition("=")
        name = name.strip()
        event_type = ALIASES.get(name.lower(), name)
        if not event_type.endswith("Event"):
            raise SystemExit(f"error: unknown event kind {name!r} in --mix (use {', '.join(sorted(ALIASES))})")
        mix[event_type] = mix.get(event_type, 0.0) + float(weight or 1)
    if not mix or sum(mix.values()) <= 0:
        raise SystemExit("error: --mix has no positive weight")
    return mix


def mix_counts(mix: dict[str, float], total: int) -> dict[str, int]:
    """Exact counts summing to ``total`` (largest remainder)."""
    weight = sum(mix.values())
    raw = {t: total * w / weight for t, w in mix.items()}
    counts = {t: int(v) for t, v in raw.items()}
    for t in sorted(raw, key=lambda t: raw[t] - counts[t], reverse=True)[: total - sum(counts.values())]:
        counts[t] += 1
    return counts


class Processes:
    """Subprocesses in their own process groups, output in log files, stopped in reverse order."""

    def __init__(self, logdir: Path, env: dict[str, str]) -> None:
        self.logdir = logdir
        self.env = env
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        with open(self.logdir / f"{name}.log", "ab") as out:
            self.procs[name] = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env or self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def log(self, name: str) -> str:
        path = self.logdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def check(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log(name)[-4000:]}")

    def stop_all(self, timeout: float = 30.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"{name} did not stop in {timeout:.0f} s; killed")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def consumers(names: list[str]) -> dict[str, int]:
    from project.queue_system.broker import close_quietly, open_connection, passive_counts

    connection = open_connection()
    try:
        return {n: (c[1] if c else 0) for n, c in passive_counts(connection, names).items()}
    finally:
        close_quietly(connection)


def wait_consuming(procs: Processes, queues_by_proc: dict[str, str], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    waiting = dict(queues_by_proc)
    while waiting:
        for name in waiting:
            procs.check(name)
        counts = consumers(list(waiting.values()))
        waiting = {p: q for p, q in waiting.items() if not counts.get(q)}
        if waiting and time.monotonic() > deadline:
            raise TimeoutError(f"not consuming after {timeout:.0f} s: {', '.join(waiting)}")
        time.sleep(0.2)


# -- phases -------------------------------------------------------------------


def celery_baselines(args, redis_client, key: str) -> tuple[float, list[float]]:
    """Plain Celery: confirmed send_task rate to an unconsumed queue, then round trips to an idle worker."""
    rate = celery_baseline.confirm_rate(args.celery_messages, key)
    log(f"celery: {args.celery_messages} confirmed send_task = {rate:.0f}/s")
    latencies = celery_baseline.round_trips(
        redis_client, f"{key}:plain", samples=args.samples, warmup=args.warmup, gap_ms=args.gap_ms
    )
    log(f"celery round trip: p50 {percentile(latencies, 0.5):.2f} ms p99 {percentile(latencies, 0.99):.2f} ms")
    return rate, latencies


def keep_latency(args, dispatcher, session, sync, asyncs, redis_client, key: str) -> list[float]:
    """Single gifts dispatched one at a time to the idle SYNC worker (the only subscriber meanwhile,
    as the Celery baseline has one task for one worker); the handler writes time.time() to Redis."""
    from project.queue_system.models import QueueItem, Service
    from project.tiktok_events.models import LiveEvent

    now = time_now()
    events = LiveEvent.objects.bulk_create(
        [
            LiveEvent(
                session=session,
                event_type="GiftEvent",
                received_at=now,
                user_unique_id=f"probe{n}",
                event_data={"probe": True, "gift_name": "Rose", "count": 1},
            )
            for n in range(args.warmup + args.samples)
        ]
    )
    sync_key = f"{key}:{sync.slug}"
    latencies = []
    steps: list[tuple[float, float, float]] = []
    Service.objects.filter(pk=asyncs.pk).update(is_active=False)
    try:
        for n, event in enumerate(events):
            sent = time.time()
            result = dispatcher.dispatch(event)
            if result.confirmed != result.created or result.created != 1:
                raise RuntimeError(f"a probe gift was not confirmed: {result}")
            popped = redis_client.blpop(sync_key, timeout=30)
            if popped is None:
                raise TimeoutError("the SYNC worker did not start a probe gift within 30 s")
            item_id, handler_at = json.loads(popped[1])
            item = QueueItem.objects.filter(pk=item_id)
            # Idle again before the next one.
            wait_for(
                lambda item=item: item.filter(status=QueueItem.Status.COMPLETED).exists(),
                30,
                what="a probe gift to complete",
                interval=0.002,
            )
            if n >= args.warmup:
                latencies.append((handler_at - sent) * 1000)
                created_at, started_at = item.values_list("created_at", "started_at").get()
                steps.append(
                    (
                        (created_at.timestamp() - sent) * 1000,
                        (started_at.timestamp() - created_at.timestamp()) * 1000,
                        (handler_at - started_at.timestamp()) * 1000,
                    )
                )
            time.sleep(args.gap_ms / 1000)
    finally:
        Service.objects.filter(pk=asyncs.pk).update(is_active=True)
    log(f"keep latency: p50 {percentile(latencies, 0.5):.2f} ms p99 {percentile(latencies, 0.99):.2f} ms")
    for n, label in enumerate(("call → insert", "insert → claimed (commit, publish, worker)", "claimed → handler")):
        values = [step[n] for step in steps]
        log(f"  {label:44s} p50 {percentile(values, 0.5):6.2f} ms p99 {percentile(values, 0.99):6.2f} ms")
    return latencies


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants (a SYNC worker's prefork child runs the tasks)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15)
            for task in Path(f"/proc/{current}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def worker_rate(args, dispatcher, session, sync, asyncs, worker_pid: int) -> tuple[float, float]:
    """A backlog for the SYNC service alone (the ASYNC one is inactive meanwhile), no-op handler.

    Returns items/s and the worker's CPU ms per item (its process and its prefork child,
    over the whole backlog: a steadier figure than the rate on a machine whose speed varies).
    """
    from django.db.models import Max

    from project.queue_system.models import QueueItem, Service
    from project.tiktok_events.models import LiveEvent

    now = time_now()
    kinds = ["GiftEvent", "FollowEvent"]
    events = LiveEvent.objects.bulk_create(
        [
            LiveEvent(session=session, event_type=kinds[n % 2], received_at=now, user_unique_id=f"w{n}")
            for n in range(args.worker_items)
        ]
    )
    mark = last_item_id()
    cpu_before = tree_cpu_seconds(worker_pid)
    Service.objects.filter(pk=asyncs.pk).update(is_active=False)
    try:
        for start in range(0, len(events), 200):
            result = dispatcher.dispatch_many(events[start : start + 200])
            if result.pending or result.confirmed != result.created:
                raise RuntimeError(f"worker backlog not confirmed: {result}")
        dispatched = time.time()
    finally:
        Service.objects.filter(pk=asyncs.pk).update(is_active=True)
    # Queries on (service, status) and id ranges: the indexes the product has (the bench's
    # tables are nearly empty between runs, so a join would get a poor plan).
    items = QueueItem.objects.filter(service=sync, pk__gt=mark)
    wait_for(
        lambda: not QueueItem.objects.filter(service=sync, status__in=OPEN).exists(),
        max(60, args.worker_items / 20),
        what="the SYNC worker's backlog to complete",
        interval=0.1,
    )
    cpu_ms_per_item = (tree_cpu_seconds(worker_pid) - cpu_before) * 1000 / len(events)
    epoch = dispatched_datetime(dispatched)
    after = items.filter(started_at__gte=epoch)
    count = after.count()
    last = items.aggregate(last=Max("finished_at"))["last"]
    if count < args.worker_items // 4:
        raise RuntimeError(f"only {count} items were left once the backlog was dispatched: raise --worker-items")
    rate = count / (last - epoch).total_seconds()
    log(
        f"SYNC worker: {count} items from a backlog in {(last - epoch).total_seconds():.2f} s = {rate:.0f}/s; "
        f"{cpu_ms_per_item:.2f} ms of its CPU per item"
    )
    return rate, cpu_ms_per_item


def flood(args, dispatcher, session, services, mix) -> dict:
    from project.queue_system import queues
    from project.queue_system.models import QueueItem, ServiceEventConfig
    from project.queue_system.streaming import DispatchPipeline
    from project.tiktok_events.models import LiveEvent

    counts = mix_counts(mix, args.events)
    kinds = [t for t, c in counts.items() for _ in range(c)]
    random.Random(args.seed).shuffle(kinds)
    now = time_now()
    events: list = []
    for start in range(0, len(kinds), 1000):
        events += LiveEvent.objects.bulk_create(
            [
                LiveEvent(
                    session=session,
                    event_type=kind,
                    received_at=now,
                    user_unique_id=f"f{start + n}",
                    event_data={"ms": args.handler_ms, "comment": "hola", "count": 1},
                )
                for n, kind in enumerate(kinds[start : start + 1000])
            ]
        )
    watched = [
        queues.discardable_queue_name(c.service.slug, c.event_type)
        for c in ServiceEventConfig.objects.filter(service__in=services, discardable=True).select_related("service")
    ]
    mark = last_item_id()
    sampler = DepthSampler(watched, args.sample_ms / 1000)
    sampler.start()
    log(f"flood: {args.events} events {counts} in batches of {args.batch}, handler {args.handler_ms:g} ms ...")
    confirmed = created = pending = 0
    pipeline = None if args.sequential else DispatchPipeline()
    timings = None
    if args.phase_times:
        timings = PhaseTimes(sequential_steps(dispatcher) if pipeline is None else pipeline_steps(pipeline))
    try:
        busy_before = cpu_busy_seconds()
        started = time.perf_counter()
        for number, start in enumerate(range(0, len(events), args.batch)):
            batch = events[start : start + args.batch]
            if pipeline is None:
                result = dispatcher.dispatch_many(batch)
                created += result.created
                confirmed += result.confirmed
                pending += result.pending
            else:
                created += pipeline.dispatch_many(batch, number)
        if pipeline is not None:
            outcomes = pipeline.finish()
            pending = sum(outcome.unconfirmed for outcome in outcomes)
            confirmed = created - pending
        elapsed = time.perf_counter() - started
        busy_after = cpu_busy_seconds()
        busy = None if busy_before is None or busy_after is None else busy_after - busy_before
        log(f"flood dispatched in {elapsed:.2f} s: {created} items created, {confirmed} confirmed, {pending} pending")
        if busy is not None:
            log(f"  the machine's CPU meanwhile: {busy:.2f} s busy of {elapsed * os.cpu_count():.2f} s")
        if timings is not None:
            timings.report(elapsed)
        still = QueueItem.objects.filter(service__in=services, status__in=OPEN)
        deadline = time.monotonic() + args.settle_timeout
        last_report = time.monotonic()
        while still.exists() and time.monotonic() < deadline:
            if sampler.error is not None:
                raise RuntimeError(f"depth sampler failed: {sampler.error!r}")
            if time.monotonic() - last_report > 10:
                open_by = Counter(still.values_list("service__slug", "event_type", "status"))
                log(f"  settling: {sum(open_by.values())} items still open: {dict(open_by)}")
                last_report = time.monotonic()
            time.sleep(0.1)
        settled = time.perf_counter() - started
    finally:
        sampler.stop()
        if pipeline is not None:
            pipeline.close()
    # Only events whose every item was created and confirmed count as dispatched.
    unconfirmed_events = (
        QueueItem.objects.filter(service__in=services, pk__gt=mark, dispatched_at__isnull=True)
        .values("live_event_id")
        .distinct()
        .count()
    )
    log(
        f"flood settled {settled:.1f} s after the first dispatch;"
        f" {sampler.rounds} depth samples, {sampler.reconnects} reconnects"
    )
    log(f"  max depths: {sampler.maxima}")
    confirmed_items = QueueItem.objects.filter(service__in=services, pk__gt=mark, dispatched_at__isnull=False).count()
    return {
        "elapsed": elapsed,
        "dispatched_events": len(events) - unconfirmed_events,
        "dispatched_items": confirmed_items,
        "max_depth": max(sampler.maxima.values(), default=0),
        "maxima": sampler.maxima,
        "cpu_busy_s": busy,
        "mark": mark,
    }


def flood_cpu(flooded: dict, events: int) -> dict:
    """The whole machine's CPU during the flood (every process: servers, workers, this one)."""
    busy = flooded["cpu_busy_s"]
    if busy is None:
        return {"flood_cpu_busy_pct": None, "flood_cpu_ms_per_event": None}
    return {
        "flood_cpu_busy_pct": round(100 * busy / (flooded["elapsed"] * os.cpu_count()), 1),
        "flood_cpu_ms_per_event": round(busy * 1000 / events, 3),
    }


def sequential_steps(dispatcher) -> list[tuple]:
    """dispatch_many's steps, one after the other on the calling thread."""
    from project.queue_system import dispatcher as module
    from project.queue_system import publisher

    return [
        (dispatcher, "create_items", "insert"),
        (module, "mark_dispatched", "mark dispatched_at"),
        (module, "arm_many", "arm (tokens + tickets)"),
        (publisher.ConfirmingPublisher, "wait", "confirm waits (all)"),
        (publisher.ConfirmingPublisher, "publish", "encode + buffer"),
    ]


def pipeline_steps(pipeline) -> list[tuple]:
    """The pipeline's steps, by thread: the caller's insert and its wait for room (together
    the caller's whole time), the publishing thread's encoding, the marking thread's UPDATEs."""
    from project.queue_system import publisher
    from project.queue_system import streaming as module

    return [
        (pipeline.dispatcher, "create_items", "caller: insert"),
        (pipeline, "submit", "caller: wait to submit"),
        (publisher.ConfirmingPublisher, "publish", "publisher: encode + buffer"),
        (module, "mark_dispatched", "marker: mark dispatched_at"),
    ]


class PhaseTimes:
    """--phase-times: wall time of the dispatcher's steps during the flood (wrapped, then unwrapped),
    with their median and 90th percentile per call."""

    def __init__(self, steps: list[tuple]) -> None:
        self.durations: dict[str, list[float]] = {}
        self._undo = []
        for owner, name, label in steps:
            original = getattr(owner, name)
            self._undo.append((owner, name, original, name in vars(owner)))
            setattr(owner, name, self._timed(original, label))

    def _timed(self, function, label):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.durations.setdefault(label, []).append(time.perf_counter() - started)

        return timed

    def report(self, elapsed: float) -> None:
        for owner, name, original, own in self._undo:
            if own:
                setattr(owner, name, original)
            else:
                delattr(owner, name)
        for label, calls in sorted(self.durations.items(), key=lambda item: -sum(item[1])):
            total = sum(calls)
            log(
                f"  {label:28s} {total:6.2f} s ({100 * total / elapsed:5.1f}% of the flood) in {len(calls)} calls,"
                f" p50 {1000 * percentile(calls, 0.5):.1f} ms p90 {1000 * percentile(calls, 0.9):.1f} ms"
            )


OPEN = ["pending", "processing"]


def last_item_id() -> int:
    from django.db.models import Max

    from project.queue_system.models import QueueItem

    return QueueItem.objects.aggregate(last=Max("pk"))["last"] or 0


def time_now():
    from django.utils import timezone

    return timezone.now()


def dispatched_datetime(epoch: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, tz=UTC)


# -- main ---------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5000, help="events in the flood")
    parser.add_argument("--mix", default="like=70,comment=20,gift=5,follow=5", help="kind=weight,...")
    parser.add_argument("--handler-ms", type=float, default=0.0, help="time each flood event spends in its handler")
    parser.add_argument("--async-concurrency", type=int, default=8, help="thread pool of the ASYNC service")
    parser.add_argument("--max-queue-size", type=int, default=100, help="max_queue_size of both services")
    parser.add_argument("--batch", type=int, default=100, help="events per dispatch_many call in the flood")
    parser.add_argument("--samples", type=int, default=200, help="latency samples (keep and plain Celery)")
    parser.add_argument("--warmup", type=int, default=10, help="latency samples run first and not counted")
    parser.add_argument("--gap-ms", type=float, default=5.0, help="pause between latency samples")
    parser.add_argument("--worker-items", type=int, default=2000, help="backlog for the SYNC worker rate")
    parser.add_argument("--celery-messages", type=int, default=2000, help="confirmed send_task for the baseline")
    parser.add_argument("--sample-ms", type=float, default=20.0, help="depth sampling interval")
    parser.add_argument("--settle-timeout", type=float, default=120.0, help="seconds for the flood to settle")
    parser.add_argument("--seed", type=int, default=7, help="shuffle of the mix")
    parser.add_argument("--worker-loglevel", default="INFO")
    parser.add_argument(
        "--task-lines",
        action="store_true",
        help="the service workers write a line per task (run_queue_workers --verbose); by default they do not, "
        "as under run_queue_workers without --verbose (python -m workers --quiet-tasks)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="print where the worker logs are and keep them")
    parser.add_argument(
        "--sequential", action="store_true", help="flood through EventDispatcher.dispatch_many, one batch at a time"
    )
    parser.add_argument(
        "--phase-times", action="store_true", help="print where the dispatcher's threads spend the flood's time"
    )
    args = parser.parse_args()
    mix = parse_mix(args.mix)

    use_bench_database("flood")
    gauge = MachineGauge()
    ceiling = flood_events_per_s()
    import redis
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from project.celery import app
    from project.queue_system.dispatcher import EventDispatcher
    from project.queue_system.models import QueueItem, Service, ServiceEventConfig
    from project.queue_system.queues import main_queue_name
    from project.queue_system.seed_data import DINOCHROME_EVENTS, OVERLAYS_EVENTS
    from project.tiktok_events.models import LiveSession
    from workers.command import launcher_argv

    with connection.cursor() as cursor:
        log("waiting for the flood lock (one run per database) ...")
        cursor.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
    call_command("migrate", verbosity=0)
    # Rows a killed run left behind (we hold the lock: no other run is using them).
    LiveSession.objects.filter(streamer=STREAMER).delete()
    Service.objects.filter(slug__startswith=SLUG_PREFIX).delete()
    others = list(Service.objects.filter(is_active=True).values_list("slug", flat=True))
    if others:
        raise SystemExit(f"error: {settings.DATABASES['default']['NAME']} has other active services: {others}")

    run = uuid.uuid4().hex[:6]
    key = f"queue-flood:{run}"
    redis_client = redis.Redis.from_url(settings.REDIS_URL)
    created = create_vhost("queue-flood")
    vhost, broker_url = created.name, created.broker_url
    settings.CELERY_BROKER_URL = broker_url
    app.conf.broker_url = broker_url
    db = settings.DATABASES["default"]
    env = dict(
        os.environ,
        CELERY_BROKER_URL=broker_url,
        REDIS_URL=settings.REDIS_URL,
        PYTHONUNBUFFERED="1",
        **{KEY_ENV: key},
    )
    env["DATABASE_URL"] = os.environ["DATABASE_URL"]
    log(f"database {db['NAME']}, vhost {vhost}, run {run}")

    services = []
    for suffix, mode, table in (("sync", "SYNC", DINOCHROME_EVENTS), ("async", "ASYNC", OVERLAYS_EVENTS)):
        service = Service.objects.create(
            name=f"Flood {run} {suffix}",
            slug=f"{SLUG_PREFIX}{run}-{suffix}",
            service_class=SERVICE_CLASS,
            mode=mode,
            concurrency=args.async_concurrency if mode == "ASYNC" else 1,
            max_queue_size=args.max_queue_size,
        )
        ServiceEventConfig.objects.bulk_create(
            [ServiceEventConfig(service=service, event_type=t, priority=p, discardable=d) for t, p, d in table]
        )
        services.append(service)
    sync, asyncs = services
    session = LiveSession.objects.create(
        name=f"queue flood {run}", streamer=STREAMER, started_at=time_now(), status=LiveSession.Status.LIVE
    )

    logdir = Path(tempfile.mkdtemp(prefix="queue-flood-"))
    procs = Processes(logdir, env)
    dispatcher = EventDispatcher()
    result: dict = {}
    try:
        for service in services:
            argv = launcher_argv(
                service.slug, node_suffix=run, loglevel=args.worker_loglevel, quiet_tasks=not args.task_lines
            )
            procs.start(service.slug, argv)
        procs.start("plain", celery_baseline.worker_argv(run, args.worker_loglevel))
        procs.start(DISCARDS, [sys.executable, str(ROOT / "manage.py"), "consume_discarded"])
        log("starting the workers ...")
        wait_consuming(
            procs, {s.slug: main_queue_name(s.slug) for s in services} | {"plain": celery_baseline.PLAIN_QUEUE}
        )
        wait_consuming(procs, {DISCARDS: "events.discarded"})

        confirm_rate, celery_latencies = celery_baselines(args, redis_client, key)
        keep = keep_latency(args, dispatcher, session, sync, asyncs, redis_client, key)
        items_per_s, cpu_per_item = worker_rate(args, dispatcher, session, sync, asyncs, procs.procs[sync.slug].pid)
        celery_items_per_s = celery_baseline.worker_rate(redis_client, f"{key}:noop", tasks=args.worker_items)
        log(f"plain Celery prefork worker: {celery_items_per_s:.0f} no-op tasks/s from a backlog")
        flooded = flood(args, dispatcher, session, services, mix)
        for name in procs.procs:
            procs.check(name)

        items = QueueItem.objects.filter(service__in=services)
        states = {s: 0 for s in QueueItem.Status.values}
        for status in items.values_list("status", flat=True):
            states[status] += 1
        by_type: dict[str, dict[str, int]] = {}
        flood_items = items.filter(pk__gt=flooded["mark"])
        for slug, event_type, status in flood_items.values_list("service__slug", "event_type", "status"):
            row = by_type.setdefault(f"{slug.rsplit('-', 1)[1]}/{event_type}", {})
            row[status] = row.get(status, 0) + 1
        log(f"flood items by service/type: {json.dumps(by_type, sort_keys=True)}")
        log(f"all items of the run: {states}")
        rows = list(
            items.filter(service=sync, started_at__isnull=False).values_list(
                "priority", "dispatched_at", "started_at", "finished_at"
            )
        )
        inversions, strict = count_inversions(rows)
        log(f"SYNC inversions: {inversions} (strict, started_at as the decision point: {strict}) of {len(rows)}")
        result = {
            "dispatched_per_s": round(flooded["dispatched_events"] / flooded["elapsed"], 1),
            "dispatched_items_per_s": round(flooded["dispatched_items"] / flooded["elapsed"], 1),
            "keep_p50_ms": round(percentile(keep, 0.5), 2),
            "keep_p99_ms": round(percentile(keep, 0.99), 2),
            "worker_items_per_s": round(items_per_s, 1),
            "worker_cpu_ms_per_item": round(cpu_per_item, 3),
            "celery_worker_items_per_s": round(celery_items_per_s, 1),
            "worker_vs_celery_worker": round(items_per_s / celery_items_per_s, 3),
            **flood_cpu(flooded, args.events),
            "worker_task_lines": args.task_lines,
            "inversions": inversions,
            "completed": states[QueueItem.Status.COMPLETED],
            "failed": states[QueueItem.Status.FAILED],
            "discarded": states[QueueItem.Status.DISCARDED],
            "lost": states[QueueItem.Status.PENDING] + states[QueueItem.Status.PROCESSING],
            "max_discardable_depth": flooded["max_depth"],
            "max_queue_size": args.max_queue_size,
            "celery_confirm_per_s": round(confirm_rate, 1),
            "celery_p50_ms": round(percentile(celery_latencies, 0.5), 2),
            "celery_p99_ms": round(percentile(celery_latencies, 0.99), 2),
            "dispatched_vs_celery_confirm": round(flooded["dispatched_events"] / flooded["elapsed"] / confirm_rate, 3),
            "keep_vs_celery_p99": round(percentile(keep, 0.99) / percentile(celery_latencies, 0.99), 3),
            "events": args.events,
            "batch": args.batch,
            "dispatch": "sequential" if args.sequential else "pipeline",
            "handler_ms": args.handler_ms,
            "async_concurrency": args.async_concurrency,
            "broker_ceiling_events_per_s": ceiling,
            "dispatched_vs_ceiling": round(flooded["dispatched_events"] / flooded["elapsed"] / ceiling, 3),
            "machine": gauge.figures(),
        }
    finally:
        cleanup = [
            dispatcher.close,
            procs.stop_all,
            lambda: QueueItem.objects.filter(service__in=services).delete(),
            session.delete,
            lambda: Service.objects.filter(pk__in=[s.pk for s in services]).delete(),
            lambda: delete_vhost(created),
            lambda: redis_client.delete(*redis_client.keys(f"{key}*") or [f"{key}:none"]),
        ]
        for step in cleanup:
            try:
                step()
            except Exception as exc:
                log(f"cleanup step failed: {type(exc).__name__}: {exc}")
        if args.keep_logs or not result:
            log(f"worker logs: {logdir}")
        else:
            shutil.rmtree(logdir, ignore_errors=True)
    print(json.dumps(result))
    return 0 if result["lost"] == 0 and result["inversions"] == 0 else 1


DISCARDS = "discard-accounting"

if __name__ == "__main__":
    sys.exit(main())
