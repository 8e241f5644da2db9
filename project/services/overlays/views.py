"""The /overlays/ page (an OBS browser source) and the server-sent events it listens to.

The events endpoint is a plain streaming response: each open page holds one thread of
the web server while it listens. That is the right trade for a handful of OBS sources
and needs no extra server stack (ASGI, channels), but it needs a *threaded* server:
``runserver`` is, and gunicorn must run ``--worker-class gthread --threads N`` (as
docker-compose.yml does) — a sync gunicorn worker would be taken whole by one page.
"""

from __future__ import annotations

from pathlib import Path

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from project.services.overlays.stream import sse_events, valid_id

ASSETS = Path(__file__).resolve().parent / "static" / "overlays"


@require_GET
def page(request: HttpRequest) -> HttpResponse:
    # Inlined like the dino page: works from gunicorn without a static file server.
    context = {
        "style": (ASSETS / "overlays.css").read_text(encoding="utf-8"),
        "script": (ASSETS / "overlays.js").read_text(encoding="utf-8"),
    }
    return render(request, "overlays/page.html", context)


@require_GET
def events(request: HttpRequest) -> StreamingHttpResponse:
    # EventSource sends Last-Event-ID when it reconnects by itself; the page passes
    # ?last_id= when it has to open a new EventSource after a hard failure.
    last_id = valid_id(request.headers.get("Last-Event-ID")) or valid_id(request.GET.get("last_id"))
    response = StreamingHttpResponse(sse_events(last_id), content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache, no-store"
    response["X-Accel-Buffering"] = "no"  # nginx in front must not buffer the stream
    return response
