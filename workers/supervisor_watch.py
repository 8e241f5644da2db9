"""A supervised process leaves when its supervisor is gone.

The supervisor (``run_queue_workers``, ``start_event_system``) starts each
worker in a process group of its own, so a terminal's Ctrl+C reaches only the
supervisor, which then stops them in order. Killed outright (SIGKILL, out of
memory), it stops nothing: its workers would go on unsupervised, writing into a
pipe nobody reads, and a new supervisor would start a second set beside them.
So each supervised process watches its parent: once it is no longer the
supervisor named in ``TTE_SUPERVISOR_PID``, it shuts down cleanly (a worker's
warm shutdown finishes the items in flight; the unacked messages go back to
their queues). A process started by hand or by Docker has no such variable and
is not watched.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

# TTE_ (TikTok Live Events) marks the project's own variables (docs/configuration.md).
SUPERVISOR_PID_ENV = "TTE_SUPERVISOR_PID"
INTERVAL = 1.0

logger = logging.getLogger("workers.supervisor_watch")


def watch_supervisor(on_gone: Callable[[], None]) -> threading.Thread | None:
    """Call ``on_gone`` once this process's supervisor has died; None when not supervised."""
    raw = os.environ.get(SUPERVISOR_PID_ENV, "")
    if not raw.isdigit() or os.getppid() != int(raw):
        return None
    supervisor = int(raw)

    def watch() -> None:
        while os.getppid() == supervisor:
            time.sleep(INTERVAL)
        logger.warning(f"the supervisor (pid {supervisor}) is gone: shutting down")
        on_gone()

    thread = threading.Thread(target=watch, name="supervisor-watch", daemon=True)
    thread.start()
    return thread
