"""Latency percentiles in fixed memory: a log-bucket histogram (HDR-style).

A live of hours at thousands of events a second cannot keep every latency
(two floats per event were ≈ 0.5 GB an hour at 2,000 events/s). Values go into
buckets whose width grows with the value — each bucket is ``PRECISION`` (1 %)
wider than the one before — so a percentile is exact to within 1 % whatever the
range, from 0.01 ms to hours, in a few thousand counters. The maximum and
minimum are kept exactly.
"""

from __future__ import annotations

import math

PRECISION = 0.01  # relative width of a bucket: percentiles are within 1 %
LOWEST_MS = 0.01  # values at or below this (a negative clock skew too) share the first bucket
HIGHEST_MS = 24 * 3600 * 1000.0  # a day; above it: the last bucket
_LOG_BASE = math.log1p(PRECISION)
BUCKETS = int(math.log(HIGHEST_MS / LOWEST_MS) / _LOG_BASE) + 2


class LatencyHistogram:
    __slots__ = ("count", "counts", "max", "min")

    def __init__(self) -> None:
        self.counts = [0] * BUCKETS
        self.count = 0
        self.min = math.inf
        self.max = -math.inf

    def add(self, value_ms: float) -> None:
        self.counts[_bucket(value_ms)] += 1
        self.count += 1
        if value_ms < self.min:
            self.min = value_ms
        if value_ms > self.max:
            self.max = value_ms

    def __len__(self) -> int:
        return self.count

    def percentile(self, q: float) -> float:
        """The value below which a share ``q`` (0-1) of the values lie, within ``PRECISION``."""
        if not self.count:
            raise ValueError("no values")
        rank = min(self.count - 1, int(q * self.count))  # as the sorted list's ordered[rank]
        seen = 0
        for index, n in enumerate(self.counts):
            seen += n
            if seen > rank:
                return min(self.max, max(self.min, _value(index)))
        return self.max

    def summary(self) -> dict[str, float] | None:
        """The capture summary's figures: p50, p99, max (ms, one decimal) and count."""
        if not self.count:
            return None
        return {
            "p50": round(self.percentile(0.50), 1),
            "p99": round(self.percentile(0.99), 1),
            "max": round(self.max, 1),
            "count": self.count,
        }


def _bucket(value_ms: float) -> int:
    if value_ms <= LOWEST_MS:
        return 0
    return min(BUCKETS - 1, 1 + int(math.log(value_ms / LOWEST_MS) / _LOG_BASE))


def _value(index: int) -> float:
    """A bucket's middle (geometric), standing for every value in it."""
    if index == 0:
        return LOWEST_MS
    low = LOWEST_MS * math.exp((index - 1) * _LOG_BASE)
    return low * math.sqrt(1 + PRECISION)
