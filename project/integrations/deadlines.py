"""Keeping an integration's waits inside the time the queue gives one item.

A service has ``time_budget`` seconds per item (``Service.time_budget_seconds``);
past it the worker fails the item and, for a SYNC service, kills the child
running it. A handler must therefore give up on its own before that: each
client takes a ``deadline`` (a :func:`time.monotonic` instant), shortens every
HTTP timeout and every back-off sleep to what is left, and raises its
transient error when nothing is left, so the item is retried instead of killed.
The margin leaves the handler time to clean up and the worker time to record
the outcome.
"""

from __future__ import annotations

import time

MIN_MARGIN_SECONDS = 1.0
MAX_MARGIN_SECONDS = 30.0


def margin(budget: float) -> float:
    """A tenth of the budget, between 1 and 30 s (30 s of a 300 s budget, 1 s of a 10 s one)."""
    return min(MAX_MARGIN_SECONDS, max(MIN_MARGIN_SECONDS, budget * 0.1))


def handler_deadline(budget: float, started: float | None = None) -> float:
    """The monotonic instant a handler given ``budget`` seconds from ``started`` (now) must be done by."""
    start = time.monotonic() if started is None else started
    return start + max(0.5 * budget, budget - margin(budget))


def seconds_left(deadline: float | None, cap: float) -> float:
    """``cap``, or less when the deadline is nearer; never negative."""
    if deadline is None:
        return cap
    return max(0.0, min(cap, deadline - time.monotonic()))
