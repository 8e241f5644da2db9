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

from django.db import InterfaceError, OperationalError, connection

from project.env import env_float

logger = logging.getLogger("queue.infrastructure")

# Raised by Django when PostgreSQL is unreachable, restarting, or dropped the connection.
DB_ERRORS = (OperationalError, InterfaceError)

OUTAGE_WAIT = env_float("TTE_DB_OUTAGE_WAIT_SECONDS", 30.0, minimum=0.0)
MAX_BACKOFF = 5.0


class InfrastructureFault(Exception):
    """The database or the broker failed around an item; its message must go back to the queue."""


def database_answers() -> bool:
    try:
        connection.close()  # a connection broken by a restart is dropped, not reused
    except DB_ERRORS:
        pass
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


def retry_database(call, what: str, extra: dict):
    """Run ``call()`` until the database takes it (a handler's outcome must not be lost or re-run).

    Retries with back-off while the database is away; after ``OUTAGE_WAIT``
    seconds of failures it raises InfrastructureFault, and the message goes back
    to the queue: the item then runs again (at least once, never lost).
    """
    deadline = time.monotonic() + OUTAGE_WAIT
    delay = 0.25
    while True:
        try:
            return call()
        except DB_ERRORS as exc:
            if time.monotonic() >= deadline:
                raise InfrastructureFault(f"could not {what}: {exc}") from exc
            logger.warning(f"could not {what}; retrying in {delay:.2g}s", extra={**extra, "error": str(exc)})
            time.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)
            database_answers()
