"""The web server as production runs it (gunicorn, threaded workers) and its event stream, for tests."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from django.core.signals import request_finished
from django.db import close_old_connections

from tests.support.processes import stop
from tests.support.servers import subprocess_env


@contextlib.contextmanager
def gunicorn(tmp_path: Path, *, threads: int = 8, **env: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """One gthread gunicorn worker on a free port: (its base URL, the master process); stopped after."""
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("w+") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "project.wsgi:application", "--bind", "127.0.0.1:0",
             "--worker-class", "gthread", "--threads", str(threads), "--workers", "1", "--no-control-socket"],
            env=subprocess_env(**env), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not (found := re.search(r"Listening at: http://127.0.0.1:(\d+)", log_path.read_text())):
                assert server.poll() is None, f"gunicorn exited: {log_path.read_text()}"
                assert time.monotonic() < deadline, "gunicorn did not start in 60 s"
                time.sleep(0.2)
            yield f"http://127.0.0.1:{found.group(1)}", server
        finally:
            stop(server, timeout=30)


def parse_sse(message: str) -> dict:
    """One server-sent-events message as {field: value}, data decoded from JSON."""
    fields: dict = {}
    for line in message.strip().splitlines():
        name, _, value = line.partition(": ")
        fields[name] = value
    if "data" in fields:
        fields["data"] = json.loads(fields["data"])
    return fields


def close(response) -> None:
    """Close a test client's stream (its slot is given back) as the test client closes responses:
    without Django closing the test's database connection on request_finished."""
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def status(client, url: str, **extra) -> int:
    response = client.get(url, **extra)
    if response.streaming:
        close(response)
    return response.status_code
