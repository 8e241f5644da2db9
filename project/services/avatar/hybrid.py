"""One browser's conversation on ``/hybrid``: HeyGen avatar + ElevenLabs ConvAI.

Protocol (the seed's, unchanged):

server → client  ``avatar_ready {session_id, url, access_token}`` (join the LiveKit room),
                 ``elevenlabs_connected``, ``user_transcript {text}``,
                 ``agent_response {text}``, ``error {message}``
client → server  ``{"type": "client_ready"}``, then binary PCM16 16 kHz mono audio.

The HeyGen session is paid from ``streaming.new`` on, so :meth:`run` stops it in
every way out: the browser leaves, HeyGen or ElevenLabs fails, the server
shuts down. A HeyGen failure mid-conversation is reported to the browser and
ends the conversation (a half-broken session would keep billing).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import WSCloseCode, WSMsgType, web

from project.integrations.heygen.client import HeyGenError, HeyGenService, StreamingSession
from project.services.avatar.configuration import AvatarSettings
from project.services.avatar.convai_relay import ConvAIError, ConvAIRelay
from project.services.avatar.session_registry import SessionRegistry

logger = logging.getLogger("avatar.hybrid")


class HybridConnection:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        settings: AvatarSettings,
        *,
        owner: str,
        registry: SessionRegistry | None,
        relay_factory: Callable[..., ConvAIRelay] = ConvAIRelay,
    ) -> None:
        self.ws = ws
        self.settings = settings
        self.owner = owner
        self.registry = registry
        self.heygen = HeyGenService(
            settings.heygen_api_key,
            settings.heygen_avatar_id,
            base_url=settings.heygen_base_url,
            quality=settings.heygen_quality,
        )
        self._relay_factory = relay_factory
        self.session: StreamingSession | None = None
        self.relay: ConvAIRelay | None = None
        self._speech: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._send_lock = asyncio.Lock()
        self._failed = False

    @property
    def log_extra(self) -> dict[str, str]:
        return {"service": "avatar", "owner": self.owner, "session_id": self.session.session_id if self.session else ""}

    async def run(self) -> None:
        try:
            await self._open_avatar()
            async for message in self.ws:
                if message.type == WSMsgType.TEXT:
                    await self._on_text(message.data)
                elif message.type == WSMsgType.BINARY:
                    if self.relay is not None:
                        await self.relay.send_audio(message.data)
                elif message.type == WSMsgType.ERROR:
                    break
        except (HeyGenError, ConvAIError) as exc:
            await self.fail(str(exc))
        except Exception as exc:
            logger.exception("avatar conversation crashed", extra=self.log_extra)
            await self.fail(f"internal error of the avatar server ({type(exc).__name__}); see its log")
        finally:
            # Shielded: a cancelled handler (server shutdown) must still stop the paid session.
            await asyncio.shield(self.close())

    async def _open_avatar(self) -> None:
        self.session = await self.heygen.create_streaming_avatar()
        logger.info("avatar session created", extra=self.log_extra)
        await self.heygen.start_session()
        await self._registry_call("publish", self.session.session_id, self.owner)
        await self.send(
            "avatar_ready",
            session_id=self.session.session_id,
            url=self.session.url,
            access_token=self.session.access_token,
        )
        self._tasks.append(asyncio.create_task(self._speak_loop(), name="avatar-speak"))
        self._tasks.append(asyncio.create_task(self._keep_alive_loop(), name="avatar-keep-alive"))

    async def _on_text(self, raw: str) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            await self.send("error", message='Messages must be JSON objects such as {"type": "client_ready"}.')
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "client_ready":
            if self.relay is None:
                await self._open_conversation()
        else:
            await self.send("error", message=f"Unknown message type {kind!r}: expected client_ready or binary audio.")

    async def _open_conversation(self) -> None:
        self.relay = self._relay_factory(
            api_key=self.settings.elevenlabs_api_key,
            agent_id=self.settings.elevenlabs_agent_id,
            base_url=self.settings.elevenlabs_base_url,
            on_user_transcript=self._on_user_transcript,
            on_agent_response=self._on_agent_response,
            on_interruption=self._on_interruption,
            on_disconnect=self._on_conversation_lost,
        )
        await self.relay.start()
        logger.info("ElevenLabs conversation connected", extra=self.log_extra)
        await self.send("elevenlabs_connected")

    # --- ConvAI callbacks: never raise, the SDK would end the conversation ---------

    async def _on_user_transcript(self, text: str) -> None:
        await self.send("user_transcript", text=text)

    async def _on_agent_response(self, text: str) -> None:
        await self.send("agent_response", text=text)
        if text:
            self._speech.put_nowait(text)

    async def _on_interruption(self) -> None:
        # The user talked over the avatar: drop what it has not said yet and cut it off.
        while not self._speech.empty():
            self._speech.get_nowait()
        if self.session is not None:
            await self._heygen_call(self.heygen.interrupt())

    async def _on_conversation_lost(self, reason: str | None) -> None:
        await self.fail(reason or "the ElevenLabs conversation ended")

    # --- background loops ------------------------------------------------------------

    async def _speak_loop(self) -> None:
        assert self.session is not None
        while True:
            text = await self._speech.get()
            ok = await self._heygen_call(self.heygen.send_task(text, task_type="repeat"))
            if not ok:
                return
            await self._registry_call("refresh", self.session.session_id)

    async def _keep_alive_loop(self) -> None:
        assert self.session is not None
        while True:
            await asyncio.sleep(self.settings.keep_alive_seconds)
            if not await self._heygen_call(self.heygen.keep_alive()):
                return
            await self._registry_call("refresh", self.session.session_id)

    async def _heygen_call(self, call: Awaitable[object]) -> bool:
        try:
            await call
        except HeyGenError as exc:
            await self.fail(str(exc))
            return False
        return True

    async def _registry_call(self, method: str, *args: str) -> None:
        """Redis only helps the avatar service find this session: its trouble must not end the talk."""
        if self.registry is None:
            return
        try:
            await asyncio.to_thread(getattr(self.registry, method), *args)
        except Exception as exc:
            logger.warning("could not %s the live session in Redis: %s", method, exc, extra=self.log_extra)

    # --- output and shutdown ---------------------------------------------------------

    async def send(self, kind: str, **fields: object) -> None:
        if self.ws.closed:
            return
        async with self._send_lock:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_json({"type": kind, **fields})

    async def fail(self, message: str) -> None:
        """Report ``message`` to the browser and end the conversation (clean-up follows in run())."""
        if self._failed:
            return
        self._failed = True
        logger.warning("avatar conversation failed: %s", message, extra=self.log_extra)
        await self.send("error", message=message)
        with contextlib.suppress(Exception):
            await self.ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"avatar error")

    async def close(self) -> None:
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        for task in self._tasks:
            if task is not current:
                with contextlib.suppress(BaseException):
                    await task
        if self.relay is not None:
            with contextlib.suppress(Exception):
                await self.relay.close()
        if self.session is not None:
            stopped = await self.heygen.stop_session(self.session.session_id)
            await self._registry_call("withdraw", self.session.session_id)
            logger.info("avatar session stopped" if stopped else "avatar session stop failed", extra=self.log_extra)
        await self.heygen.close()
        if not self.ws.closed:
            with contextlib.suppress(Exception):
                await self.ws.close()
