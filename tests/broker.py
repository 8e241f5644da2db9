"""Looking into a test vhost's queues over AMQP (exact counts, message contents)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import amqp
from kombu import Connection

from tests.servers import Vhost


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
