"""A service's handler runs within the service's time budget, on every pool.

Celery's time limits hold only for the prefork pool, and there the hard limit
kills the process (the item stayed ``processing``). So the handler runs on a
runner thread of its own and the task's thread waits for it at most
``Service.time_budget_seconds``. Past it, the caller fails the item ("timed out
after N s") and calls the service's ``on_timeout``; then the handler gets
``GRACE`` seconds to return (on_timeout may have unblocked it). A handler still
running after that is abandoned:

- SYNC (a prefork child, one event at a time): the stuck handler may hold the
  service (its browser, its session), so the child stops its services and exits;
  billiard starts a fresh child, and the message (requeued as the child was
  lost) is redelivered and skipped, its item being failed already.
- ASYNC (the thread pool): the runner thread is left behind (a daemon) and the
  slot is free at once. When as many abandoned threads are alive as the pool has
  slots, the worker asks for its own warm shutdown: the items in flight finish,
  the unacked messages go back to their queue, and the supervisor (or Docker's
  restart policy) starts a fresh worker.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
from collections.abc import Callable
from typing import Any

from project.env import env_float

logger = logging.getLogger("queue.budget")

# Seconds a handler gets to return once its item timed out and on_timeout ran.
# TTE_ (TikTok Live Events) marks the project's own variables (docs/configuration.md).
GRACE = env_float("TTE_TIMEOUT_GRACE_SECONDS", 5.0, minimum=0.0)


class TimedOut(Exception):
    """The handler did not return within the budget; ``job`` is still running."""

    def __init__(self, budget: float, job: _Job) -> None:
        super().__init__(f"timed out after {budget:g} s")
        self.budget = budget
        self.job = job


class _Job:
    __slots__ = ("done", "error", "fn", "result")

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        from django.db import close_old_connections

        try:
            # The runner's own database connection (a handler that queries) is
            # checked like a task's: one broken by a PostgreSQL restart is dropped.
            close_old_connections()
            self.result = self.fn()
        except BaseException as exc:  # handed to the waiting thread, which re-raises it
            self.error = exc
        finally:
            self.done.set()


class _Runner(threading.Thread):
    """A daemon thread that runs one job at a time for one pool slot."""

    count = 0

    def __init__(self) -> None:
        _Runner.count += 1
        super().__init__(name=f"handler-{_Runner.count}", daemon=True)
        self.inbox: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self.start()

    def run(self) -> None:
        while True:
            self.inbox.get().run()


_local = threading.local()
_abandoned: list[threading.Thread] = []
_abandoned_lock = threading.Lock()
_pid = os.getpid()


def _runner() -> _Runner:
    global _pid
    if os.getpid() != _pid:  # a prefork child: the parent's runner threads did not come along
        _pid = os.getpid()
        _local.__dict__.clear()
    runner = getattr(_local, "runner", None)
    if runner is None or not runner.is_alive():
        runner = _local.runner = _Runner()
    return runner


def call(fn: Callable[[], Any], budget: float) -> Any:
    """``fn()`` on this thread's runner; its result or exception, or ``TimedOut`` after ``budget`` seconds."""
    job = _Job(fn)
    runner = _runner()
    runner.inbox.put(job)
    if not job.done.wait(budget):
        # The runner is busy with the overdue job: this slot gets a new one next time.
        _local.runner = None
        _local.overdue = runner
        raise TimedOut(budget, job)
    if job.error is not None:
        raise job.error
    return job.result


def settle(exc: TimedOut, *, sync: bool, pool_size: int, label: str = "") -> bool:
    """After a timeout was recorded: wait ``GRACE`` for the handler, else abandon it. True if it returned."""
    runner = getattr(_local, "overdue", None)
    _local.overdue = None
    if exc.job.done.wait(GRACE):
        return True
    if sync:
        logger.error(f"⏱️ {label} is still running {GRACE:g} s after its timeout: replacing the worker process")
        _exit_process()
    with _abandoned_lock:
        if runner is not None:
            _abandoned.append(runner)
        _abandoned[:] = [t for t in _abandoned if t.is_alive()]
        stuck = len(_abandoned)
    logger.error(f"⏱️ {label} is still running {GRACE:g} s after its timeout: its thread is abandoned ({stuck} stuck)")
    if stuck >= pool_size:
        logger.error(f"{stuck} handler thread(s) stuck for good: the worker shuts down to be restarted")
        os.kill(os.getpid(), signal.SIGTERM)  # Celery's warm shutdown
    return False


def _exit_process() -> None:
    """A SYNC worker's child with a stuck handler: stop its services (bounded), then exit."""
    from project.queue_system import runtime

    stopper = threading.Thread(target=runtime.stop_services, name="stop-services", daemon=True)
    stopper.start()
    stopper.join(max(GRACE, 1.0))
    logging.shutdown()
    os._exit(70)  # billiard replaces the child; the message is redelivered and skipped
