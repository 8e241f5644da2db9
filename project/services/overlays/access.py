"""Who may open the overlay page and its event stream, and how many streams a process serves.

**The token.** The page and ``/overlays/events/`` take ``?token=`` with Config
``overlays_token`` (environment fallback ``OVERLAYS_TOKEN``). The admin makes one on
first view of *Overlays › OBS overlay URL* and shows the whole URL to paste into OBS;
the page hands the token on to its EventSource (which cannot send headers). Without a
token only a client on this machine is served: one whose address is loopback and whose
request came through no proxy. A reverse proxy on the same host makes every client look
local, so a request carrying ``X-Forwarded-For``, ``Forwarded`` or ``X-Real-IP`` is
never taken for a local one; a proxy that adds none of them must be run with
``OVERLAYS_LOCAL_WITHOUT_TOKEN=false``.

**The stream limit.** Each open stream holds a thread of the web server for up to
``OVERLAYS_SSE_MAX_SECONDS``; with more streams than threads nothing else would be
served. A process serves at most ``OVERLAYS_MAX_STREAMS`` at once (default 8, half of
the 16 threads docker-compose.yml gives each gunicorn worker); the next ones are
answered 503 with ``Retry-After`` and the page tries again.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

from project.app_config.config import get_config, set_config
from project.env import env_bool, env_int
from project.streams import StreamSlots

CONFIG_KEY = "overlays_token"
RETRY_AFTER_SECONDS = 10
_PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


def configured_token() -> str:
    return get_config(CONFIG_KEY).strip()


def ensure_token() -> str:
    """The token, made now if there is none yet (the admin's first view)."""
    return configured_token() or regenerate_token()


def regenerate_token() -> str:
    """A new token: the URL pasted into OBS before stops working."""
    token = secrets.token_urlsafe(24)
    set_config(CONFIG_KEY, token)
    return token


def page_url(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse("overlays-page"))


def obs_url(request: HttpRequest, token: str) -> str:
    return f"{page_url(request)}?token={token}"


def local_without_token() -> bool:
    value = getattr(settings, "OVERLAYS_LOCAL_WITHOUT_TOKEN", None)
    return env_bool("OVERLAYS_LOCAL_WITHOUT_TOKEN", True) if value is None else bool(value)


def is_local(request: HttpRequest) -> bool:
    """A client on this machine that reached the server directly, not through a proxy."""
    if any(header in request.META for header in _PROXY_HEADERS):
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def refusal(request: HttpRequest) -> str | None:
    """Why the request may not see the overlay, or None when it may."""
    given = request.GET.get("token", "")
    if given:
        expected = configured_token()
        if expected and hmac.compare_digest(given.encode(), expected.encode()):
            return None
        return (
            "This overlay token is not the current one: copy the OBS URL again from the admin "
            "(Overlays › OBS overlay URL)."
        )
    if local_without_token() and is_local(request):
        return None
    return (
        "This overlay needs its token: paste the OBS URL the admin shows (Overlays › OBS overlay URL), "
        "which ends in ?token=…"
    )


def max_streams() -> int:
    return int(getattr(settings, "OVERLAYS_MAX_STREAMS", 0) or env_int("OVERLAYS_MAX_STREAMS", 8, minimum=1))


SLOTS = StreamSlots(max_streams)


def streams_full() -> str:
    return (
        f"This server already serves {max_streams()} overlay streams (OVERLAYS_MAX_STREAMS); "
        f"try again in {RETRY_AFTER_SECONDS} s."
    )
