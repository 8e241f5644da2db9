# Design: docs/architecture.md#processes
"""The ``celery worker`` command line of one service.

SYNC: one prefork child, prefetch 1 — one event at a time, always the highest
priority waiting. ASYNC: a thread pool of ``service.concurrency`` (the
service's handler is I/O bound: overlays, HTTP calls). Either way the worker
consumes only ``svc.<slug>`` and is named ``<slug>@<host>`` so Flower shows one
worker per service.
"""

from __future__ import annotations

import os
import sys

from project.worker_env import POOL_ENV, QUIET_TASKS_ENV, WORKER_SERVICES_ENV

# The service lifecycle, the drain watchdog and the supervisor watch, loaded by the worker
# before it starts its pool (Celery's --include), never by the Celery app module itself.
HOOKS_MODULE = "workers.hooks"


def worker_pool(service) -> tuple[str, int]:
    if service.mode == service.Mode.ASYNC:
        return "threads", max(1, service.concurrency)
    return "prefork", 1


def node_name(service, suffix: str = "") -> str:
    return f"{service.slug}@%h{'-' + suffix if suffix else ''}"


def worker_argv(service, *, node_suffix: str = "", loglevel: str = "INFO") -> list[str]:
    from project.queue_system.queues import main_queue_name

    pool, concurrency = worker_pool(service)
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "project.celery:app",
        "worker",
        "--include",
        HOOKS_MODULE,
        "-Q",
        main_queue_name(service.slug),
        "-n",
        node_name(service, node_suffix),
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--prefetch-multiplier",
        "1",
        "--task-events",
        # Gossip and mingle only slow the start; Flower works from events and heartbeats.
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        loglevel,
    ]


def worker_env(service, base: dict[str, str] | None = None, *, quiet_tasks: bool = False) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env[WORKER_SERVICES_ENV] = service.slug
    env[POOL_ENV] = worker_pool(service)[0]
    if quiet_tasks:
        env[QUIET_TASKS_ENV] = "1"
    else:
        env.pop(QUIET_TASKS_ENV, None)  # not inherited: the command line decides
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def launcher_argv(slug: str, *, node_suffix: str = "", loglevel: str = "INFO", quiet_tasks: bool = False) -> list[str]:
    """``python -m workers <slug>``: what a supervisor runs (it prepares the broker, then execs the worker)."""
    argv = [sys.executable, "-m", "workers", slug, "--loglevel", loglevel]
    if node_suffix:
        argv += ["--node-suffix", node_suffix]
    if quiet_tasks:
        argv.append("--quiet-tasks")
    return argv
