"""The control room's live page (/control/), its event stream and its actions.

The page is rendered with a snapshot (room_snapshot.py), then ``room.js`` listens to
``/control/live/stream/``: one snapshot a second as a server-sent event, the same
plain streaming response as the overlays' (a thread of the web server per open
page, so a process serves at most ``CONTROL_MAX_STREAMS``; the stream ends after
``STREAM_SECONDS`` and the browser reconnects). Actions are POST forms with CSRF,
answered with a redirect back to the page and a message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from project.control import room_snapshot
from project.env import env_int
from project.queue_system import control
from project.queue_system.admin_actions import purge_discardable, retry_failed
from project.queue_system.broker import BrokerError
from project.queue_system.models import QueueItem, Service
from project.streams import StreamSlots, event_stream

TICK_SECONDS = 1.0
RATE_OVERLAP_SECONDS = 3  # each tick resends the last few seconds: late rows land in them
STREAM_SECONDS = 300
RETRY_MS = 2000


def max_streams() -> int:
    return env_int("CONTROL_MAX_STREAMS", 8, minimum=1)


SLOTS = StreamSlots(max_streams)


def _json(data) -> str:
    return json.dumps(data, cls=DjangoJSONEncoder, separators=(",", ":"))


@staff_member_required
@require_GET
def room(request: HttpRequest) -> HttpResponse:
    data = room_snapshot.snapshot()
    return render(request, "control/room.html", {"snap": data})


@staff_member_required
@require_GET
def room_snapshot_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(room_snapshot.snapshot(), encoder=DjangoJSONEncoder)


@staff_member_required
@require_GET
def room_stream(request: HttpRequest) -> HttpResponse:
    full = f"This server already serves {max_streams()} control room streams (CONTROL_MAX_STREAMS)."
    return event_stream(_events(), SLOTS, full=full, retry_after=5)


def _events() -> Iterator[str]:
    from django.db import connection

    yield f"retry: {RETRY_MS}\n\n"
    ends = time.monotonic() + STREAM_SECONDS
    while time.monotonic() < ends:
        started = time.monotonic()
        since = timezone.now() - timedelta(seconds=RATE_OVERLAP_SECONDS)
        try:
            payload = _json(room_snapshot.snapshot(rates_since=since))
            yield f"event: snapshot\ndata: {payload}\n\n"
        except Exception as exc:  # the database away for a moment: say so, keep the stream
            if not connection.in_atomic_block:
                connection.close()  # the next tick connects afresh
            yield f"event: problem\ndata: {_json({'error': f'{type(exc).__name__}: {str(exc)[:200]}'})}\n\n"
        time.sleep(max(0.0, TICK_SECONDS - (time.monotonic() - started)))


# -- actions --------------------------------------------------------------------------------------


def _back(request: HttpRequest) -> HttpResponse:
    room_snapshot.clear_caches()
    return redirect("control-room")


@staff_member_required
@require_POST
def pause(request: HttpRequest, slug: str) -> HttpResponse:
    service = get_object_or_404(Service, slug=slug)
    control.set_paused(service, True)
    messages.success(request, f"{service.name} paused: its worker takes no new message; nothing waiting is lost.")
    return _back(request)


@staff_member_required
@require_POST
def resume(request: HttpRequest, slug: str) -> HttpResponse:
    service = get_object_or_404(Service, slug=slug)
    control.set_paused(service, False)
    messages.success(request, f"{service.name} resumed: its backlog drains, highest priority first.")
    return _back(request)


@staff_member_required
@require_POST
def skip(request: HttpRequest, slug: str) -> HttpResponse:
    service = get_object_or_404(Service, slug=slug)
    if not control.can_skip(service.service_class):
        messages.error(request, f"{service.name} cannot skip what it is running.")
        return _back(request)
    try:
        heard = control.request_skip(service.slug)
    except Exception as exc:
        messages.error(request, f"Skip not sent (Redis: {str(exc)[:150]}).")
        return _back(request)
    if heard:
        messages.success(request, f"{service.name}: asked to skip the item it is running.")
    else:
        messages.error(request, f"{service.name}: no worker is listening; nothing was skipped.")
    return _back(request)


@staff_member_required
@require_POST
def purge(request: HttpRequest, slug: str) -> HttpResponse:
    service = get_object_or_404(Service, slug=slug)
    try:
        result = purge_discardable(service)
    except BrokerError as exc:
        messages.error(request, f"Purge failed: {exc}")
        return _back(request)
    messages.success(
        request, f"{service.name}: {result.messages} message(s) purged, {result.items} item(s) marked discarded."
    )
    return _back(request)


@staff_member_required
@require_POST
def retry(request: HttpRequest, slug: str) -> HttpResponse:
    service = get_object_or_404(Service, slug=slug)
    # The failures the page lists: since this live started (test events during it included).
    since = room_snapshot.live_since(room_snapshot.current_session(), timezone.now())
    result = retry_failed(QueueItem.objects.filter(service=service, created_at__gte=since))
    if result.error:
        messages.error(request, f"{service.name}: {result.reset} failed item(s) reset; publishing: {result.error}")
    else:
        messages.success(request, f"{service.name}: {result.reset} failed item(s) queued again.")
    return _back(request)
