"""Connections to RabbitMQ: AMQP (py-amqp through kombu) and the management HTTP API.

The broker URL and the vhost are read from ``settings.CELERY_BROKER_URL`` at call
time (tests point it at a fresh vhost per test); the management API base URL and
credentials come from ``settings.RABBITMQ_MANAGEMENT_URL``. Policies and queue
listings always use the vhost of the broker URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

import amqp
import amqp.transport
import requests
from django.conf import settings
from kombu import Connection

from project.logging import redact

CONNECT_TIMEOUT = 5.0
MANAGEMENT_TIMEOUT = 10.0

# Errors that mean "the broker is not reachable right now" (as opposed to a bug).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    amqp.exceptions.RecoverableConnectionError,
    amqp.exceptions.ConnectionForced,
    amqp.exceptions.IrrecoverableConnectionError,
    ConnectionError,
    TimeoutError,
)


class BrokerError(RuntimeError):
    pass


def broker_url() -> str:
    return settings.CELERY_BROKER_URL


def vhost_name(url: str | None = None) -> str:
    """The vhost of an amqp:// URL: ``amqp://h//`` and ``amqp://h`` are ``/``."""
    path = urlsplit(url or broker_url()).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def open_connection(url: str | None = None, *, timeout: float = CONNECT_TIMEOUT) -> amqp.Connection:
    """A connected py-amqp connection (no automatic confirms: callers choose)."""
    conn = Connection(url or broker_url(), connect_timeout=timeout)
    try:
        conn.connect()
    except Exception as exc:
        raise BrokerError(f"cannot connect to RabbitMQ at {redact(conn.as_uri())}: {exc}") from exc
    _read_ahead(conn.connection)
    return conn.connection


READ_AHEAD = 65536


def _read_ahead(connection: amqp.Connection) -> None:
    """Let py-amqp's transport read what the socket holds, not just the bytes it asks for.

    ``TCPTransport._read(n)`` calls ``recv(n - buffered)`` and keeps any surplus
    in its read buffer, so a larger recv is served from that buffer on the next
    reads: a stream of confirms or deliveries costs one syscall per socket read
    instead of two per frame. Only for connections read with blocking
    ``drain_events`` (all of ours; kombu's event loop never sees them), since
    frames already buffered do not make the socket readable.
    """
    transport = getattr(connection, "transport", None)
    if type(transport) is not amqp.transport.TCPTransport or transport.sock is None:
        return  # amqps (SSLTransport) or an unexpected py-amqp: left as it is
    recv = transport.sock.recv
    transport._quick_recv = lambda n: recv(max(n, READ_AHEAD))


def abandon(connection: amqp.Connection | None) -> None:
    """Drop a connection without the closing handshake.

    For one that failed: a broker that stopped reading it (a memory alarm
    blocks publishers) would never answer channel.close or connection.close,
    and the polite close would wait for as long as the alarm lasts.
    """
    if connection is None:
        return
    try:
        connection.collect()
    except Exception:  # noqa: S110 - nothing is left to release on a half-torn connection
        pass


def close_quietly(connection: amqp.Connection | None) -> None:
    """Close a connection that may already be dead without raising."""
    if connection is None:
        return
    try:
        connection.close()
    except Exception:
        connection.collect()


@dataclass
class QueueDepth:
    name: str
    ready: int
    unacked: int
    consumers: int


class Management:
    """A small client of the RabbitMQ management HTTP API, bound to one vhost."""

    def __init__(self, url: str | None = None, vhost: str | None = None) -> None:
        parts = urlsplit(url or settings.RABBITMQ_MANAGEMENT_URL)
        self.base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}{parts.path.rstrip('/')}"
        self.auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
        self.vhost = vhost if vhost is not None else vhost_name()

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        try:
            response = requests.request(
                method, f"{self.base}{path}", auth=self.auth, timeout=MANAGEMENT_TIMEOUT, **kwargs
            )
        except requests.RequestException as exc:
            raise BrokerError(f"RabbitMQ management API at {self.base} is unreachable: {exc}") from exc
        if response.status_code >= 400 and not (method == "DELETE" and response.status_code == 404):
            raise BrokerError(
                f"RabbitMQ management API {method} {path} answered {response.status_code}: {response.text[:300]}"
            )
        return response

    @property
    def _vhost(self) -> str:
        return quote(self.vhost, safe="")

    def put_policy(self, name: str, pattern: str, definition: dict, priority: int = 10) -> None:
        self.request(
            "PUT",
            f"/api/policies/{self._vhost}/{quote(name, safe='')}",
            json={"pattern": pattern, "definition": definition, "priority": priority, "apply-to": "queues"},
        )

    def get_policy(self, name: str) -> dict | None:
        response = self.request("GET", f"/api/policies/{self._vhost}", params={"columns": "name,definition"})
        for policy in response.json():
            if policy["name"] == name:
                return policy
        return None

    def delete_policy(self, name: str) -> None:
        self.request("DELETE", f"/api/policies/{self._vhost}/{quote(name, safe='')}")

    def queue_depths(self, prefix: str = "svc.") -> dict[str, QueueDepth]:
        """Depths of every queue whose name starts with prefix (the API refreshes them every few seconds)."""
        response = self.request(
            "GET",
            f"/api/queues/{self._vhost}",
            params={"columns": "name,messages_ready,messages_unacknowledged,consumers"},
        )
        depths = {}
        for row in response.json():
            if row["name"].startswith(prefix):
                depths[row["name"]] = QueueDepth(
                    row["name"],
                    int(row.get("messages_ready") or 0),
                    int(row.get("messages_unacknowledged") or 0),
                    int(row.get("consumers") or 0),
                )
        return depths


def queue_ready_count(channel: amqp.Channel, name: str) -> tuple[int, int] | None:
    """(ready messages, consumers) of a queue, exact and immediate; None if it does not exist.

    A passive declare of a missing queue closes the channel, so callers pass a
    channel they can lose; ``passive_counts`` below handles that.
    """
    try:
        _, ready, consumers = channel.queue_declare(name, passive=True)
    except amqp.exceptions.NotFound:
        return None
    return ready, consumers


def passive_counts(connection: amqp.Connection, names: list[str]) -> dict[str, tuple[int, int] | None]:
    """Ready count and consumers of each queue, on throwaway channels (a missing queue closes one)."""
    result: dict[str, tuple[int, int] | None] = {}
    channel = connection.channel()
    try:
        for name in names:
            if not channel.is_open:
                channel = connection.channel()
            result[name] = queue_ready_count(channel, name)
    finally:
        if channel.is_open:
            channel.close()
    return result
