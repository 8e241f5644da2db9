"""A local HeyGen Streaming API (interactive avatar, v2/LiveKit) for tests.

Speaks what ``api.heygen.com`` speaks: ``POST /v1/streaming.<name>`` with the key
in ``x-api-key`` (or a ``Bearer`` token from ``streaming.create_token``), v1
envelopes ``{"code": 100, "message": "success", "data": ...}`` and HeyGen's error
codes: 40102 unauthorized, 10001–10005 "session state wrong: <state>" (a task
before ``streaming.start`` gets "session state wrong: new"), 10006 session not
found, 10007 concurrent limit reached, 10012 avatar not found. Sessions expire
after ``idle_timeout`` seconds without activity, like HeyGen's idle timeout.
``delay("streaming.task", seconds)`` makes calls answer late: a ``sync`` task
of a long speech answers only once the avatar has said it.

There is no media server: the ``url`` of a session points at ``/livekit`` here,
which records the browser's LiveKit connection attempts and refuses them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.background_server import BackgroundServer


@dataclass
class FakeSession:
    session_id: str
    avatar_id: str
    access_token: str
    state: str = "new"  # new → connected → closed
    last_activity: float = field(default_factory=time.monotonic)
    closed_reason: str = ""
    request: dict[str, Any] = field(default_factory=dict)


@dataclass
class Failure:
    endpoint: str
    status: int
    code: int
    message: str
    times: int


class FakeHeyGen(BackgroundServer):
    def __init__(
        self,
        api_key: str = "hg-test-key-0123456789",
        avatars: tuple[str, ...] = ("Test_Avatar_public",),
        idle_timeout: float = 120.0,
        max_sessions: int = 3,
    ) -> None:
        super().__init__(self._build)
        self.api_key = api_key
        self.avatars = set(avatars)
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self.sessions: dict[str, FakeSession] = {}
        self.tokens: set[str] = set()
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.tasks: list[dict[str, Any]] = []
        self.interrupts: list[str] = []
        self.keep_alives: list[str] = []
        self.livekit_requests: list[dict[str, str]] = []
        self._failures: list[Failure] = []
        self._delays: dict[str, float] = {}

    # --- what tests use ---------------------------------------------------------

    def fail(
        self, endpoint: str, *, status: int = 500, code: int = 500, message: str = "internal error", times: int = 1
    ):
        """Make the next ``times`` calls of ``endpoint`` (e.g. "streaming.task") fail."""
        with self.lock:
            self._failures.append(Failure(endpoint, status, code, message, times))

    def delay(self, endpoint: str, seconds: float) -> None:
        """Answer every later call of ``endpoint`` ``seconds`` late (0: on time again)."""
        with self.lock:
            self._delays[endpoint] = seconds

    def live_sessions(self) -> list[FakeSession]:
        """Sessions being billed: created and neither stopped nor expired."""
        with self.lock:
            self._expire_idle()
            return [s for s in self.sessions.values() if s.state != "closed"]

    def task_texts(self) -> list[str]:
        with self.lock:
            return [task["text"] for task in self.tasks]

    def endpoint_calls(self, endpoint: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for name, body in self.calls if name == endpoint]

    # --- the API -------------------------------------------------------------------

    def _build(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/{name}", self._dispatch)
        app.router.add_route("GET", "/livekit/{tail:.*}", self._livekit)
        return app

    async def _dispatch(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        handler = getattr(self, "_" + name.replace(".", "_"), None)
        if handler is None or not name.startswith("streaming."):
            return _error(404, 404, f"unknown endpoint {name}")
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            return _error(400, 400, "request body is not JSON")
        with self.lock:
            self.calls.append((name, body))
            if not self._authorised(request):
                return _error(401, 40102, "Unauthorized")
            delay = self._delays.get(name, 0.0)
        if delay:
            await asyncio.sleep(delay)
        with self.lock:
            for failure in self._failures:
                if failure.endpoint == name and failure.times > 0:
                    failure.times -= 1
                    return _error(failure.status, failure.code, failure.message)
            self._expire_idle()
            return handler(body)

    def _authorised(self, request: web.Request) -> bool:
        if request.headers.get("x-api-key") == self.api_key:
            return True
        auth = request.headers.get("Authorization", "")
        return auth.startswith("Bearer ") and auth[7:] in self.tokens

    def _streaming_create_token(self, body: dict[str, Any]) -> web.Response:
        token = "tok-" + uuid.uuid4().hex
        self.tokens.add(token)
        return web.json_response({"error": None, "data": {"token": token}})

    def _streaming_new(self, body: dict[str, Any]) -> web.Response:
        avatar_id = body.get("avatar_id") or "default"
        if avatar_id != "default" and avatar_id not in self.avatars:
            return _error(400, 10012, "avatar not found")
        if sum(1 for s in self.sessions.values() if s.state != "closed") >= self.max_sessions:
            return _error(400, 10007, "Concurrent limit reached")
        session = FakeSession(
            session_id=str(uuid.uuid4()), avatar_id=avatar_id, access_token="lk-" + uuid.uuid4().hex, request=body
        )
        self.sessions[session.session_id] = session
        return _ok(
            {
                "session_id": session.session_id,
                "sdp": None,
                "access_token": session.access_token,
                "url": f"ws://127.0.0.1:{self.port}/livekit",
                "ice_servers": None,
                "ice_servers2": None,
                "is_paid": True,
                "session_duration_limit": 600,
            }
        )

    def _streaming_start(self, body: dict[str, Any]) -> web.Response:
        session, error = self._session(body, expected="new")
        if error:
            return error
        session.state = "connected"
        session.last_activity = time.monotonic()
        return _ok(None)

    def _streaming_task(self, body: dict[str, Any]) -> web.Response:
        session, error = self._session(body, expected="connected")
        if error:
            return error
        text = body.get("text") or ""
        if not text.strip():
            return _error(400, 400, "text is required")
        session.last_activity = time.monotonic()
        self.tasks.append({"session_id": session.session_id, **body})
        return _ok({"duration_ms": 60 * len(text), "task_id": uuid.uuid4().hex})

    def _streaming_keep_alive(self, body: dict[str, Any]) -> web.Response:
        session, error = self._session(body, expected="connected")
        if error:
            return error
        session.last_activity = time.monotonic()
        self.keep_alives.append(session.session_id)
        return _ok(None)

    def _streaming_interrupt(self, body: dict[str, Any]) -> web.Response:
        session, error = self._session(body, expected="connected")
        if error:
            return error
        self.interrupts.append(session.session_id)
        return _ok(None)

    def _streaming_stop(self, body: dict[str, Any]) -> web.Response:
        session, error = self._session(body, expected=None)
        if error:
            return error
        session.state = "closed"
        session.closed_reason = "stopped"
        return _ok(None)

    def _session(self, body: dict[str, Any], expected: str | None) -> tuple[FakeSession, web.Response | None]:
        session = self.sessions.get(body.get("session_id") or "")
        if session is None:
            return None, _error(400, 10006, "Session not found")  # type: ignore[return-value]
        if session.state == "closed" or (expected is not None and session.state != expected):
            code = {"new": 10001, "connected": 10003, "closed": 10005}[session.state]
            return session, _error(400, code, f"session state wrong: {session.state}")
        return session, None

    def _expire_idle(self) -> None:
        now = time.monotonic()
        for session in self.sessions.values():
            if session.state != "closed" and now - session.last_activity > self.idle_timeout:
                session.state = "closed"
                session.closed_reason = "idle timeout"

    async def _livekit(self, request: web.Request) -> web.Response:
        with self.lock:
            self.livekit_requests.append({"path": request.path, "access_token": request.query.get("access_token", "")})
        return web.Response(status=503, text="fake LiveKit: no media server here")


def _ok(data: Any) -> web.Response:
    return web.json_response({"code": 100, "message": "success", "data": data})


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status)
