# Design: docs/architecture.md#processes
"""Loaded by a service worker at its start (``--include workers.hooks``, workers/command.py).

- on_start of the service object before the first event, in the process that
  runs the tasks (the prefork child of a SYNC worker, the main process of an
  ASYNC thread-pool worker); on_stop on a clean shutdown;
- the drain-ticket watchdog thread (``workers.watchdog``), and the supervisor
  watch (``workers.supervisor_watch``): a worker whose supervisor was killed shuts down;
- the control room's pause, heartbeat and skip (``workers.control``);
- before each task, Django's ``close_old_connections`` (the connection is
  otherwise reused between tasks: ``CELERY_DB_REUSE_MAX`` in celeryconfig);
- an item whose process Celery's hard time limit killed is failed, not left processing;
- monitoring events (for Flower) published without a publisher confirm each;
- with ``TTE_QUIET_TASKS`` set, no INFO line per task (see workers.command).
"""

from __future__ import annotations

import logging
import os
import signal

from celery import signals
from celery.events.dispatcher import EventDispatcher

from project.celery import app
from project.worker_env import POOL_ENV, QUIET_TASKS_ENV, WORKER_SERVICES_ENV
from workers.control import ControlWatch, PausedAtStart, SkipListener
from workers.supervisor_watch import watch_supervisor

SLUGS = [s for s in os.environ.get(WORKER_SERVICES_ENV, "").split(",") if s]
PREFORK = os.environ.get(POOL_ENV, "prefork") == "prefork"

_watchdog = None
_control_watch = None

# The control room's pause holds from the worker's first message on (workers/control.py).
app.steps["consumer"].add(PausedAtStart)

# "Received task" (celery.worker.strategy) and "Task … succeeded" (celery.app.trace):
# Celery asks these loggers once, when the worker builds its strategies and tracers,
# whether INFO is on. Retries are INFO too; failures are ERROR and stay.
TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")
if os.environ.get(QUIET_TASKS_ENV):
    for _name in TASK_LOGGERS:
        logging.getLogger(_name).setLevel(logging.WARNING)


class UnconfirmedEventDispatcher(EventDispatcher):
    """Celery's event dispatcher, without a publisher confirm per monitoring event.

    ``confirm_publish`` (celeryconfig) puts every channel of the app in confirm
    mode, and the worker's event loop flushes task events (received, started,
    succeeded: three per task) with a blocking broker round trip each — most
    of the loop's busy time, ahead of handing the next message to the pool.
    Task messages keep their confirms; these are transient messages for Flower.
    """

    def enable(self) -> None:
        super().enable()
        channel = getattr(self.producer, "channel", None)
        if channel is not None and hasattr(channel, "_basic_publish"):
            channel.basic_publish = channel._basic_publish


# Before the worker builds its dispatcher (app.events.Dispatcher is created on first use).
app.events.dispatcher_cls = UnconfirmedEventDispatcher


@signals.worker_process_init.connect
def _start_in_child(**_) -> None:
    from project.queue_system import runtime

    runtime.start_services(SLUGS)
    SkipListener(SLUGS).start()  # the service objects live in this child


@signals.task_prerun.connect
def _usable_database(**_) -> None:
    # celeryconfig.CELERY_DB_REUSE_MAX keeps the task's connection open between
    # tasks; one that failed (PostgreSQL restarted) or outlived CONN_MAX_AGE is
    # dropped here, so the task opens a fresh one.
    from django.db import close_old_connections

    close_old_connections()


@signals.worker_process_shutdown.connect
def _stop_in_child(**_) -> None:
    from project.queue_system import runtime

    runtime.stop_services()


@signals.task_failure.connect
def _hard_time_limit(sender=None, exception=None, args=None, **_) -> None:
    # Celery's hard limit killed a SYNC worker's child (its handler stopped running
    # Python: budget.py could not act). Celery acks that message, so the item is
    # failed here, in the worker's main process, instead of staying processing.
    from celery.exceptions import TimeLimitExceeded

    if not isinstance(exception, TimeLimitExceeded) or getattr(sender, "name", "") != "tasks.process_event":
        return
    from django.db import close_old_connections
    from django.utils import timezone

    from project.queue_system.models import QueueItem

    close_old_connections()
    QueueItem.objects.filter(pk=int(args[0]), status=QueueItem.Status.PROCESSING).update(
        status=QueueItem.Status.FAILED,
        error=f"timed out: its worker process was killed after {exception} s",
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )


@signals.worker_ready.connect
def _ready(sender=None, **_) -> None:
    global _watchdog, _control_watch
    from project.queue_system import runtime
    from workers.watchdog import DrainWatchdog

    if not PREFORK:
        runtime.start_services(SLUGS)
        SkipListener(SLUGS).start()
    _control_watch = ControlWatch(SLUGS, node=getattr(sender, "hostname", "") or "worker")
    _control_watch.start()
    _watchdog = DrainWatchdog(SLUGS)
    _watchdog.start()
    # Killed outright, a supervisor leaves its workers behind: they shut down (warm) by themselves.
    watch_supervisor(lambda: os.kill(os.getpid(), signal.SIGTERM))


@signals.worker_shutdown.connect
def _shutdown(**_) -> None:
    from project.queue_system import runtime

    if _watchdog is not None:
        _watchdog.stop()
    if _control_watch is not None:
        _control_watch.stop()
    if not PREFORK:
        runtime.stop_services()
