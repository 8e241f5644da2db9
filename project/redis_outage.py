"""Waiting out a Redis outage: one back-off loop for whoever keeps live state in Redis.

Redis holds the live state that may be lost (overlay cards, LLM reply cooldowns, the
live avatar session) and keeps nothing on disk: a restart is an outage of a few
seconds followed by an empty database. Each caller that needs it retries with back-off
for ``REDIS_OUTAGE_WAIT_SECONDS`` (default 120) before it gives up with
:class:`RedisOutage`, and copes with the empty database itself (a card stream that
starts again, cooldowns that restart, a session record its owner writes again).

A queue item that needs Redis waits inside its attempt rather than through the
queue's retries: the queue gives an item ``MAX_ATTEMPTS`` (5) attempts, so spreading
two minutes over them would leave each retry 30 s behind Redis' return, and the items
would come back in the order of their retry timers, not their priority. Waiting in
the attempt keeps the waiting items in the worker (the rest stay queued in priority
order) and runs each one within the back-off's ceiling (2 s) of Redis' return. An
attempt that waited in vain raises ``TransientError``: the item goes back through its
queue and waits again, and fails only when its attempts are spent — after at least
the whole wait, five times it with the default time budget. Only when the service's
time budget is shorter than the wait does :func:`plan_for` spread the wait over the
queue's retries (see there).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
from django.conf import settings

from project.env import env_int

logger = logging.getLogger("redis.outage")

T = TypeVar("T")

DEFAULT_WAIT_SECONDS = 120
FIRST_DELAY = 0.25
# The ceiling of the back-off: how late after Redis is back a waiting caller notices.
MAX_DELAY = 2.0
# What "Redis is away" raises in redis-py; BusyLoadingError (a restart loading its data)
# is a ConnectionError. Anything else (a wrong command, a full memory) is not an outage.
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)


class RedisOutage(Exception):
    """Redis stayed unreachable for the whole wait (or the caller is stopping)."""

    def __init__(self, what: str, waited: float, cause: BaseException) -> None:
        super().__init__(f"Redis unreachable for {waited:.0f} s ({what}): {type(cause).__name__}: {cause}")
        self.what = what
        self.waited = waited


def outage_wait_seconds() -> int:
    """``REDIS_OUTAGE_WAIT_SECONDS`` (Django setting first, for tests; then the environment)."""
    return int(
        getattr(settings, "REDIS_OUTAGE_WAIT_SECONDS", 0)
        or env_int("REDIS_OUTAGE_WAIT_SECONDS", DEFAULT_WAIT_SECONDS, minimum=1)
    )


def call_through_outage(
    operation: Callable[[], T],
    *,
    what: str,
    wait_seconds: float | None = None,
    stop: threading.Event | None = None,
    log_extra: dict[str, Any] | None = None,
) -> T:
    """``operation()``, retried with back-off while Redis is unreachable, for ``wait_seconds`` at most.

    ``wait_seconds`` defaults to :func:`outage_wait_seconds`; 0 tries once. ``stop``
    (a worker shutting down) ends the wait early. Raises :class:`RedisOutage`.
    """
    limit = outage_wait_seconds() if wait_seconds is None else max(0.0, wait_seconds)
    started = time.monotonic()
    delay = FIRST_DELAY
    failures = 0
    while True:
        try:
            result = operation()
        except REDIS_DOWN as exc:
            failures += 1
            waited = time.monotonic() - started
            remaining = limit - waited
            if remaining <= 0 or (stop is not None and stop.is_set()):
                logger.error(
                    "gave up waiting for Redis", extra={**(log_extra or {}), "what": what, "waited_s": round(waited, 1)}
                )
                raise RedisOutage(what, waited, exc) from None
            if failures == 1:
                logger.warning(
                    "Redis unreachable, waiting up to %.0f s: %s",
                    limit,
                    exc,
                    extra={**(log_extra or {}), "what": what},
                )
            pause = min(delay, remaining)
            if stop is not None:
                stop.wait(pause)
            else:
                time.sleep(pause)
            delay = min(delay * 2, MAX_DELAY)
            continue
        if failures:
            logger.info(
                "Redis back after %.1f s",
                time.monotonic() - started,
                extra={**(log_extra or {}), "what": what, "failures": failures},
            )
        return result


@dataclass(frozen=True)
class OutagePlan:
    """How one attempt of a queue item waits for Redis: in the attempt, then through a retry."""

    wait_seconds: float  # in this attempt
    retry_after: float  # if Redis is still away after it


def plan_for(queue_item: Any, *, time_budget: float, reserve: float) -> OutagePlan:
    """The wait of this attempt so that an item fails only after Redis was away for the whole wait.

    ``reserve`` is what the handler needs of its time budget after Redis answers (a
    card's display time, an LLM call). With the default budget (300 s) the attempt
    waits the whole ``REDIS_OUTAGE_WAIT_SECONDS`` itself. With a budget too short for
    that, the attempt waits what the budget allows and the rest is spread over the
    item's retries left (``MAX_ATTEMPTS`` less the attempts made): from the attempt
    that first met the outage, ``(retries + 1) * wait + retries * retry_after`` covers
    the whole wait. An item that meets the outage on its last attempt with such a
    budget can only wait that attempt.
    """
    from project.queue_system.processing import DEFAULT_RETRY_AFTER, MAX_ATTEMPTS

    limit = float(outage_wait_seconds())
    in_attempt = max(0.0, min(limit, time_budget - reserve))
    if in_attempt >= limit:
        return OutagePlan(limit, DEFAULT_RETRY_AFTER)
    retries_left = max(0, MAX_ATTEMPTS - int(getattr(queue_item, "attempts", 1) or 1))
    if retries_left == 0:
        return OutagePlan(in_attempt, DEFAULT_RETRY_AFTER)
    spread = (limit - in_attempt * (retries_left + 1)) / retries_left
    return OutagePlan(in_attempt, max(DEFAULT_RETRY_AFTER, spread))
