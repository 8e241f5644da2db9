"""The same-run baselines of the queue benchmarks: what plain Celery does on this machine now.

A plain prefork worker (concurrency 1, the project's celeryconfig, no service code)
consumes ``bench.plain``; the benchmarks compare the project's figures with its:

- ``round_trips``: ``send_task`` → task start on the idle worker (``celery_p99_ms``);
- ``confirm_rate``: ``send_task`` with publisher confirms, one at a time, to a queue
  nobody consumes (``celery_confirm_per_s``);
- ``worker_rate``: the no-op tasks per second the worker runs from a backlog
  (``celery_worker_items_per_s``).

The worker imports this module (``--include scripts.bench.celery_baseline``) for its
two tasks; start it with ``worker_argv``.
"""

from __future__ import annotations

import json
import sys
import time

from celery import shared_task

PROBE_TASK = "bench.probe"
NOOP_TASK = "bench.noop"
PLAIN_QUEUE = "bench.plain"
CONFIRM_QUEUE = "bench.confirm"

_probe_redis = None


@shared_task(name=PROBE_TASK, ignore_result=True)
def probe(key: str, sent: float) -> None:
    """Push the task's start time (and its send time) to Redis."""
    global _probe_redis
    started = time.time()
    if _probe_redis is None:
        import redis
        from django.conf import settings

        _probe_redis = redis.Redis.from_url(settings.REDIS_URL)
    _probe_redis.rpush(key, json.dumps([sent, started]))


@shared_task(name=NOOP_TASK, ignore_result=True)
def noop() -> None:
    """Nothing: what a worker costs per task on its own."""


def worker_argv(node: str, loglevel: str = "WARNING") -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "project.celery:app", "worker", "-Q", PLAIN_QUEUE,
        "-n", f"plain@%h-{node}", "--pool", "prefork", "--concurrency", "1", "--prefetch-multiplier", "1",
        "--task-events", "--without-gossip", "--without-mingle", "--include", "scripts.bench.celery_baseline",
        "--loglevel", loglevel,
    ]  # fmt: skip


def _declare(queue: str) -> None:
    from project.queue_system.broker import close_quietly, open_connection

    connection = open_connection()
    try:
        connection.channel().queue_declare(queue, durable=True, auto_delete=False, arguments={"x-max-priority": 10})
    finally:
        close_quietly(connection)


def _ready(queue: str) -> int:
    from project.queue_system.broker import close_quietly, open_connection

    connection = open_connection()
    try:
        _, ready, _ = connection.channel().queue_declare(queue, passive=True)
        return ready
    finally:
        close_quietly(connection)


def confirm_rate(messages: int, key: str) -> float:
    """Confirmed ``send_task`` per second, one at a time, to a queue nobody consumes."""
    from project.celery import app

    # A bare send_task: no task-sent event (the project's dispatcher sends none either).
    app.conf.task_send_sent_event = False
    assert app.conf.broker_transport_options.get("confirm_publish") is True
    _declare(CONFIRM_QUEUE)
    held_before = _ready(CONFIRM_QUEUE)
    for _ in range(20):  # connection, producer and queue declaration out of the timing
        app.send_task(PROBE_TASK, args=[key + ":unused", 0.0], queue=CONFIRM_QUEUE)
    started = time.perf_counter()
    for _ in range(messages):
        app.send_task(PROBE_TASK, args=[key + ":unused", 0.0], queue=CONFIRM_QUEUE)
    elapsed = time.perf_counter() - started
    held = _ready(CONFIRM_QUEUE) - held_before
    if held != messages + 20:
        raise RuntimeError(f"{CONFIRM_QUEUE} holds {held} new messages, expected {messages + 20}")
    return messages / elapsed


def round_trips(redis_client, key: str, *, samples: int, warmup: int, gap_ms: float) -> list[float]:
    """``send_task`` → start on the idle plain worker, ms, one task at a time."""
    from project.celery import app

    app.conf.task_send_sent_event = False
    latencies = []
    for n in range(warmup + samples):
        sent = time.time()
        app.send_task(PROBE_TASK, args=[key, sent], queue=PLAIN_QUEUE)
        popped = redis_client.blpop(key, timeout=30)
        if popped is None:
            raise TimeoutError("the plain Celery worker did not run the probe task within 30 s")
        _, started_at = json.loads(popped[1])
        if n >= warmup:
            latencies.append((started_at - sent) * 1000)
        time.sleep(gap_ms / 1000)
    return latencies


def worker_rate(redis_client, key: str, *, tasks: int) -> float:
    """No-op tasks per second the plain worker runs from a backlog: ``tasks`` published at once
    (confirmed in pipelined batches, like the project's dispatcher does), then a probe behind
    them; the rate counts what was still queued once all were published."""
    from project.queue_system.broker import close_quietly, open_connection
    from project.queue_system.publisher import ConfirmingPublisher
    from project.queue_system.task_messages import celery_task_message

    _declare(PLAIN_QUEUE)
    connection = open_connection()
    try:
        publisher = ConfirmingPublisher(connection)
        for start in range(0, tasks, 200):
            for n in range(start, min(tasks, start + 200)):
                publisher.publish(celery_task_message(NOOP_TASK, [], 5), "", PLAIN_QUEUE, key=n)
            if not all(publisher.wait().values()):
                raise RuntimeError("the broker refused a no-op task of the worker baseline")
        published = time.time()
        left = _ready(PLAIN_QUEUE)
        publisher.publish(celery_task_message(PROBE_TASK, [key, published], 5), "", PLAIN_QUEUE, key="probe")
        publisher.wait()
    finally:
        close_quietly(connection)
    popped = redis_client.blpop(key, timeout=max(60, tasks / 20))
    if popped is None:
        raise TimeoutError("the plain Celery worker did not reach the end of its backlog")
    _, finished = json.loads(popped[1])
    if left < tasks // 4:
        raise RuntimeError(f"only {left} no-op tasks were left once the backlog was published: raise the count")
    return left / (finished - published)
