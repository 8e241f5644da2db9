"""Every test under tests/faults/ stops a real server or kills processes: marked ``faults`` (run
them alone with ``./scripts/test -m faults``) and ``slow``."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.slow)
            # Restarts take their time, and the lock may first wait for another run's fault test.
            item.add_marker(pytest.mark.timeout(900))


@pytest.fixture(autouse=True)
def _one_fault_test_at_a_time():
    """Another run's fault test on this machine must not stop a server under this one."""
    from tests.support.outages import fault_lock

    with fault_lock():
        yield
