"""HTTP API for TTS (the seeds' "views.py / urls.py — API endpoints"), under /api/elevenlabs/.

- ``POST tts`` — JSON ``{"text": ..., "voice_id": optional, "play": false}`` →
  ``{"audio_url", "cached", "characters"}``; 429 when the session's character
  cap refuses the phrase. ``voice_id`` is an ElevenLabs id (letters and digits):
  it becomes part of the API's URL path, so anything else is refused with 400.
- ``GET voices`` — the account's voices.
- ``GET audio/<file>`` — a saved phrase (``audio_url`` points here; the
  project does not serve MEDIA_ROOT itself).

Only for logged-in staff (with Django's CSRF check on POST) or a client that
sends the token of Config ``api_token`` as ``Authorization: Bearer <token>``.
``tts`` and ``voices`` together take at most Config
``elevenlabs_api_requests_per_minute`` requests a minute (see :mod:`.rate_limit`);
the next ones are answered 429 with ``Retry-After``.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from functools import wraps

from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from project.app_config.config import get_config
from project.integrations.config_values import ConfigValueError
from project.integrations.elevenlabs import cache, rate_limit
from project.integrations.elevenlabs.client import MAX_TEXT_CHARACTERS, VOICE_ID, ElevenLabsClient
from project.integrations.elevenlabs.errors import ElevenLabsAuthError, ElevenLabsConfigError, ElevenLabsError

logger = logging.getLogger("integrations.elevenlabs")
_AUDIO_NAME = re.compile(r"^[0-9a-f]{32}\.(wav|mp3)$")


def _has_valid_token(request: HttpRequest) -> bool:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        return False
    expected = get_config("api_token")
    # An unset token disables token access; it must never match an empty header.
    return bool(expected) and hmac.compare_digest(header[7:].strip().encode(), expected.encode())


def staff_or_token(view):
    """Token clients need no CSRF token (no cookies involved); staff sessions keep Django's CSRF check."""

    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if _has_valid_token(request):
            return view(request, *args, **kwargs)
        user = getattr(request, "user", None)
        if user is None or not (user.is_authenticated and user.is_active and user.is_staff):
            return JsonResponse(
                {"error": "authentication required: log in as staff, or send Authorization: Bearer <api_token>"},
                status=401,
            )
        rejected = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
        if rejected is not None:
            return rejected
        return view(request, *args, **kwargs)

    return wrapper


def within_request_cap(view):
    """Counts the request against the per-minute cap (after authentication: a stranger cannot spend it)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            verdict = rate_limit.take_request()
        except ConfigValueError as exc:
            return JsonResponse({"error": str(exc)}, status=503)
        except rate_limit.REDIS_DOWN as exc:
            logger.warning("API request cap cannot be checked, request refused: Redis %s", type(exc).__name__)
            response = JsonResponse(
                {"error": "the request cap cannot be checked (Redis is unreachable); try again shortly"}, status=503
            )
            response["Retry-After"] = "5"
            return response
        if not verdict.allowed:
            response = JsonResponse(
                {
                    "error": f"at most {verdict.limit} requests a minute (Config {rate_limit.CONFIG_KEY}); "
                    f"try again in {verdict.retry_after} s"
                },
                status=429,
            )
            response["Retry-After"] = str(verdict.retry_after)
            return response
        return view(request, *args, **kwargs)

    return wrapper


def _error_response(exc: ElevenLabsError) -> JsonResponse:
    """Upstream failures as 502/503 with the classified message (never the key)."""
    if isinstance(exc, ElevenLabsConfigError):
        status = 503
    elif exc.permanent and not isinstance(exc, ElevenLabsAuthError):
        status = 400 if exc.status_code in (None, 400, 404, 422) else 502
    else:
        status = 502 if exc.permanent else 503
    response = JsonResponse({"error": str(exc), "permanent": exc.permanent}, status=status)
    if exc.retry_after is not None:
        response["Retry-After"] = str(int(exc.retry_after))
    return response


def _read_body(request: HttpRequest) -> dict:
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except ValueError as exc:
            raise ValueError(f"the body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ValueError('the JSON body must be an object like {"text": "..."}')
        return body
    return request.POST.dict()


@require_POST
@staff_or_token
@within_request_cap
def text_to_speech(request: HttpRequest) -> JsonResponse:
    try:
        body = _read_body(request)
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        return JsonResponse({"error": 'field "text" is required and must be non-empty text'}, status=400)
    if len(text.strip()) > MAX_TEXT_CHARACTERS:
        return JsonResponse({"error": f'field "text" is longer than {MAX_TEXT_CHARACTERS} characters'}, status=400)
    voice_id = body.get("voice_id") or None
    if voice_id is not None and not (isinstance(voice_id, str) and VOICE_ID.fullmatch(voice_id)):
        return JsonResponse(
            {
                "error": 'field "voice_id" must be an ElevenLabs voice id: letters and digits only, e.g. '
                '"JBFqnCBsd6RMkjVDRZzb" (GET /api/elevenlabs/voices lists them)'
            },
            status=400,
        )
    play = str(body.get("play", "false")).lower() in ("true", "1", "yes", "on")
    client = ElevenLabsClient()
    cached = client.cache_path(text, voice_id).is_file()
    try:
        path = client.text_to_speech_and_save(text, voice_id=voice_id, play_audio=play, wait=False)
    except ElevenLabsError as exc:
        logger.warning("TTS API request failed: %s", exc)
        return _error_response(exc)
    if path is None:
        return JsonResponse(
            {"error": "the live session's ElevenLabs character cap is reached; nothing was generated"}, status=429
        )
    url = request.build_absolute_uri(reverse("elevenlabs:audio", args=[path.name]))
    return JsonResponse({"audio_url": url, "file": path.name, "cached": cached, "characters": len(text.strip())})


@require_GET
@staff_or_token
@within_request_cap
def voices(request: HttpRequest) -> JsonResponse:
    try:
        found = ElevenLabsClient().list_voices()
    except ElevenLabsError as exc:
        logger.warning("voices API request failed: %s", exc)
        return _error_response(exc)
    return JsonResponse({"voices": found})


@require_GET
@staff_or_token
def audio(request: HttpRequest, name: str) -> FileResponse:
    if not _AUDIO_NAME.match(name):
        raise Http404("no such audio file")
    path = ElevenLabsClient().media_dir / name
    if not path.is_file():
        raise Http404("no such audio file")
    cache.touch(path)  # fetched is used: the cache's eviction keeps it longer
    content_type = "audio/wav" if name.endswith(".wav") else "audio/mpeg"
    return FileResponse(path.open("rb"), content_type=content_type)
