"""Looking into a test vhost's queues over AMQP (exact counts, message contents)."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from urllib.parse import quote

import amqp
from kombu import Connection

from tests.support.servers import Vhost


@contextlib.contextmanager
def amqp_connection(vhost: Vhost) -> Iterator[amqp.Connection]:
    info = Connection(vhost.broker_url).info()
    conn = amqp.Connection(
        host=f"{info['hostname']}:{info['port']}",
        userid=info["userid"],
        password=info["password"],
        virtual_host=info["virtual_host"],
    )
    conn.connect()
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def depth(vhost: Vhost, queue: str) -> int | None:
    """Ready messages in a queue; None when it does not exist."""
    with amqp_connection(vhost) as conn:
        try:
            _, ready, _ = conn.channel().queue_declare(queue, passive=True)
        except amqp.exceptions.NotFound:
            return None
        return ready


def peek(vhost: Vhost, queue: str) -> list[dict]:
    """Every ready message (put back afterwards): priority, task name, args or body."""
    found = []
    with amqp_connection(vhost) as conn:
        channel = conn.channel()
        while (message := channel.basic_get(queue, no_ack=False)) is not None:
            headers = message.properties.get("application_headers") or {}
            body = json.loads(message.body)
            found.append(
                {
                    "priority": message.properties.get("priority"),
                    "task": headers.get("task"),
                    "args": body[0] if headers.get("task") else None,
                    "body": None if headers.get("task") else body,
                    "persistent": message.properties.get("delivery_mode") == 2,
                }
            )
        channel.close()  # unacked messages go back to the queue
    return found


class DepthSampler(threading.Thread):
    """Samples the exact ready count of queues (AMQP passive declare) until ``stop()``.

    The management API's counters lag by seconds; a passive declare answers with
    the queue's state at that instant. A queue not declared yet counts 0. It connects
    to ``url`` (a test's vhost) or to the configured broker, and reconnects when the
    broker goes away (a benchmark may restart it); ``reconnects`` counts those.
    """

    def __init__(self, queues: list[str], interval: float = 0.005, url: str | None = None) -> None:
        super().__init__(name="depth-sampler", daemon=True)
        self.queues, self.interval, self.url = queues, interval, url
        self.samples: dict[str, list[int]] = {q: [] for q in queues}
        self.rounds = 0
        self.reconnects = 0
        self.error: BaseException | None = None
        self._done = threading.Event()

    def run(self) -> None:
        from project.queue_system.broker import CONNECTION_ERRORS, BrokerError, close_quietly, open_connection

        while not self._done.is_set():
            connection = None
            try:
                connection = open_connection(self.url)
                channel = connection.channel()
                while not self._done.is_set():
                    for queue in self.queues:
                        try:
                            _, ready, _ = channel.queue_declare(queue, passive=True)
                        except amqp.exceptions.NotFound:
                            channel, ready = connection.channel(), 0
                        self.samples[queue].append(ready)
                    self.rounds += 1
                    self._done.wait(self.interval)
            except (BrokerError, *CONNECTION_ERRORS):
                self.reconnects += 1
                self._done.wait(1.0)
            except BaseException as exc:  # surfaced by stop()
                self.error = exc
                return
            finally:
                close_quietly(connection)

    def stop(self) -> dict[str, list[int]]:
        self._done.set()
        self.join(timeout=30)
        if self.error is not None:
            raise RuntimeError(f"depth sampling failed: {self.error!r}") from self.error
        return self.samples

    def max(self, queue: str) -> int:
        return max(self.samples[queue], default=0)

    @property
    def maxima(self) -> dict[str, int]:
        return {queue: self.max(queue) for queue in self.queues}


def _rabbitmqctl(*args: str, timeout: float = 120) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=timeout)


def wait_for_broker(vhost: Vhost, timeout: float = 180.0) -> None:
    """Until AMQP on the test's vhost and the management API both answer."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", 5672), timeout=2):
                pass
            with amqp_connection(vhost):
                pass
            vhost.api("GET", "/api/overview").raise_for_status()
            vhost.api("GET", f"/api/vhosts/{quote(vhost.name, safe='')}").raise_for_status()
            return
        except Exception as exc:  # not up yet
            last = exc
            time.sleep(0.5)
    raise TimeoutError(f"RabbitMQ not back within {timeout:.0f} s: {last!r}")


@contextlib.contextmanager
def broker_stopped(vhost: Vhost) -> Iterator[None]:
    """``rabbitmqctl stop_app`` for the block, then ``start_app`` and wait until it answers (even on failure).

    The node (and its durable queues, persistent messages and policies) stays;
    every connection is closed, as in a broker restart. Other users of the local
    broker lose it for the duration of the block.
    """
    try:
        _rabbitmqctl("stop_app")
        yield
    finally:
        _rabbitmqctl("start_app")
        _rabbitmqctl("await_startup")
        wait_for_broker(vhost)


@contextlib.contextmanager
def publishing_blocked(vhost: Vhost) -> Iterator[None]:
    """RabbitMQ's memory alarm for the block: every connection that publishes is blocked (its
    messages wait unconfirmed), as on a broker out of memory. The node's limit is restored after."""
    node = vhost.api("GET", "/api/nodes").json()[0]
    limit = int(node["mem_limit"])
    try:
        _rabbitmqctl("set_vm_memory_high_watermark", "absolute", "1")
        yield
    finally:
        _rabbitmqctl("set_vm_memory_high_watermark", "absolute", str(limit))
        deadline = time.monotonic() + 30
        while vhost.api("GET", "/api/nodes").json()[0].get("mem_alarm") and time.monotonic() < deadline:
            time.sleep(0.2)
