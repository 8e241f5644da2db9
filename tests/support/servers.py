"""Real-server plumbing shared by the tests: an isolated RabbitMQ vhost per test
run and the environment a subprocess (a Celery worker, a management command)
needs to talk to the same test database, broker and Redis as the test."""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from django.conf import settings
from django.db import connection

from project.queue_system.broker import BrokerError, Management


@dataclass
class Vhost:
    name: str
    broker_url: str
    management_url: str

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return management_request(method, path, **kwargs)


def _management() -> Management:
    return Management(vhost="/")


def management_request(method: str, path: str, **kwargs) -> requests.Response:
    """The management API as it answers, errors included (the product's credentials, percent-decoded)."""
    admin = _management()
    return requests.request(method, f"{admin.base}{path}", auth=admin.auth, timeout=10, **kwargs)


def _call(method: str, path: str, **kwargs) -> requests.Response:
    """The management API, retried for half a minute while it does not answer (a fault test or a
    benchmark may be restarting the broker); a refusal (an HTTP error) is raised at once."""
    for attempt in range(15):
        try:
            return _management().request(method, path, **kwargs)
        except BrokerError as exc:
            if attempt == 14 or not isinstance(exc.__cause__, requests.RequestException):
                raise
            time.sleep(2)
    raise AssertionError("not reached")


def create_vhost(prefix: str = "tte-test") -> Vhost:
    """A fresh vhost, the management user allowed everything in it, so a test or a benchmark
    never sees queues or policies of another run."""
    name = f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    _call("PUT", f"/api/vhosts/{quote(name, safe='')}")
    _call(
        "PUT",
        f"/api/permissions/{quote(name, safe='')}/{quote(_management().auth[0], safe='')}",
        json={"configure": ".*", "write": ".*", "read": ".*"},
    )
    broker = urlsplit(settings.CELERY_BROKER_URL)
    broker_url = urlunsplit((broker.scheme, broker.netloc, "/" + quote(name, safe=""), "", ""))
    return Vhost(name=name, broker_url=broker_url, management_url=settings.RABBITMQ_MANAGEMENT_URL)


def delete_vhost(vhost: Vhost) -> None:
    _call("DELETE", f"/api/vhosts/{quote(vhost.name, safe='')}")


def test_database_url() -> str:
    """DATABASE_URL of the database pytest-django created for this run."""
    db = connection.settings_dict
    user = quote(db.get("USER") or "postgres", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def subprocess_env(vhost: Vhost | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = test_database_url()
    if vhost is not None:
        env["CELERY_BROKER_URL"] = vhost.broker_url
    env["REDIS_URL"] = settings.REDIS_URL
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def free_port() -> int:
    """A TCP port nothing listens on right now (for a server or DevTools a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # the command may contain spaces: fields after the closing parenthesis
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children
