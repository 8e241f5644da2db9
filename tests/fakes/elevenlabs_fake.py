"""A local ElevenLabs API that the official ``elevenlabs`` SDK talks to unchanged.

It speaks what the SDK sends (read from elevenlabs 2.78's ``raw_client``
modules): ``POST /v1/text-to-speech/{voice_id}?output_format=...`` with the
key in ``xi-api-key`` and ``{"text", "model_id", ...}`` as JSON, answered with
the audio bytes and the ``character-cost`` and ``request-id`` headers;
``GET /v1/voices``, ``GET /v2/voices`` and ``GET /v1/voices/{id}``;
``GET /v1/user/subscription``. Errors have the API's shape,
``{"detail": {"status": ..., "message": ...}}``.

The audio is real speech, synthesised with espeak-ng and resampled with sox.
``wav_<rate>`` and ``pcm_<rate>`` (16-bit mono) are produced; MP3 and Opus are
refused with a 400 that says why: no MP3/Opus encoder is installed here, and
returning WAV bytes labelled MP3 would be a lie the tests could not see.

Modes: ``ok``; ``401`` (invalid_api_key); ``quota`` (401 quota_exceeded);
``429`` (too_many_concurrent_requests, option ``retry_after``); ``busy``
(429 system_busy); ``500``; ``slow`` (option ``delay`` seconds, then a normal
answer). A ``character_limit`` makes the fake run out of quota by itself.

By hand: ``python -m tests.fakes.elevenlabs_fake --port 8765 [--api-key K]``,
then ``ELEVENLABS_BASE_URL=http://127.0.0.1:8765``.
"""

from __future__ import annotations

import io
import math
import re
import shutil
import subprocess
import uuid
import wave
from typing import Any

from tests.fakes.http_fake import FakeServer, RecordedRequest, Response, run_from_command_line

VOICES: list[dict[str, Any]] = [
    {
        "voice_id": "JBFqnCBsd6RMkjVDRZzb",
        "name": "George",
        "category": "premade",
        "labels": {"accent": "british", "gender": "male", "language": "en"},
        "espeak": "en-gb",
    },
    {
        "voice_id": "fakeVoiceLuciaEs0001",
        "name": "Lucía (fake)",
        "category": "premade",
        "labels": {"accent": "castilian", "gender": "female", "language": "es"},
        "espeak": "es",
    },
    {
        "voice_id": "fakeVoiceMateoMx0002",
        "name": "Mateo (fake)",
        "category": "cloned",
        "labels": {"accent": "mexican", "gender": "male", "language": "es"},
        "espeak": "es-419",
    },
]
HALF_PRICE_MODELS = {"eleven_flash_v2", "eleven_flash_v2_5", "eleven_turbo_v2", "eleven_turbo_v2_5"}
_TTS_PATH = re.compile(r"^/v1/text-to-speech/(?P<voice_id>[^/]+)(?P<stream>/stream)?$")
_VOICE_PATH = re.compile(r"^/v1/voices/(?P<voice_id>[^/]+)$")


def detail(status: int, code: str, message: str, **headers: str) -> Response:
    return Response.json(status, {"detail": {"status": code, "message": message}}, **headers)


def find_tools() -> dict[str, str]:
    """Absolute paths of espeak-ng and sox, found once (a test may narrow PATH later)."""
    return {tool: path for tool in ("espeak-ng", "sox") if (path := shutil.which(tool))}


