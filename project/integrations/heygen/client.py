"""HeyGen Streaming API (interactive avatar, LiveKit transport) over HTTP.

Every call is a ``POST {base_url}/v1/streaming.<name>`` with the account key in
``x-api-key``. Answers come in HeyGen's v1 envelope ``{"code": 100, "message":
"success", "data": {...}}``; a failure carries another ``code`` and a
``message`` (``10001`` … ``10005`` "session state wrong: <state>", ``10006``
session not found, ``10007`` concurrent limit reached, ``40102`` unauthorized).
``streaming.create_token`` answers in the v2 envelope ``{"error": null,
"data": {"token": ...}}``.

A paid session is billed from ``streaming.new`` until ``streaming.stop`` (or
HeyGen's own idle timeout), so callers must stop every session they create:
:meth:`HeyGenService.stop_session` never raises for that reason.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

logger = logging.getLogger("integrations.heygen")

DEFAULT_BASE_URL = "https://api.heygen.com"

# Codes that mean "this session is gone or not usable": the caller should stop
# using the session id (and may open a new one).
SESSION_STATE_CODES = frozenset({10001, 10002, 10003, 10004, 10005, 10006})
# Codes worth retrying later: the account is momentarily at its limit.
RETRYABLE_CODES = frozenset({10007, 400123})
UNAUTHORIZED_CODES = frozenset({40102, 400112})


class HeyGenError(Exception):
    """HeyGen refused a call or could not be reached.

    ``str(error)`` is safe to show to a user: it names the endpoint and HeyGen's
    own message, never the API key.
    """

    def __init__(self, endpoint: str, message: str, *, status: int | None = None, code: int | None = None) -> None:
        self.endpoint = endpoint
        self.status = status
        self.code = code
        self.detail = message
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = f"HeyGen {self.endpoint}"
        if self.code in UNAUTHORIZED_CODES or self.status == 401:
            return f"{where}: the HeyGen API key was refused ({self.detail})"
        if self.code in SESSION_STATE_CODES:
            return f"{where}: the avatar session is not in the correct state ({self.detail})"
        if self.code == 10007:
            return f"{where}: HeyGen's concurrent session limit is reached ({self.detail})"
        suffix = f" (code {self.code})" if self.code is not None else ""
        return f"{where}: {self.detail}{suffix}"

    @property
    def session_unusable(self) -> bool:
        return self.code in SESSION_STATE_CODES

    @property
    def retryable(self) -> bool:
        """Worth trying again later: network trouble, HeyGen overloaded or at its limit."""
        if self.code in RETRYABLE_CODES:
            return True
        return self.status is None or self.status == 429 or self.status >= 500


@dataclass(frozen=True)
class StreamingSession:
    """What ``streaming.new`` returns: the LiveKit room the browser joins."""

    session_id: str
    url: str
    access_token: str
    session_duration_limit: int | None = None


class HeyGenService:
    """Async client of the streaming endpoints; one per process or connection.

    Use as ``async with HeyGenService(key, avatar_id) as heygen:`` or call
    :meth:`close` when done (it closes the HTTP session, not avatar sessions).
    """

    def __init__(
        self,
        api_key: str,
        avatar_id: str = "",
        *,
        base_url: str = DEFAULT_BASE_URL,
        quality: str = "medium",
        timeout: float = 30.0,
        http: aiohttp.ClientSession | None = None,
    ) -> None:
        self.avatar_id = avatar_id
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.quality = quality
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._http = http
        self._owns_http = http is None
        self.session: StreamingSession | None = None

    async def __aenter__(self) -> HeyGenService:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._http is not None and self._owns_http:
            await self._http.close()
        self._http = None

    # --- endpoints -------------------------------------------------------------

    async def create_token(self) -> str:
        """A short-lived session token (``streaming.create_token``) for browser SDKs."""
        data = await self._post("streaming.create_token", {})
        token = (data or {}).get("token")
        if not token:
            raise HeyGenError("streaming.create_token", "the answer carried no token")
        return token

    async def create_streaming_avatar(
        self, *, activity_idle_timeout: int | None = None, timeout: float | None = None
    ) -> StreamingSession:
        """``streaming.new``: a new LiveKit (v2) session of the configured avatar.

        It becomes this client's current session: the calls below use it when
        no ``session_id`` is given.
        """
        body: dict[str, Any] = {"quality": self.quality, "version": "v2", "video_encoding": "VP8"}
        if self.avatar_id:
            body["avatar_id"] = self.avatar_id
        if activity_idle_timeout is not None:
            # Seconds without activity before HeyGen closes the session itself (30–3600).
            body["activity_idle_timeout"] = activity_idle_timeout
        data = await self._post("streaming.new", body, timeout)
        try:
            self.session = StreamingSession(
                session_id=data["session_id"],
                url=data["url"],
                access_token=data["access_token"],
                session_duration_limit=data.get("session_duration_limit"),
            )
        except (KeyError, TypeError) as exc:
            raise HeyGenError("streaming.new", f"unexpected answer, missing {exc}") from None
        return self.session

    async def start_session(self, session_id: str | None = None, *, timeout: float | None = None) -> None:
        await self._post("streaming.start", {"session_id": self._session_id(session_id, "streaming.start")}, timeout)

    async def send_task(
        self,
        text: str,
        task_type: str = "repeat",
        task_mode: str = "async",
        *,
        session_id: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Make the avatar speak ``text``. ``repeat`` says it verbatim (lip-synced);
        ``sync`` mode answers only when the avatar has finished speaking."""
        body = {
            "session_id": self._session_id(session_id, "streaming.task"),
            "text": text,
            "task_type": task_type,
            "task_mode": task_mode,
        }
        return await self._post("streaming.task", body, timeout) or {}

    async def keep_alive(self, session_id: str | None = None) -> None:
        await self._post("streaming.keep_alive", {"session_id": self._session_id(session_id, "streaming.keep_alive")})

    async def interrupt(self, session_id: str | None = None, *, timeout: float | None = None) -> None:
        """Stop what the avatar is saying now; the session stays open."""
        body = {"session_id": self._session_id(session_id, "streaming.interrupt")}
        await self._post("streaming.interrupt", body, timeout)

    async def stop_session(self, session_id: str | None = None, *, timeout: float | None = None) -> bool:
        """Stop a session; returns False (and logs) instead of raising, because it
        runs in clean-up paths where the original error matters more."""
        target = session_id or (self.session.session_id if self.session else None)
        if target is None:
            return True
        try:
            await self._post("streaming.stop", {"session_id": target}, timeout)
        except HeyGenError as exc:
            if exc.code not in (10005, 10006):  # already closed or gone: nothing is billed any more
                logger.warning("could not stop HeyGen session %s: %s", target, exc)
                return False
        if self.session is not None and self.session.session_id == target:
            self.session = None
        return True

    def _session_id(self, session_id: str | None, endpoint: str) -> str:
        if session_id:
            return session_id
        if self.session is None:
            raise HeyGenError(endpoint, "no avatar session: call create_streaming_avatar() first")
        return self.session.session_id

    # --- transport --------------------------------------------------------------

    async def _post(self, name: str, body: dict[str, Any], timeout: float | None = None) -> Any:
        """``timeout``: seconds for this call instead of the client's (a caller's time budget)."""
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self._timeout)
        url = f"{self.base_url}/v1/{name}"
        headers = {"x-api-key": self._api_key, "accept": "application/json"}
        options: dict[str, Any] = {} if timeout is None else {"timeout": aiohttp.ClientTimeout(total=max(0.1, timeout))}
        try:
            async with self._http.post(url, json=body, headers=headers, **options) as response:
                status = response.status
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise HeyGenError(name, f"HeyGen could not be reached ({type(exc).__name__})") from None
        payload = _json_or_none(text)
        if not isinstance(payload, dict):
            raise HeyGenError(name, f"HTTP {status} with a non-JSON answer", status=status)
        code = payload.get("code")
        if status >= 400 or payload.get("error") or (code is not None and code != 100):
            message = payload.get("message") or _error_text(payload.get("error")) or f"HTTP {status}"
            raise HeyGenError(name, str(message), status=status, code=code if isinstance(code, int) else None)
        return payload.get("data")


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error.get("code") or "")
    return str(error or "")
