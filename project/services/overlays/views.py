"""The /overlays/ page (an OBS browser source) and the server-sent events it listens to.

The events endpoint is a plain streaming response: each open page holds one thread of
the web server while it listens. That is the right trade for a handful of OBS sources
and needs no extra server stack (ASGI, channels), but it needs a *threaded* server:
``runserver`` is, and gunicorn must run ``--worker-class gthread --threads N`` (as
docker-compose.yml does) — a sync gunicorn worker would be taken whole by one page.
Both take the overlay token or a local client, and a process serves at most
``OVERLAYS_MAX_STREAMS`` streams (see :mod:`.access`).
"""

from __future__ import annotations

from pathlib import Path

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from project.services.overlays.access import RETRY_AFTER_SECONDS, SLOTS, refusal, streams_full
from project.services.overlays.stream import sse_events, valid_id
from project.streams import event_stream

ASSETS = Path(__file__).resolve().parent / "static" / "overlays"


@require_GET
def page(request: HttpRequest) -> HttpResponse:
    if (reason := refusal(request)) is not None:
        return HttpResponse(reason, status=403, content_type="text/plain; charset=utf-8")
    # The page's own style and script inline; the shared stream.js and draw.js come from /static/ (WhiteNoise).
    context = {
        "style": (ASSETS / "overlays.css").read_text(encoding="utf-8"),
        "script": (ASSETS / "overlays.js").read_text(encoding="utf-8"),
    }
    response = render(request, "overlays/page.html", context)
    response["Referrer-Policy"] = "no-referrer"  # the card images must not receive the token
    return response


@require_GET
def events(request: HttpRequest) -> HttpResponse:
    if (reason := refusal(request)) is not None:
        return HttpResponse(reason, status=403, content_type="text/plain; charset=utf-8")
    # EventSource sends Last-Event-ID when it reconnects by itself; the page passes
    # ?last_id= when it has to open a new EventSource after a hard failure.
    last_id = valid_id(request.headers.get("Last-Event-ID")) or valid_id(request.GET.get("last_id"))
    return event_stream(sse_events(last_id), SLOTS, full=streams_full(), retry_after=RETRY_AFTER_SECONDS)
