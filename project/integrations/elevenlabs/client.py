"""ElevenLabs text-to-speech through the official ``elevenlabs`` SDK.

Settings are read from Config at every call, so a key or voice changed in the
admin applies to running workers without a restart:

- ``elevenlabs_api`` — the API key (environment fallback ``ELEVENLABS_API``,
  then the aliases ``ELEVENLABS_API_KEY`` and the seeds' ``ELEVEN_API_KEY``);
- ``elevenlabs_voice_id``, ``elevenlabs_model_id``, ``elevenlabs_output_format``;
- ``elevenlabs_base_url`` (environment ``ELEVENLABS_BASE_URL``; default the real
  API) — the tests point it at a local fake;
- ``elevenlabs_session_char_cap`` — characters allowed per live session
  (empty or 0: no cap).

A phrase is saved under ``MEDIA_ROOT/elevenlabs/`` with a name derived from
(voice, model, format, text), so the same phrase is never paid for twice.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
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
from project.integrations.elevenlabs import playback
from project.integrations.elevenlabs.errors import (
    ElevenLabsConfigError,
    ElevenLabsError,
    ElevenLabsRequestError,
    ElevenLabsServerError,
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
API_KEY_ENV_ALIASES = ("ELEVENLABS_API_KEY", "ELEVEN_API_KEY")
_SUFFIXES = {"mp3": ".mp3", "wav": ".wav", "pcm": ".wav"}  # pcm_* is wrapped into a WAV file here


@dataclass(frozen=True)
class TTSSettings:
    voice_id: str
    model_id: str
    output_format: str
    base_url: str
    cap: int | None


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
        cap = config_int("elevenlabs_session_char_cap", 0)
        return TTSSettings(
            voice_id=self._voice_id or get_config("elevenlabs_voice_id") or DEFAULT_VOICE_ID,
            model_id=self._model_id or get_config("elevenlabs_model_id") or DEFAULT_MODEL_ID,
            output_format=output_format,
            base_url=(
                self._base_url or get_config("elevenlabs_base_url") or ElevenLabsEnvironment.PRODUCTION.value
            ).rstrip("/"),
            cap=cap or None,
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
    ) -> Path | None:
        """Speak ``text``: the path of the saved audio, or None when the session's cap refused it.

        ``session`` (a LiveSession or its id) is the live the characters are
        charged to; by default the one being captured now. ``play_audio`` plays
        the file; ``wait`` then returns only after playback has ended. A cached
        phrase costs nothing and is played even when the cap is reached.
        Raises an :class:`ElevenLabsError` subclass; transient ones are also
        ``TransientError``, so a service can let them propagate to be retried.
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
        path = self._cache_path(text, voice, tts)
        usage = SessionUsage(resolve_session_id(session))
        log = {"session_id": usage.session_id, "voice_id": voice, "characters": len(text), "audio": path.name}

        if path.is_file() and path.stat().st_size > 0:
            usage.record_cache_hit()
            logger.info("TTS phrase served from cache", extra={**log, "cached": True})
        else:
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
                credits = self._synthesize(text, voice, tts, path)
            except BaseException:
                usage.refund(len(text))
                raise
            usage.record_success(credits)
            logger.info("TTS phrase generated", extra={**log, "credits": credits, "cached": False})

        if play_audio:
            playback.play(path, wait=wait)
        return path

    def _synthesize(self, text: str, voice_id: str, tts: TTSSettings, path: Path) -> int:
        """Call the API and write the audio to ``path`` atomically; returns the credits charged."""
        sdk = self._sdk(tts.base_url)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with sdk.text_to_speech.with_raw_response.convert(
                voice_id, text=text, model_id=tts.model_id, output_format=tts.output_format
            ) as response:
                headers = response.headers
                with partial.open("wb") as out:
                    for chunk in response.data:
                        out.write(chunk)
            if tts.output_format.startswith("pcm_"):
                _wrap_pcm_as_wav(partial, int(tts.output_format.split("_")[1]))
            if partial.stat().st_size == 0:
                raise ElevenLabsServerError("ElevenLabs answered with empty audio. Retry later.")
            os.replace(partial, path)
        except ApiError as exc:
            raise from_api_error(exc) from None
        except ParsingError as exc:
            raise ElevenLabsServerError(f"ElevenLabs answered {exc.status_code} in an unexpected format.") from None
        except httpx.TransportError as exc:
            raise from_transport_error(exc, tts.base_url, self.timeout) from None
        finally:
            partial.unlink(missing_ok=True)
        try:
            return int(float(headers.get("character-cost", len(text))))
        except ValueError:
            return len(text)

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


def _wrap_pcm_as_wav(path: Path, rate: int) -> None:
    """pcm_* is headerless 16-bit mono little-endian: give it a WAV header so players can read it."""
    pcm = path.read_bytes()
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
