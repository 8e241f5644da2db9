"""The ElevenLabs Conversational AI leg of the hybrid avatar, through the SDK.

The ``elevenlabs`` SDK's ``AsyncConversation`` already speaks the ConvAI
WebSocket protocol (signed URL, initiation data, ``user_audio_chunk``,
ping/pong, interruptions) on the running asyncio loop, so it is used as is:
its *audio interface* is the seam. :class:`RelayAudioInterface` hands the
SDK the browser's PCM16 chunks instead of a microphone and drops the agent's
audio — the avatar speaks the agent's words with HeyGen's voice, lip-synced.

The conversation URL is signed with the API key (``get-signed-url``), so the
key travels only in an HTTP header to ElevenLabs and never in a WebSocket URL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from elevenlabs import ElevenLabs
from elevenlabs.conversational_ai.conversation import (
    AsyncAudioInterface,
    AsyncConversation,
    ClientTools,
    DisconnectionDetails,
)

logger = logging.getLogger("avatar.convai")

TextCallback = Callable[[str], Awaitable[None]]


class ConvAIError(Exception):
    """The conversation could not start or ended abnormally; the text is safe to show."""


class RelayAudioInterface(AsyncAudioInterface):
    """Audio in from the browser (via :meth:`push`), agent audio out to nowhere."""

    def __init__(self, on_interrupt: Callable[[], Awaitable[None]]) -> None:
        self._input: Callable[[bytes], Awaitable[None]] | None = None
        self._on_interrupt = on_interrupt
        self.started = asyncio.Event()

    async def start(self, input_callback: Callable[[bytes], Awaitable[None]]) -> None:
        self._input = input_callback
        self.started.set()

    async def stop(self) -> None:
        self._input = None

    async def output(self, audio: bytes) -> None:
        """The agent's own voice is not played: HeyGen speaks its words instead."""

    async def interrupt(self) -> None:
        await self._on_interrupt()

    async def push(self, pcm16: bytes) -> None:
        if self._input is not None and pcm16:
            await self._input(pcm16)


class ConvAIRelay:
    """One ConvAI conversation relaying one browser's audio."""

    def __init__(
        self,
        *,
        api_key: str,
        agent_id: str,
        base_url: str,
        on_user_transcript: TextCallback,
        on_agent_response: TextCallback,
        on_interruption: Callable[[], Awaitable[None]],
        on_disconnect: Callable[[str | None], Awaitable[None]],
    ) -> None:
        self._api_key = api_key
        self._agent_id = agent_id
        self._base_url = base_url
        self._on_disconnect = on_disconnect
        self._on_user_transcript = on_user_transcript
        self._on_agent_response = on_agent_response
        self.audio = RelayAudioInterface(on_interruption)
        self._conversation: AsyncConversation | None = None
        self._ended_by_us = False
        # Until start() returns, failures are raised from it rather than reported twice.
        self._running = False

    async def start(self, timeout: float = 30.0) -> None:
        """Open the conversation; returns once audio can flow, raises :class:`ConvAIError`."""
        client = ElevenLabs(api_key=self._api_key, base_url=self._base_url)
        self._conversation = AsyncConversation(
            client,
            self._agent_id,
            requires_auth=True,
            audio_interface=self.audio,
            # Tools run on this loop: without it the SDK starts a thread with a loop of its own.
            client_tools=ClientTools(loop=asyncio.get_running_loop()),
            callback_user_transcript=self._on_user_transcript,
            callback_agent_response=self._on_agent_response,
            callback_disconnect=self._disconnected,
        )
        try:
            await self._conversation.start_session()
        except Exception as exc:  # the signed-URL request: ApiError, network errors
            raise ConvAIError(describe_error(exc)) from None
        started = asyncio.ensure_future(self.audio.started.wait())
        ended = self._conversation._task
        done, _ = await asyncio.wait({started, ended}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if started in done:
            self._running = True
            return
        started.cancel()
        if ended in done:
            raise ConvAIError(describe_error(ended.exception()) if ended.exception() else "the conversation ended")
        raise ConvAIError(f"no answer from ElevenLabs within {timeout:.0f} s")

    async def send_audio(self, pcm16: bytes) -> None:
        await self.audio.push(pcm16)

    async def close(self) -> None:
        conversation, self._conversation = self._conversation, None
        if conversation is None:
            return
        self._ended_by_us = True
        await conversation.end_session()
        if conversation._task is not None:
            try:
                await asyncio.wait_for(conversation._task, timeout=5)
            except Exception:  # noqa: S110 — already ended; its error was reported through _disconnected
                pass

    async def _disconnected(self, details: DisconnectionDetails) -> None:
        if self._ended_by_us or not self._running:
            return
        if details.reason == "error":
            reason = f"the conversation with ElevenLabs broke off (code {details.close_code or 'none'})"
        else:
            reason = "ElevenLabs ended the conversation"
        await self._on_disconnect(reason)


def describe_error(exc: BaseException | None) -> str:
    """A message about ``exc`` fit for a browser: status and ElevenLabs' own words, no keys or URLs."""
    status = getattr(exc, "status_code", None)
    if status is not None:
        body = getattr(exc, "body", None)
        detail = body.get("detail") if isinstance(body, dict) else None
        message = detail.get("message") if isinstance(detail, dict) else None
        if status == 401:
            return f"ElevenLabs refused the API key (HTTP 401{': ' + message if message else ''})"
        if status == 404:
            return f"ElevenLabs does not know this agent (HTTP 404{': ' + message if message else ''})"
        return f"ElevenLabs answered HTTP {status}{': ' + message if message else ''}"
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status is not None:  # websockets' InvalidStatus: the handshake was refused
        return f"ElevenLabs refused the conversation (HTTP {status})"
    return f"ElevenLabs could not be reached ({type(exc).__name__})"
