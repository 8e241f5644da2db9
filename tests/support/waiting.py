"""Polling until something is true: the one ``wait_for`` of the tests and the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout: float = 60.0, interval: float = 0.1, what: str = "condition") -> T:
    """Call ``check`` every ``interval`` s until it returns something truthy, and return that.

    After ``timeout`` s it fails with an AssertionError that names ``what`` and the last value
    seen. Timeouts are generous: the machines are shared and their speed moves.
    """
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last value: {last!r})")
        time.sleep(interval)
