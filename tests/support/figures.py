"""Figures the tests and the benchmarks compute from what ran: percentiles and priority inversions."""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank value below which ``fraction`` (0-1) of ``values`` lie."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class Started(Protocol):
    priority: int
    dispatched_at: object
    started_at: object


def priority_inversions(items: list[Started], grace: timedelta = timedelta(0)) -> list[tuple[Started, Started]]:
    """Pairs (earlier, later) where ``earlier`` started while ``later``, of a higher priority, was already waiting.

    ``later`` counts as waiting when it was dispatched at least ``grace`` before ``earlier``
    started: a worker takes its message a little before it writes started_at, and an event
    dispatched inside that window arrived after the choice was made.
    """
    ordered = sorted(items, key=lambda i: i.started_at)
    found = []
    for n, earlier in enumerate(ordered):
        for later in ordered[n + 1 :]:
            if later.priority > earlier.priority and later.dispatched_at + grace <= earlier.started_at:
                found.append((earlier, later))
    return found


def count_inversions(rows: list[tuple]) -> tuple[int, int]:
    """(inversions, strict inversions) among started SYNC items: rows of (priority, dispatched, started, finished).

    For floods of thousands of items (the pairwise ``priority_inversions`` is quadratic), and
    counted per item: an item X started at s(X) is an inversion when some item Y of higher
    priority started later and was dispatched (confirmed: it was in the queue) before the
    worker asked for X, i.e. before the previous item finished (prefetch 1, acks_late: the
    broker hands out the next message only when the previous one is acked, after its finish).
    "Strict" compares against s(X) instead, like ``priority_inversions``, and so also counts
    gifts confirmed in the few ms between the broker's choice and X's claim.
    """
    rows = sorted(rows, key=lambda r: r[2])
    decide = [rows[n - 1][3] or rows[n - 1][2] if n else rows[0][2] for n in range(len(rows))]
    inversions = strict = 0
    earliest: dict[int, object] = {}  # priority → earliest dispatched_at among items started after the current one
    for n in range(len(rows) - 1, -1, -1):
        priority, dispatched, started_at, _ = rows[n]
        higher = [d for p, d in earliest.items() if p > priority]
        if higher:
            first = min(higher)
            inversions += first < decide[n]
            strict += first <= started_at
        if priority not in earliest or dispatched < earliest[priority]:
            earliest[priority] = dispatched
    return inversions, strict
