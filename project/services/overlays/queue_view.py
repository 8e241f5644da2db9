"""The "Next up" overlay, ``/overlays/queue/?service=<slug>``: what a SYNC service runs now and what comes next.

Viewers see that their gift arrived and when it plays. The page and its event stream
(``/overlays/queue/events/``) take the same overlay token as ``/overlays/`` and count
against the same ``OVERLAYS_MAX_STREAMS`` (:mod:`.access`); the snapshots come from one
shared reader per service (:mod:`.queue_reader`). The service is checked after the
token, so a stranger learns nothing about the services.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from project.queue_system.models import Service
from project.services.overlays.access import RETRY_AFTER_SECONDS, SLOTS, refusal, streams_full
from project.services.overlays.queue_reader import reader_for
from project.services.overlays.stream import heartbeat_seconds, max_stream_seconds
from project.streams import event_stream, paced_events

ASSETS = Path(__file__).resolve().parent / "static" / "overlays"


def _text(message: str, status: int) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def sync_services_text() -> str:
    services = list(Service.objects.filter(mode=Service.Mode.SYNC).order_by("slug").values_list("slug", "is_active"))
    if not services:
        return "There is no SYNC service yet: make one in the admin (Queue system › Services)."
    listed = ", ".join(slug if active else f"{slug} (inactive)" for slug, active in services)
    return f"SYNC services here: {listed}. Example: /overlays/queue/?service={services[0][0]} (keep your token=)."


def chosen_service(request: HttpRequest) -> Service | HttpResponse:
    """The SYNC service named by ``?service=``, or the error page that says which exist."""
    slug = request.GET.get("service", "").strip()
    if not slug:
        return _text(f"Choose the service with ?service=<slug>. {sync_services_text()}\n", 400)
    service = Service.objects.filter(slug=slug).first()
    if service is None:
        # repr() of the slug: plain text, but quoted so a stray character is visible.
        return _text(f"There is no service {slug[:50]!r}. {sync_services_text()}\n", 404)
    if service.mode != Service.Mode.SYNC:
        return _text(
            f"{service.slug} runs {service.mode}, several items at once: the queue overlay shows one "
            f"SYNC service's running item. {sync_services_text()}\n",
            400,
        )
    return service


@require_GET
def queue_page(request: HttpRequest) -> HttpResponse:
    if (reason := refusal(request)) is not None:
        return _text(reason, 403)
    service = chosen_service(request)
    if isinstance(service, HttpResponse):
        return service
    # As /overlays/: its own style and script inline, the shared ones from /static/.
    context = {
        "service": service,
        "style": (ASSETS / "queue.css").read_text(encoding="utf-8"),
        "script": (ASSETS / "queue.js").read_text(encoding="utf-8"),
    }
    response = render(request, "overlays/queue.html", context)
    response["Referrer-Policy"] = "no-referrer"  # the gift images must not receive the token
    return response


@require_GET
def queue_events(request: HttpRequest) -> HttpResponse:
    if (reason := refusal(request)) is not None:
        return _text(reason, 403)
    service = chosen_service(request)
    if isinstance(service, HttpResponse):
        return service
    return event_stream(queue_sse(service.pk), SLOTS, full=streams_full(), retry_after=RETRY_AFTER_SECONDS)


def queue_sse(service_id: int) -> Generator[str, None, None]:
    """``hello``, then a ``queue`` event with the whole snapshot each time it changes, pings in between.

    Every ``queue`` event is complete (no resume id needed): a page that reconnects gets
    the current snapshot at once. ``unavailable`` says the database cannot be read; the
    next ``queue`` event says it can again. The stream ends after ``max_stream_seconds``
    and the browser reconnects.
    """
    watch = reader_for(service_id).subscribe()

    def messages(timeout: float) -> list[str] | None:
        state = watch.next_state(timeout=timeout)
        if state is None:
            return None
        if state.available:
            return [f"event: queue\ndata: {json.dumps(state.snapshot, ensure_ascii=False)}\n\n"]
        return [f"event: unavailable\ndata: {json.dumps({'reason': 'database unavailable'})}\n\n"]

    try:
        yield from paced_events(messages, heartbeat=heartbeat_seconds(), max_seconds=max_stream_seconds())
    finally:
        watch.close()
