"""Loaded by ``project.celery`` inside a service worker (``TTE_WORKER_SERVICES`` set).

- on_start of the service object before the first event, in the process that
  runs the tasks (the prefork child of a SYNC worker, the main process of an
  ASYNC thread-pool worker); on_stop on a clean shutdown;
- the drain-ticket watchdog thread (``workers.watchdog``).
"""

from __future__ import annotations

import os

from celery import signals

from project.celery import WORKER_SERVICES_ENV
from workers.command import POOL_ENV

SLUGS = [s for s in os.environ.get(WORKER_SERVICES_ENV, "").split(",") if s]
PREFORK = os.environ.get(POOL_ENV, "prefork") == "prefork"

_watchdog = None


@signals.worker_process_init.connect
def _start_in_child(**_) -> None:
    from project.queue_system import runtime

    runtime.start_services(SLUGS)


@signals.worker_process_shutdown.connect
def _stop_in_child(**_) -> None:
    from project.queue_system import runtime

    runtime.stop_services()


@signals.worker_ready.connect
def _ready(**_) -> None:
    global _watchdog
    from project.queue_system import runtime
    from workers.watchdog import DrainWatchdog

    if not PREFORK:
        runtime.start_services(SLUGS)
    _watchdog = DrainWatchdog(SLUGS)
    _watchdog.start()


@signals.worker_shutdown.connect
def _shutdown(**_) -> None:
    from project.queue_system import runtime

    if _watchdog is not None:
        _watchdog.stop()
    if not PREFORK:
        runtime.stop_services()
