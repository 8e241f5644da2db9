"""Views of the control room's test events and post-live reports (staff only; actions are POST)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.db.models import Count, Max
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from project.control import reports, test_events
from project.queue_system.models import QueueItem, Service
from project.tiktok_events.models import LiveEvent, LiveSession

RECENT_TEST_EVENTS = 20


@staff_member_required
def test_events_page(request):
    session = LiveSession.objects.filter(is_test=True).order_by("-started_at", "-pk").first()
    recent = []
    if session is not None:
        recent = list(
            LiveEvent.objects.filter(session=session)
            .order_by("-id")
            .values("id", "event_type", "user_nickname", "received_at")[:RECENT_TEST_EVENTS]
        )
        outcomes: dict[int, list] = {}
        for item in (
            QueueItem.objects.filter(live_event_id__in=[e["id"] for e in recent])
            .values("live_event_id", "service__name", "status", "error")
            .order_by("service__name")
        ):
            outcomes.setdefault(item["live_event_id"], []).append(item)
        for event in recent:
            event["items"] = outcomes.get(event["id"], [])
    sessions = (
        LiveSession.objects.filter(is_test=True)
        .annotate(n_events=Count("events"), last_event=Max("events__received_at"))
        .order_by("-started_at", "-pk")
    )
    return render(
        request,
        "control/test_events.html",
        {
            "kinds": test_events.KINDS,
            "max_flood": test_events.MAX_FLOOD,
            "session": session,
            "recent": recent,
            "test_sessions": sessions,
            "services": Service.objects.filter(is_active=True).prefetch_related("event_configs"),
        },
    )


@staff_member_required
@require_POST
def send_test_event(request):
    kind = request.POST.get("kind", "")
    if kind not in test_events.KINDS:
        messages.error(request, f"Unknown test event {kind!r}.")
        return redirect("control_test_events")
    try:
        count = int(request.POST.get("count") or 0)
    except ValueError:
        count = 0
    sent = test_events.send(
        kind,
        nickname=request.POST.get("nickname", "").strip()[:200],
        text=request.POST.get("text", "").strip()[:500],
        count=count,
        new_session=request.POST.get("new_session") == "on",
    )
    level = messages.SUCCESS if not sent.dispatch.pending or sent.dispatch.deferred else messages.WARNING
    messages.add_message(request, level, f"{test_events.KINDS[kind]}: {sent.summary()}")
    return redirect("control_test_events")


@staff_member_required
@require_POST
def delete_test_session(request, session_id: int):
    try:
        deleted = test_events.delete_session(session_id)
    except LiveSession.DoesNotExist:
        raise Http404("no such session") from None
    except PermissionError:
        messages.error(request, "Only a test session can be deleted here.")
        return redirect("control_session_report", session_id=session_id)
    messages.success(request, f"Test session #{session_id} deleted with its {deleted} event(s) and their queue items.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=False):
        target = reverse("control_test_events")  # only a page of this site
    return redirect(target)


@staff_member_required
def session_list(request):
    show = request.GET.get("show", "live")
    sessions = LiveSession.objects.all()
    if show == "test":
        sessions = sessions.filter(is_test=True)
    elif show != "all":
        show = "live"
        sessions = sessions.filter(is_test=False)
    rows = sessions.order_by("-started_at", "-pk")[:200]
    return render(request, "control/sessions.html", {"sessions": reports.session_rows(rows), "show": show})


@staff_member_required
def session_report(request, session_id: int):
    session = get_object_or_404(LiveSession, pk=session_id)
    return render(request, "control/report.html", {"session": session, "report": reports.build(session)})
