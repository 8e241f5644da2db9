"""Infrastructure faults around an item: the database or the broker failed, not the event.

Such a fault is never the item's outcome. A worker that meets one while
claiming or running an item waits for the database to answer again (with
back-off, at most ``TTE_DB_OUTAGE_WAIT_SECONDS`` per message) and then puts the
message back on its queue, where it keeps its priority; a worker that meets one
while *recording* an outcome keeps retrying the write instead, because the
handler has run and running it again would repeat its effect.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection

from project.env import env_float

logger = logging.getLogger("queue.infrastructure")
T = TypeVar("T")

# Raised by Django when PostgreSQL is unreachable, restarting, or dropped the connection.
DB_ERRORS = (OperationalError, InterfaceError)

# TTE_ (TikTok Live Events) marks the project's own variables (docs/configuration.md).
OUTAGE_WAIT = env_float("TTE_DB_OUTAGE_WAIT_SECONDS", 30.0, minimum=0.0)
MAX_BACKOFF = 5.0


class InfrastructureFault(Exception):
    """The database or the broker failed around an item; its message must go back to the queue."""


def drop_connection() -> None:
    """Close this thread's connection, dead or not: the next query opens a new one.

    Django re-opens a thread's connection only between requests (or tasks); a
    long-lived thread never sees one, so after a PostgreSQL restart its
    connection would stay dead and fail every later query.
    """
    try:
        connection.close()
    except Exception:  # noqa: S110 - a connection already broken may fail to close: it is gone either way
        pass


def database_answers() -> bool:
    drop_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except DB_ERRORS:
        return False


def wait_for_database(limit: float | None = None) -> bool:
    """Until PostgreSQL answers (True) or ``limit`` seconds passed (False), with back-off."""
    deadline = time.monotonic() + (OUTAGE_WAIT if limit is None else limit)
    delay = 0.25
    while not database_answers():
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, MAX_BACKOFF)
    return True


def retry_database(
    call: Callable[[], T], what: str, extra: dict | None = None, *, give_up_after: float | None = None
) -> T:
    """``call()`` until the database takes it, each try on a fresh connection, with back-off.

    For what must not be lost nor repeated while PostgreSQL restarts: a
    handler's outcome, the capture's session rows, the marks of dispatched
    items. After ``give_up_after`` seconds (default ``OUTAGE_WAIT``) of failures
    it raises InfrastructureFault: a worker then puts the message back on its
    queue (the item runs again: at least once, never lost), and the capture
    reports the step it could not do.
    """
    limit = OUTAGE_WAIT if give_up_after is None else give_up_after
    started = time.monotonic()
    delay = 0.25
    while True:
        try:
            return call()
        except DB_ERRORS as exc:
            drop_connection()
            waited = time.monotonic() - started
            if waited >= limit:
                raise InfrastructureFault(f"could not {what} for {waited:.0f} s: {exc}") from exc
            logger.warning(
                f"could not {what}; retrying in {delay:.2g}s",
                extra={**(extra or {}), "waited_s": round(waited, 1), "error": str(exc)[:200]},
            )
            time.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)
