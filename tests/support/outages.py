"""Stopping and starting the real servers from a fault test, always putting them back.

Each context manager stops one local server for the block and starts it again
afterwards, even when the block fails, then waits until it answers. They hold
an exclusive lock (``/tmp/tte-faults.lock``) for the block — and the suite's
conftest holds it around every fault test — so two fault tests of different
runs on one machine never stop servers under each other.

    with postgres_stopped():
        ...  # PostgreSQL is down here
    with redis_stopped():
        ...
    with rabbitmq_stopped(vhost):
        ...

Other users of the local servers (another test run, a developer's live) lose
them for the block: run the fault suite alone (``./scripts/test -m faults``).
"""

from __future__ import annotations

import contextlib
import fcntl
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.broker import broker_stopped
from tests.support.servers import Vhost

LOCK_PATH = "/tmp/tte-faults.lock"
START_TIMEOUT = 120.0


_held = [0]  # re-entrant within this process: the suite's fixture holds it around each test


@contextlib.contextmanager
def fault_lock() -> Iterator[None]:
    if _held[0]:
        _held[0] += 1
        try:
            yield
        finally:
            _held[0] -= 1
        return
    with open(LOCK_PATH, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        _held[0] = 1
        try:
            yield
        finally:
            _held[0] = 0
            fcntl.flock(handle, fcntl.LOCK_UN)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wait_port(port: int, *, open_: bool, timeout: float = START_TIMEOUT, name: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port) == open_:
            return
        time.sleep(0.2)
    raise TimeoutError(f"{name or port} did not {'open' if open_ else 'close'} within {timeout:.0f} s")


# --- PostgreSQL ------------------------------------------------------------------


def _pg_version() -> str:
    return sorted(Path("/etc/postgresql").iterdir(), key=lambda p: [int(x) for x in p.name.split(".")])[-1].name


def _pg_ctl(action: str) -> None:
    args = ["pg_ctlcluster", "--skip-systemctl-redirect", _pg_version(), "main", action]
    if action == "stop":
        args += ["--", "-m", "fast"]  # like a restart: every session is terminated
    subprocess.run(args, check=True, capture_output=True, timeout=120)


def start_postgres() -> None:
    if not port_open(5432):
        _pg_ctl("start")
    wait_port(5432, open_=True, name="PostgreSQL")
    deadline = time.monotonic() + START_TIMEOUT
    while True:  # the port opens before the server takes connections
        result = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc", "select 1"], capture_output=True, timeout=30
        )
        if result.returncode == 0 or time.monotonic() > deadline:
            return
        time.sleep(0.2)


@contextlib.contextmanager
def postgres_stopped() -> Iterator[None]:
    """PostgreSQL stopped (fast shutdown: every connection terminated) for the block."""
    from django.db import connections

    with fault_lock():
        try:
            _pg_ctl("stop")
            wait_port(5432, open_=False, name="PostgreSQL")
            yield
        finally:
            start_postgres()
            # The test's own connections died with the server: the next query opens new ones.
            for conn in connections.all():
                with contextlib.suppress(Exception):
                    conn.close()


# --- Redis -------------------------------------------------------------------------

REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]


def start_redis() -> None:
    if not port_open(6379):
        Path("/var/lib/redis").mkdir(parents=True, exist_ok=True)
        Path("/var/log/redis").mkdir(parents=True, exist_ok=True)
        subprocess.run(REDIS_START, check=True, capture_output=True, timeout=60)
    wait_port(6379, open_=True, name="Redis")
    deadline = time.monotonic() + START_TIMEOUT
    while subprocess.run(["redis-cli", "-p", "6379", "ping"], capture_output=True, text=True).stdout.strip() != "PONG":
        if time.monotonic() > deadline:
            raise TimeoutError("Redis does not answer PING")
        time.sleep(0.2)


@contextlib.contextmanager
def redis_stopped() -> Iterator[None]:
    """Redis shut down for the block (it keeps nothing on disk here: it comes back empty)."""
    with fault_lock():
        try:
            subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], capture_output=True, timeout=30)
            wait_port(6379, open_=False, name="Redis")
            yield
        finally:
            start_redis()


# --- RabbitMQ ------------------------------------------------------------------------


@contextlib.contextmanager
def rabbitmq_stopped(vhost: Vhost) -> Iterator[None]:
    """``rabbitmqctl stop_app`` for the block, then ``start_app`` (see tests.support.broker.broker_stopped)."""
    with fault_lock(), broker_stopped(vhost):
        yield
