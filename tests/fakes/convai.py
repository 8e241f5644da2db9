"""A local ElevenLabs Conversational AI endpoint for tests.

Speaks the protocol the ``elevenlabs`` SDK's ``Conversation`` classes speak:

- ``GET /v1/convai/conversation/get-signed-url?agent_id=…`` with ``xi-api-key``
  → ``{"signed_url": "ws://…/v1/convai/conversation?agent_id=…&conversation_signature=…"}``
  (401 ``invalid_api_key`` for a wrong key, 404 for an unknown agent);
- WebSocket ``/v1/convai/conversation``: the client sends
  ``conversation_initiation_client_data``, the server answers
  ``conversation_initiation_metadata`` (pcm_16000 in and out) and a ``ping``
  the client must ``pong`` with the same ``event_id``; the client streams
  ``{"user_audio_chunk": base64 PCM16 16 kHz mono}``.

Speech recognition is a small energy detector: an utterance is speech (RMS over
``threshold``) followed by ``end_silence`` seconds of silence. Each utterance is
"transcribed" as the next line of ``transcripts`` and answered with
``reply(transcript)``: ``user_transcript``, then ``agent_response`` and an
``audio`` event. While the agent "speaks" (``agent_speaking_seconds`` after a
response) a new utterance gets an ``interruption`` first, as the real agent does.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.background_server import BackgroundServer

SAMPLE_RATE = 16_000
FRAME = 160  # 10 ms


@dataclass
class FakeConversation:
    conversation_id: str
    agent_id: str
    initiation: dict[str, Any] = field(default_factory=dict)
    audio_bytes: int = 0
    transcripts: list[str] = field(default_factory=list)
    responses: list[str] = field(default_factory=list)
    interruptions: int = 0
    pongs: list[int] = field(default_factory=list)
    closed: bool = False

    @property
    def audio_seconds(self) -> float:
        return self.audio_bytes / 2 / SAMPLE_RATE


class FakeConvAI(BackgroundServer):
    def __init__(
        self,
        api_key: str = "el-test-key-0123456789",
        agent_id: str = "agent_test_123",
        transcripts: tuple[str, ...] = ("hello avatar",),
        reply: Callable[[str], str] = lambda text: f"You said: {text}",
        threshold: float = 1000.0,
        end_silence: float = 0.3,
        agent_speaking_seconds: float = 0.0,
    ) -> None:
        super().__init__(self._build)
        self.api_key = api_key
        self.agent_id = agent_id
        self.transcripts = list(transcripts)
        self.reply = reply
        self.threshold = threshold
        self.end_silence = end_silence
        self.agent_speaking_seconds = agent_speaking_seconds
        self.conversations: list[FakeConversation] = []
        self.signatures: set[str] = set()
        self.refused_handshakes = 0

    def _build(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/convai/conversation/get-signed-url", self._signed_url)
        app.router.add_get("/v1/convai/conversation", self._conversation)
        return app

    async def _signed_url(self, request: web.Request) -> web.Response:
        if request.headers.get("xi-api-key") != self.api_key:
            return web.json_response(
                {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}, status=401
            )
        agent_id = request.query.get("agent_id", "")
        if agent_id != self.agent_id:
            return web.json_response(
                {"detail": {"status": "agent_not_found", "message": f"Agent {agent_id} not found"}}, status=404
            )
        signature = uuid.uuid4().hex
        with self.lock:
            self.signatures.add(signature)
        url = (
            f"ws://127.0.0.1:{self.port}/v1/convai/conversation?agent_id={agent_id}&conversation_signature={signature}"
        )
        return web.json_response({"signed_url": url})

    async def _conversation(self, request: web.Request) -> web.StreamResponse:
        signature = request.query.get("conversation_signature", "")
        with self.lock:
            valid = request.query.get("agent_id") == self.agent_id and signature in self.signatures
            if valid:
                self.signatures.discard(signature)  # a signed URL is good for one conversation
            else:
                self.refused_handshakes += 1
        if not valid:
            return web.json_response({"detail": {"status": "unauthorized", "message": "Invalid signature"}}, status=403)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conversation = FakeConversation(conversation_id="conv_" + uuid.uuid4().hex[:12], agent_id=self.agent_id)
        with self.lock:
            self.conversations.append(conversation)
        try:
            await self._converse(ws, conversation)
        finally:
            conversation.closed = True
        return ws

    async def _converse(self, ws: web.WebSocketResponse, conversation: FakeConversation) -> None:
        first = await ws.receive(timeout=30)
        if first.type != WSMsgType.TEXT or json.loads(first.data).get("type") != "conversation_initiation_client_data":
            await ws.close(code=1008, message=b"expected conversation_initiation_client_data")
            return
        conversation.initiation = json.loads(first.data)
        await ws.send_json(
            {
                "type": "conversation_initiation_metadata",
                "conversation_initiation_metadata_event": {
                    "conversation_id": conversation.conversation_id,
                    "agent_output_audio_format": "pcm_16000",
                    "user_input_audio_format": "pcm_16000",
                },
            }
        )
        event_id = 1
        await ws.send_json({"type": "ping", "ping_event": {"event_id": event_id, "ping_ms": None}})
        detector = _UtteranceDetector(self.threshold, self.end_silence)
        speaking_until = 0.0
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if data.get("type") == "pong":
                with self.lock:
                    conversation.pongs.append(int(data.get("event_id", -1)))
                continue
            chunk = data.get("user_audio_chunk")
            if chunk is None:
                continue
            pcm = base64.b64decode(chunk)
            with self.lock:
                conversation.audio_bytes += len(pcm)
            for started, ended in detector.feed(pcm):
                if started and time.monotonic() < speaking_until:
                    speaking_until = 0.0
                    with self.lock:
                        conversation.interruptions += 1
                    await ws.send_json({"type": "interruption", "interruption_event": {"event_id": event_id}})
                if ended:
                    event_id += 1
                    speaking_until = await self._answer(ws, conversation, event_id)

    async def _answer(self, ws: web.WebSocketResponse, conversation: FakeConversation, event_id: int) -> float:
        with self.lock:
            index = len(conversation.transcripts)
            transcript = self.transcripts[index] if index < len(self.transcripts) else f"utterance {index + 1}"
            conversation.transcripts.append(transcript)
            response = self.reply(transcript)
            conversation.responses.append(response)
        await ws.send_json({"type": "user_transcript", "user_transcription_event": {"user_transcript": transcript}})
        await asyncio.sleep(0.05)
        await ws.send_json({"type": "agent_response", "agent_response_event": {"agent_response": response}})
        silence = base64.b64encode(b"\x00\x00" * FRAME).decode()
        await ws.send_json({"type": "audio", "audio_event": {"audio_base_64": silence, "event_id": event_id}})
        return time.monotonic() + self.agent_speaking_seconds


class _UtteranceDetector:
    """Energy-based start/end of speech over 10 ms frames of PCM16 mono."""

    def __init__(self, threshold: float, end_silence: float) -> None:
        self.threshold = threshold
        self.end_frames = max(1, round(end_silence * SAMPLE_RATE / FRAME))
        self.buffer = b""
        self.in_speech = False
        self.silent_frames = 0

    def feed(self, pcm: bytes) -> list[tuple[bool, bool]]:
        """Returns (speech started, utterance ended) for each change in this chunk."""
        self.buffer += pcm
        changes = []
        size = FRAME * 2
        while len(self.buffer) >= size:
            frame, self.buffer = self.buffer[:size], self.buffer[size:]
            samples = struct.unpack(f"<{FRAME}h", frame)
            loud = (sum(s * s for s in samples) / FRAME) ** 0.5 > self.threshold
            if loud:
                if not self.in_speech:
                    self.in_speech = True
                    changes.append((True, False))
                self.silent_frames = 0
            elif self.in_speech:
                self.silent_frames += 1
                if self.silent_frames >= self.end_frames:
                    self.in_speech = False
                    self.silent_frames = 0
                    changes.append((False, True))
        return changes


def speech_pcm(seconds: float, frequency: float = 440.0, amplitude: int = 8000) -> bytes:
    """A sine tone as PCM16 16 kHz mono: what the fake hears as speech."""
    count = int(seconds * SAMPLE_RATE)
    return struct.pack(
        f"<{count}h", *(int(amplitude * math.sin(2 * math.pi * frequency * i / SAMPLE_RATE)) for i in range(count))
    )


def silence_pcm(seconds: float) -> bytes:
    return b"\x00\x00" * int(seconds * SAMPLE_RATE)
