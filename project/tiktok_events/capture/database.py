"""PostgreSQL restarting under the capture's long-lived threads.

Django opens a connection per thread and re-opens it only between requests
(``close_if_unusable_or_obsolete``); a capture thread never sees a request, so
after a restart its connection stays dead and every later query fails
("terminating connection due to administrator command", then "the connection
is closed"). ``with_reconnect`` drops the dead connection and tries again with
back-off: the next query opens a new one.

(The batch writer needs none of this: a failed batch leaves its
``transaction.atomic`` block, whose rollback on a dead connection closes it,
and the pipeline retries the batch.)
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection

log = logging.getLogger("capture.database")

T = TypeVar("T")

RETRY_SECONDS = (0.5, 1, 2, 5, 10)
# A statement that fails this long is given up: the caller reports it. Long enough for
# a restart or a fail-over; an operator who stops PostgreSQL for good sees the error.
GIVE_UP_SECONDS = 300.0

CONNECTION_ERRORS = (OperationalError, InterfaceError)


def drop_connection() -> None:
    """Close this thread's connection (dead or not): the next query opens a new one."""
    with contextlib.suppress(Exception):
        connection.close()


def with_reconnect(fn: Callable[..., T], *args, what: str, give_up_after: float = GIVE_UP_SECONDS) -> T:
    """``fn(*args)``, retried on a fresh connection while PostgreSQL is unreachable."""
    started = time.monotonic()
    attempt = 0
    while True:
        try:
            return fn(*args)
        except CONNECTION_ERRORS as exc:
            drop_connection()
            waited = time.monotonic() - started
            if waited >= give_up_after:
                raise
            delay = RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)]
            attempt += 1
            log.warning(
                "database unavailable; retrying",
                extra={"step": what, "attempt": attempt, "waited_s": round(waited, 1), "error": str(exc)[:200]},
            )
            time.sleep(delay)
