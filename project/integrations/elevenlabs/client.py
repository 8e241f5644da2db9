"""ElevenLabs text-to-speech through the official ``elevenlabs`` SDK.

Settings are read from Config at every call, so a key or voice changed in the
admin applies to running workers without a restart:

- ``elevenlabs_api`` — the API key (environment fallback ``ELEVENLABS_API``,
  then the aliases ``ELEVENLABS_API_KEY`` and the seeds' ``ELEVEN_API_KEY``);
- ``elevenlabs_voice_id``, ``elevenlabs_model_id``, ``elevenlabs_output_format``;
- ``elevenlabs_base_url`` (environment ``ELEVENLABS_BASE_URL``; default the real
  API) — the tests point it at a local fake;
- ``elevenlabs_session_char_cap`` — characters allowed per live session
  (empty: :data:`DEFAULT_SESSION_CHAR_CAP`; 0: no cap).

A voice id, from Config or a caller, must look like ElevenLabs' own (letters and
digits): the SDK puts it into the request's URL path, where a ``/`` or ``..``
would reach another endpoint with the account's key.

A phrase is saved under ``MEDIA_ROOT/elevenlabs/`` with a name derived from
(voice, model, format, text), so the same phrase is never paid for twice; the
directory is capped by ``elevenlabs_cache_max_mb`` (see :mod:`.cache`).
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import re
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from elevenlabs.client import ElevenLabs
from elevenlabs.core.api_error import ApiError
from elevenlabs.core.parse_error import ParsingError
from elevenlabs.environment import ElevenLabsEnvironment

from project.app_config.config import get_config
from project.integrations.config_values import config_int
from project.integrations.deadlines import seconds_left
from project.integrations.elevenlabs import cache, playback
from project.integrations.elevenlabs.errors import (
    ElevenLabsConfigError,
    ElevenLabsDiskFullError,
    ElevenLabsError,
    ElevenLabsNetworkError,
    ElevenLabsRequestError,
    ElevenLabsServerError,
    ElevenLabsStorageError,
    from_api_error,
    from_transport_error,
)
from project.integrations.elevenlabs.usage import SessionRef, SessionUsage, resolve_session_id

__all__ = ["ElevenLabsClient", "ElevenLabsError"]

logger = logging.getLogger("integrations.elevenlabs")

DEFAULT_VOICE_ID = "JBFqnCBsd6RMkjVDRZzb"  # a premade voice every account has
DEFAULT_MODEL_ID = "eleven_multilingual_v2"  # speaks Spanish; 1 credit per character
# WAV, not the API's default MP3: every player (paplay, ffplay, aplay) plays it with
# no codec, the duration is known (playback timeout), and the format does not
# change the price, only the file size (~44 kB per second of speech).
DEFAULT_OUTPUT_FORMAT = "wav_22050"
MAX_TEXT_CHARACTERS = 5000
# A live of a few hours with a chatty bot stays under it (about 20 credits of the
# Creator plan's 100,000 a month per minute of speech); a loop or a flood stops here.
DEFAULT_SESSION_CHAR_CAP = 20_000
# ElevenLabs' voice ids are 20 letters and digits; a little room either way.
VOICE_ID = re.compile(r"[A-Za-z0-9]{1,64}")
API_KEY_ENV_ALIASES = ("ELEVENLABS_API_KEY", "ELEVEN_API_KEY")
_SUFFIXES = {"mp3": ".mp3", "wav": ".wav", "pcm": ".wav"}  # pcm_* is wrapped into a WAV file here
# One request, from sending the text to the last byte of audio, when the caller gives no deadline.
REQUEST_SECONDS = 120.0
# A full disk is rarely fixed in a second; the queue tries an item 5 times in all.
DISK_FULL_RETRY_SECONDS = 15.0


@dataclass(frozen=True)
class TTSSettings:
    voice_id: str
    model_id: str
    output_format: str
    base_url: str
    cap: int | None
    cache_cap_bytes: int


class ElevenLabsClient:
    """``text_to_speech_and_save`` as in the seeds, plus ``list_voices``.

    Arguments given here win over Config; anything left out is read from Config
    at each call.
    """

    def __init__(
        self,
        api_key: str | None = None,
        voice_id: str | None = None,
        model_id: str | None = None,
        output_format: str | None = None,
        base_url: str | None = None,
        media_dir: str | Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._api_key = api_key
        self._voice_id = voice_id
        self._model_id = model_id
        self._output_format = output_format
        self._base_url = base_url
        self._media_dir = Path(media_dir) if media_dir is not None else None
        self.timeout = timeout
        self._cached_sdk: tuple[tuple[str, str], ElevenLabs] | None = None

    # --- settings -----------------------------------------------------------

    @property
    def media_dir(self) -> Path:
        return self._media_dir or Path(settings.MEDIA_ROOT) / "elevenlabs"

    def settings(self) -> TTSSettings:
        output_format = self._output_format or get_config("elevenlabs_output_format") or DEFAULT_OUTPUT_FORMAT
        if output_format.split("_", 1)[0] not in _SUFFIXES:
            raise ElevenLabsConfigError(
                f"output format {output_format!r} is not supported here: use mp3_*, wav_* or pcm_* "
                "(e.g. wav_22050, mp3_44100_128) in Config elevenlabs_output_format"
            )
        cap = config_int("elevenlabs_session_char_cap", DEFAULT_SESSION_CHAR_CAP)
        voice_id = self._voice_id or get_config("elevenlabs_voice_id").strip() or DEFAULT_VOICE_ID
        if not VOICE_ID.fullmatch(voice_id):
            raise ElevenLabsConfigError(
                f"voice id {voice_id!r} is not an ElevenLabs voice id (letters and digits only, e.g. "
                f"{DEFAULT_VOICE_ID}): fix Config elevenlabs_voice_id"
            )
        return TTSSettings(
            voice_id=voice_id,
            model_id=self._model_id or get_config("elevenlabs_model_id") or DEFAULT_MODEL_ID,
            output_format=output_format,
            base_url=(
                self._base_url or get_config("elevenlabs_base_url") or ElevenLabsEnvironment.PRODUCTION.value
            ).rstrip("/"),
            cap=cap or None,
            # Read here, before any call: a bad value refuses the phrase instead of failing after paying.
            cache_cap_bytes=cache.cache_cap_bytes(),
        )

    def _sdk(self, base_url: str) -> ElevenLabs:
        api_key = self._api_key or get_config("elevenlabs_api", env_names=API_KEY_ENV_ALIASES)
        if not api_key:
            raise ElevenLabsConfigError(
                "No ElevenLabs API key: set Config elevenlabs_api in the admin, "
                "or ELEVENLABS_API (or ELEVENLABS_API_KEY) in the environment."
            )
        # One SDK client (and its connection pool) per key and URL; rebuilt when either changes in the admin.
        if self._cached_sdk is None or self._cached_sdk[0] != (api_key, base_url):
            self._cached_sdk = (
                (api_key, base_url),
                ElevenLabs(api_key=api_key, base_url=base_url, timeout=self.timeout),
            )
        return self._cached_sdk[1]

    def cache_path(self, text: str, voice_id: str | None = None) -> Path:
        """Where the phrase is (or will be) saved; the name hashes everything that changes the audio."""
        tts = self.settings()
        return self._cache_path(text.strip(), voice_id or tts.voice_id, tts)

    def _cache_path(self, text: str, voice_id: str, tts: TTSSettings) -> Path:
        digest = hashlib.sha256("\n".join([voice_id, tts.model_id, tts.output_format, text]).encode()).hexdigest()
        return self.media_dir / f"{digest[:32]}{_SUFFIXES[tts.output_format.split('_', 1)[0]]}"

    # --- text to speech -----------------------------------------------------

    def text_to_speech_and_save(
        self,
        text: str,
        voice_id: str | None = None,
        play_audio: bool = False,
        wait: bool = False,
        *,
        session: SessionRef = None,
        deadline: float | None = None,
    ) -> Path | None:
        """Speak ``text``: the path of the saved audio, or None when the session's cap refused it.

        ``session`` (a LiveSession or its id) is the live the characters are
        charged to; by default the one being captured now. ``play_audio`` plays
        the file; ``wait`` then returns only after playback has ended. A cached
        phrase costs nothing and is played even when the cap is reached.
        ``deadline`` (a ``time.monotonic()`` instant, see
        :mod:`project.integrations.deadlines`) bounds the request and the wait
        for the player; without it the request may take ``REQUEST_SECONDS``.
        Raises an :class:`ElevenLabsError` subclass; transient ones are also
        ``TransientError``, so a service can let them propagate to be retried.
        A full disk is one of them (:class:`ElevenLabsDiskFullError`): the
        characters stay charged and the retry saves the audio already received.
        """
        text = (text or "").strip()
        if not text:
            raise ElevenLabsRequestError("Nothing to say: the text is empty.")
        if len(text) > MAX_TEXT_CHARACTERS:
            raise ElevenLabsRequestError(
                f"The text has {len(text)} characters; at most {MAX_TEXT_CHARACTERS} are sent in one request."
            )
        tts = self.settings()
        voice = voice_id or tts.voice_id
        if not VOICE_ID.fullmatch(voice):
            raise ElevenLabsRequestError(
                f"voice id {voice!r} is not an ElevenLabs voice id: letters and digits only, e.g. {DEFAULT_VOICE_ID}."
            )
        path = self._cache_path(text, voice, tts)
        usage = SessionUsage(resolve_session_id(session))
        log = {"session_id": usage.session_id, "voice_id": voice, "characters": len(text), "audio": path.name}

        if path.is_file() and path.stat().st_size > 0:
            cache.touch(path)
            usage.record_cache_hit()
            logger.info("TTS phrase served from cache", extra={**log, "cached": True})
        elif (received := cache.ReceivedAudio.get(path.name)) is not None:
            # Paid for by an earlier attempt whose write failed: saving it is all that is left.
            self._save(path, received, tts, log)
            logger.info("TTS phrase saved from audio received earlier", extra={**log, "cached": False, "credits": 0})
        else:
            self._ensure_media_dir()  # an unwritable MEDIA_ROOT is found before paying, not after
            if not usage.reserve(len(text), tts.cap):
                usage.record_refused()
                logger.warning(
                    "TTS skipped: the session's character cap of %s would be passed (%s used, %s needed); "
                    "no speech for this phrase",
                    tts.cap,
                    usage.characters(),
                    len(text),
                    extra=log,
                )
                return None
            try:
                audio, credits = self._synthesize(text, voice, tts, deadline)
            except BaseException:
                usage.refund(len(text))  # no audio arrived: nothing to pay for
                raise
            # From here ElevenLabs has charged the characters: they stay counted whatever the disk does.
            usage.record_success(credits)
            logger.info("TTS phrase generated", extra={**log, "credits": credits, "cached": False})
            self._save(path, audio, tts, log)

        if play_audio:
            playback.play(path, wait=wait, timeout=None if deadline is None else seconds_left(deadline, math.inf))
        return path

    def _ensure_media_dir(self) -> None:
        try:
            self.media_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if cache.is_disk_full(exc):
                raise ElevenLabsDiskFullError(
                    f"The audio cache {self.media_dir} cannot be created: {exc.strerror}.",
                    retry_after=DISK_FULL_RETRY_SECONDS,
                ) from None
            raise ElevenLabsStorageError(
                f"The audio cache {self.media_dir} cannot be created ({exc.strerror or type(exc).__name__}): "
                "fix the directory's permissions or MEDIA_ROOT."
            ) from None

    def _save(self, path: Path, audio: bytes, tts: TTSSettings, log: dict[str, Any]) -> None:
        """Write the phrase whole, then trim the cache; the audio is kept for the retry when the disk refuses it."""
        try:
            cache.write_atomically(path, audio)
        except OSError as exc:
            cache.ReceivedAudio.put(path.name, audio)
            reason = exc.strerror or type(exc).__name__
            if cache.is_disk_full(exc):
                logger.warning("TTS audio received but the disk refused it (%s): kept for the retry", reason, extra=log)
                raise ElevenLabsDiskFullError(
                    f"The audio cache {self.media_dir} has no room for {len(audio)} bytes ({reason}); "
                    "the audio already received is kept and saved by the retry. Free disk space "
                    f"or lower Config {cache.CACHE_CAP_KEY}.",
                    retry_after=DISK_FULL_RETRY_SECONDS,
                ) from None
            raise ElevenLabsStorageError(
                f"The audio cache {self.media_dir} cannot be written ({reason}): "
                "fix the directory's permissions or MEDIA_ROOT."
            ) from None
        cache.ReceivedAudio.drop(path.name)
        try:
            cache.evict_over_cap(self.media_dir, tts.cache_cap_bytes, keep=(path,))
        except OSError as exc:  # the phrase is saved; a failed trim is retried after the next write
            logger.warning("audio cache could not be trimmed: %s", exc, extra=log)

    def _synthesize(self, text: str, voice_id: str, tts: TTSSettings, deadline: float | None) -> tuple[bytes, int]:
        """Call the API; returns the audio (pcm_* wrapped as WAV) and the credits charged."""
        sdk = self._sdk(tts.base_url)
        deadline = time.monotonic() + REQUEST_SECONDS if deadline is None else deadline
        timeout = seconds_left(deadline, self.timeout)
        if timeout <= 0:
            raise ElevenLabsNetworkError("No time left in the item's time budget to call ElevenLabs.")
        chunks: list[bytes] = []
        try:
            with sdk.text_to_speech.with_raw_response.convert(
                voice_id,
                text=text,
                model_id=tts.model_id,
                output_format=tts.output_format,
                request_options={"timeout_in_seconds": timeout, "max_retries": 0},
            ) as response:
                headers = response.headers
                for chunk in response.data:
                    chunks.append(chunk)
                    if time.monotonic() > deadline:
                        raise ElevenLabsNetworkError(
                            "ElevenLabs was still sending the audio when the item's time budget ran out"
                        )
        except ApiError as exc:
            raise from_api_error(exc) from None
        except ParsingError as exc:
            raise ElevenLabsServerError(f"ElevenLabs answered {exc.status_code} in an unexpected format.") from None
        except httpx.TransportError as exc:
            raise from_transport_error(exc, tts.base_url, timeout) from None
        audio = b"".join(chunks)
        if not audio:
            raise ElevenLabsServerError("ElevenLabs answered with empty audio. Retry later.")
        if tts.output_format.startswith("pcm_"):
            audio = _pcm_as_wav(audio, int(tts.output_format.split("_")[1]))
        try:
            credits = int(float(headers.get("character-cost", len(text))))
        except ValueError:
            credits = len(text)
        return audio, credits

    # --- voices -------------------------------------------------------------

    def list_voices(self) -> list[dict[str, Any]]:
        """The account's voices (``GET /v2/voices``), as plain dicts for the API endpoint."""
        tts = self.settings()
        sdk = self._sdk(tts.base_url)
        try:
            # No SDK-level retries: a Retry-After of a minute must not hold a web request.
            found = sdk.voices.search(page_size=100, request_options={"max_retries": 0})
        except ApiError as exc:
            raise from_api_error(exc) from None
        except ParsingError as exc:
            raise ElevenLabsServerError(f"ElevenLabs answered {exc.status_code} in an unexpected format.") from None
        except httpx.TransportError as exc:
            raise from_transport_error(exc, tts.base_url, self.timeout) from None
        return [
            {
                "voice_id": voice.voice_id,
                "name": voice.name,
                "category": voice.category,
                "labels": voice.labels or {},
                "preview_url": voice.preview_url,
            }
            for voice in found.voices
        ]


def _pcm_as_wav(pcm: bytes, rate: int) -> bytes:
    """pcm_* is headerless 16-bit mono little-endian: give it a WAV header so players can read it."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    return buffer.getvalue()
