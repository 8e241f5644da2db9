"""What every local SaaS fake shares: a threaded HTTP server on 127.0.0.1, a
record of the requests it received, and switchable failure modes.

A fake runs inside the test process (a thread, so tests can read
``fake.requests`` directly) or by hand from a shell
(``python -m tests.fakes.elevenlabs_fake --port 8765``). In both cases it can be
steered over HTTP as well:

- ``POST /_fake/mode`` with ``{"mode": "429", "times": 1, "retry_after": 2}``
- ``GET /_fake/requests`` (``DELETE`` clears them)

A mode set with ``times=N`` applies to the next N API requests, then the fake
answers normally again — that is how tests exercise retries.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "json": self.json,
        }


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, **headers: str) -> Response:
        return cls(status, json.dumps(payload).encode(), "application/json", headers)


@dataclass
class Mode:
    name: str = "ok"
    times: int | None = None  # None: until changed
    options: dict[str, Any] = field(default_factory=dict)


class FakeServer:
    """Subclasses implement ``handle(request, mode) -> Response`` and list their ``MODES``."""

    name = "fake"
    MODES: tuple[str, ...] = ("ok",)

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._mode = Mode()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self.httpd.daemon_threads = True

    # --- lifecycle ----------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name=f"{self.name}-fake", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a "slow" mode
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- modes and records --------------------------------------------------

    def set_mode(self, mode: str, times: int | None = None, **options: Any) -> None:
        if mode not in self.MODES:
            raise ValueError(f"unknown mode {mode!r} for the {self.name} fake; one of {', '.join(self.MODES)}")
        with self._lock:
            self._mode = Mode(mode, times, options)

    def take_mode(self) -> Mode:
        """The mode for this API request, counting down a ``times`` limit."""
        with self._lock:
            mode = self._mode
            if mode.times is not None:
                mode.times -= 1
                if mode.times <= 0:
                    self._mode = Mode()
            return Mode(mode.name, None, dict(mode.options))

    def sleep(self, seconds: float) -> None:
        """A delay that ends early when the fake stops."""
        self._stopping.wait(seconds)

    def api_requests(self, path_prefix: str = "/") -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(path_prefix) and not r.path.startswith("/_fake/")]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    # --- HTTP ---------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> Response:  # pragma: no cover - subclasses
        raise NotImplementedError

    def _control(self, request: RecordedRequest) -> Response:
        if request.path == "/_fake/mode" and request.method == "POST":
            payload = request.json or {}
            options = {k: v for k, v in payload.items() if k not in ("mode", "times")}
            try:
                self.set_mode(str(payload.get("mode", "ok")), payload.get("times"), **options)
            except ValueError as exc:
                return Response.json(400, {"error": str(exc)})
            return Response.json(200, {"mode": payload.get("mode", "ok")})
        if request.path == "/_fake/requests" and request.method == "GET":
            return Response.json(200, [r.as_dict() for r in self.api_requests()])
        if request.path == "/_fake/requests" and request.method == "DELETE":
            self.clear()
            return Response.json(200, {"cleared": True})
        return Response.json(404, {"error": f"no control endpoint {request.method} {request.path}"})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 60  # an idle keep-alive connection releases its thread after a minute
            server_version = f"{fake.name}-fake"

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = RecordedRequest(
                    method=self.command,
                    path=parts.path,
                    query={k: v[-1] for k, v in parse_qs(parts.query).items()},
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                if request.path.startswith("/_fake/"):
                    response = fake._control(request)
                else:
                    with fake._lock:
                        fake.requests.append(request)
                    response = fake.handle(request)
                try:
                    self.send_response(response.status)
                    self.send_header("Content-Type", response.content_type)
                    self.send_header("Content-Length", str(len(response.body)))
                    for name, value in response.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(response.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test); nothing to answer

            do_GET = do_POST = do_DELETE = do_PUT = do_HEAD = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean; requests are in fake.requests

        return Handler


def run_from_command_line(fake_class: type[FakeServer], description: str, **kwargs: Any) -> None:
    """``python -m tests.fakes.<name> --port 8765``: serve until Ctrl+C."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default=None, help="the only key accepted (default: any key)")
    parser.add_argument("--mode", default="ok", choices=fake_class.MODES)
    args = parser.parse_args()
    fake = fake_class(host=args.host, port=args.port, api_key=args.api_key, **kwargs)
    fake.set_mode(args.mode)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    fake.start()
    print(f"{fake.name} fake listening on {fake.url} (mode {args.mode}); Ctrl+C stops it", flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