def synthesize(text: str, espeak_voice: str, sample_rate: int, tools: dict[str, str]) -> bytes:
    """16-bit mono PCM of ``text`` spoken by espeak-ng at ``sample_rate``."""
    for tool in ("espeak-ng", "sox"):
        if tool not in tools:
            raise RuntimeError(f"{tool} is not installed (apt-get install espeak-ng sox, or ./scripts/setup)")
    # Text goes through stdin so a phrase starting with "-" is never read as an option.
    spoken = subprocess.run(
        [tools["espeak-ng"], "-v", espeak_voice, "--stdout", "--stdin"],
        input=text.encode("utf-8"),
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    # espeak-ng streams a WAV whose header length is wrong; sox re-reads it and emits raw PCM.
    raw = ["-t", "raw", "-r", str(sample_rate), "-c", "1", "-b", "16", "-e", "signed-integer", "-"]
    return subprocess.run(
        [tools["sox"], "-t", "wav", "-", *raw], input=spoken, capture_output=True, check=True, timeout=60
    ).stdout


def as_wav(pcm: bytes, sample_rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm)
    return buffer.getvalue()


class ElevenLabsFake(FakeServer):
    name = "elevenlabs"
    MODES = ("ok", "401", "quota", "429", "busy", "500", "slow")

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None, character_limit: int | None = None
    ) -> None:
        super().__init__(host, port)
        self.api_key = api_key
        self.character_limit = character_limit
        self.characters_used = 0
        self.tools = find_tools()

    def tts_requests(self) -> list[RecordedRequest]:
        return [r for r in self.api_requests("/v1/text-to-speech/") if r.method == "POST"]

    def handle(self, request: RecordedRequest) -> Response:
        key = request.headers.get("xi-api-key", "")
        if not key or (self.api_key is not None and key != self.api_key):
            return detail(401, "invalid_api_key", "Invalid API key")
        mode = self.take_mode()
        if mode.name == "401":
            return detail(401, "invalid_api_key", "Invalid API key")
        if mode.name == "quota":
            return detail(401, "quota_exceeded", "This request exceeds your quota. You have 0 credits remaining.")
        if mode.name == "429":
            retry_after = str(mode.options.get("retry_after", 1))
            return detail(
                429,
                "too_many_concurrent_requests",
                "Too many concurrent requests for your subscription.",
                **{"Retry-After": retry_after},
            )
        if mode.name == "busy":
            return detail(429, "system_busy", "Our services are experiencing high traffic. Please retry.")
        if mode.name == "500":
            return detail(500, "internal_error", "An internal error occurred.")
        if mode.name == "slow":
            self.sleep(float(mode.options.get("delay", 5)))

        if match := _TTS_PATH.match(request.path):
            if request.method != "POST":
                return detail(405, "method_not_allowed", "Use POST.")
            return self._text_to_speech(match["voice_id"], request)
        if request.path in ("/v1/voices", "/v2/voices") and request.method == "GET":
            return self._voices(request)
        if (match := _VOICE_PATH.match(request.path)) and request.method == "GET":
            voice = self._voice(match["voice_id"])
            return Response.json(200, voice) if voice else self._voice_not_found(match["voice_id"])
        if request.path == "/v1/user/subscription" and request.method == "GET":
            return Response.json(
                200,
                {
                    "tier": "fake",
                    "character_count": self.characters_used,
                    "character_limit": self.character_limit or 10_000_000,
                    "status": "active",
                },
            )
        return detail(404, "not_found", f"{request.method} {request.path} is not part of this fake")

    @staticmethod
    def _voice(voice_id: str) -> dict[str, Any] | None:
        for voice in VOICES:
            if voice["voice_id"] == voice_id:
                return {k: v for k, v in voice.items() if k != "espeak"}
        return None

    @staticmethod
    def _voice_not_found(voice_id: str) -> Response:
        return detail(404, "voice_not_found", f"A voice with the voice_id {voice_id} was not found.")

    def _voices(self, request: RecordedRequest) -> Response:
        search = request.query.get("search", "").lower()
        voices = [self._voice(v["voice_id"]) for v in VOICES if search in v["name"].lower()]
        if request.path == "/v1/voices":
            return Response.json(200, {"voices": voices})
        return Response.json(
            200, {"voices": voices, "has_more": False, "total_count": len(voices), "next_page_token": None}
        )

    def _text_to_speech(self, voice_id: str, request: RecordedRequest) -> Response:
        voice = next((v for v in VOICES if v["voice_id"] == voice_id), None)
        if voice is None:
            return self._voice_not_found(voice_id)
        body = request.json
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip():
            return Response.json(
                422, {"detail": [{"loc": ["body", "text"], "msg": "Field required", "type": "missing"}]}
            )
        output_format = request.query.get("output_format", "mp3_44100_128")
        family, _, rest = output_format.partition("_")
        if family not in ("wav", "pcm") or not rest.isdigit():
            return detail(
                400,
                "unsupported_output_format",
                f"This local fake produces wav_<rate> and pcm_<rate> only, not {output_format}: "
                "no MP3/Opus encoder is installed on this machine.",
            )
        model_id = body.get("model_id") or "eleven_multilingual_v2"
        cost = math.ceil(len(text) * (0.5 if model_id in HALF_PRICE_MODELS else 1.0))
        with self._lock:
            if self.character_limit is not None and self.characters_used + cost > self.character_limit:
                remaining = self.character_limit - self.characters_used
                return detail(
                    401,
                    "quota_exceeded",
                    f"This request exceeds your quota of {self.character_limit}. You have {remaining} credits "
                    f"remaining, while {cost} credits are required for this request.",
                )
            self.characters_used += cost
        rate = int(rest)
        try:
            pcm = synthesize(text, voice["espeak"], rate, self.tools)
        except (RuntimeError, subprocess.SubprocessError) as exc:
            return detail(500, "synthesis_failed", f"the fake could not synthesise speech: {exc}")
        audio, content_type = (as_wav(pcm, rate), "audio/wav") if family == "wav" else (pcm, "audio/pcm")
        return Response(200, audio, content_type, {"character-cost": str(cost), "request-id": uuid.uuid4().hex})


if __name__ == "__main__":
    run_from_command_line(ElevenLabsFake, "Local fake of the ElevenLabs HTTP API (text-to-speech, voices).")
