"""The post-live report of a LiveSession, computed in PostgreSQL.

Every figure is an aggregate (``values`` / ``annotate`` / one SQL statement for the
percentiles): no event or queue item row is loaded into Python, so a session of a
million events costs a few scans of its rows, not a million objects (the timing is in
docs/control-reports.md). The session's events are found through LiveEvent's
(session_id, event_type) index and its queue items through QueueItem's unique
(live_event_id, service_id) one; no index was added for the reports.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import BigIntegerField, Count, F, Max, Min, Q, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce, TruncMinute
from django.utils import timezone

from project.queue_system.models import QueueItem, Service
from project.tiktok_events.models import LiveEvent, LiveSession

TOP = 10
PEOPLE_LISTED = 100  # new followers / subscribers named on the page (all are counted)
BEHIND_SECONDS = 5.0  # an event stored this long after it was received: the capture was behind
MAX_TIMELINE_MINUTES = 24 * 60  # a longer session is charted per larger bucket

DIAMONDS = Coalesce(Cast(KT("event_data__diamonds_total"), BigIntegerField()), 0)


@dataclass
class Report:
    session: LiveSession
    duration_seconds: float = 0.0
    first_event: dt.datetime | None = None
    last_event: dt.datetime | None = None
    total_events: int = 0
    by_type: list[dict[str, Any]] = field(default_factory=list)
    timeline: dict[str, Any] = field(default_factory=dict)
    top_gifters: list[dict[str, Any]] = field(default_factory=list)
    top_chatters: list[dict[str, Any]] = field(default_factory=list)
    gifts: list[dict[str, Any]] = field(default_factory=list)
    diamonds: int = 0
    likes: dict[str, int] = field(default_factory=dict)
    followers: dict[str, Any] = field(default_factory=dict)
    subscribers: dict[str, Any] = field(default_factory=dict)
    services: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[dict[str, Any]] = field(default_factory=list)
    latency: list[dict[str, Any]] = field(default_factory=list)
    capture: dict[str, Any] = field(default_factory=dict)

    def chart_data(self) -> dict[str, Any]:
        """What report.js draws (json_script on the page)."""
        return {
            "timeline": self.timeline,
            "by_type": {"labels": [r["event_type"] for r in self.by_type], "counts": [r["n"] for r in self.by_type]},
        }


def build(session: LiveSession) -> Report:
    events = LiveEvent.objects.filter(session_id=session.pk)
    report = Report(session=session)

    report.by_type = list(events.values("event_type").annotate(n=Count("*")).order_by("-n", "event_type"))
    report.total_events = sum(r["n"] for r in report.by_type)
    span = events.aggregate(
        first=Min("received_at"),
        last=Max("received_at"),
        behind_max=Max(F("created_at") - F("received_at")),
        behind_events=Count("id", filter=Q(created_at__gt=F("received_at") + dt.timedelta(seconds=BEHIND_SECONDS))),
    )
    report.first_event, report.last_event = span["first"], span["last"]
    end = session.ended_at or (timezone.now() if session.status == LiveSession.Status.LIVE else span["last"])
    report.duration_seconds = max(0.0, ((end or session.started_at) - session.started_at).total_seconds())
    report.capture = {
        "reconnects": session.reconnects,
        "behind_max_seconds": session.behind_max_seconds,
        "store_delay_max_seconds": span["behind_max"].total_seconds() if span["behind_max"] else 0.0,
        "stored_late_events": span["behind_events"],
        "behind_threshold": BEHIND_SECONDS,
    }
    report.timeline = timeline(events, report.first_event, report.last_event)

    gifts = events.filter(event_type="GiftEvent")
    report.top_gifters = list(
        gifts.values("user_unique_id")
        .annotate(nickname=Max("user_nickname"), diamonds=Sum(DIAMONDS), gifts=Count("*"))
        .order_by("-diamonds", "user_unique_id")[:TOP]
    )
    report.gifts = list(
        gifts.values(name=KT("event_data__gift__name"))
        .annotate(n=Count("*"), repeats=Sum("repeat_count"), diamonds=Sum(DIAMONDS))
        .order_by("-diamonds", "name")
    )
    report.diamonds = sum(g["diamonds"] or 0 for g in report.gifts)
    report.top_chatters = list(
        events.filter(event_type="CommentEvent")
        .values("user_unique_id")
        .annotate(nickname=Max("user_nickname"), comments=Count("*"))
        .order_by("-comments", "user_unique_id")[:TOP]
    )
    report.likes = events.filter(event_type="LikeEvent").aggregate(
        counted=Coalesce(Sum(Cast(KT("event_data__count"), BigIntegerField())), 0),
        room_total=Coalesce(Max(Cast(KT("event_data__room_total"), BigIntegerField())), 0),
    )
    report.followers = people(events.filter(event_type="FollowEvent"))
    report.subscribers = people(events.filter(event_type="SubscribeEvent"))

    items = QueueItem.objects.filter(live_event__session_id=session.pk)
    report.services = service_outcomes(items)
    report.reasons = list(
        items.filter(status__in=[QueueItem.Status.FAILED, QueueItem.Status.DISCARDED])
        .values("service__name", "status", "error")
        .annotate(n=Count("*"))
        .order_by("service__name", "status", "-n")
    )
    report.latency = latency(session.pk)
    return report


def timeline(events, first: dt.datetime | None, last: dt.datetime | None) -> dict[str, Any]:
    """Events per minute by type, every minute of the session present (zeros included)."""
    if first is None or last is None:
        return {"labels": [], "datasets": []}
    rows = (
        events.annotate(minute=TruncMinute("received_at"))
        .values("minute", "event_type")
        .annotate(n=Count("*"))
        .order_by()
    )
    start = first.replace(second=0, microsecond=0)
    minutes = int((last - start).total_seconds() // 60) + 1
    step = max(1, -(-minutes // MAX_TIMELINE_MINUTES))  # minutes per bucket
    buckets = -(-minutes // step)
    series: dict[str, list[int]] = {}
    for row in rows:
        index = int((row["minute"] - start).total_seconds() // 60) // step
        series.setdefault(row["event_type"], [0] * buckets)[min(index, buckets - 1)] += row["n"]
    labels = [timezone.localtime(start + dt.timedelta(minutes=i * step)).strftime("%H:%M") for i in range(buckets)]
    datasets = [{"label": t, "data": series[t]} for t in sorted(series, key=lambda t: -sum(series[t]))]
    return {"labels": labels, "datasets": datasets, "minutes_per_bucket": step}


def people(events) -> dict[str, Any]:
    """How many distinct viewers, and the first ones by time."""
    count = events.aggregate(n=Count("user_unique_id", distinct=True))["n"]
    first = (
        events.values("user_unique_id")
        .annotate(nickname=Max("user_nickname"), at=Min("received_at"))
        .order_by("at", "user_unique_id")[:PEOPLE_LISTED]
    )
    return {"count": count, "listed": list(first)}


def service_outcomes(items) -> list[dict[str, Any]]:
    rows = items.values("service_id", "status").annotate(n=Count("*")).order_by()
    by_service: dict[int, dict[str, int]] = {}
    for row in rows:
        by_service.setdefault(row["service_id"], {})[row["status"]] = row["n"]
    names = dict(Service.objects.filter(pk__in=by_service).values_list("pk", "name"))
    result = []
    for service_id, counts in sorted(by_service.items(), key=lambda kv: names.get(kv[0], "")):
        entry = {"service": names.get(service_id, f"#{service_id}"), "total": sum(counts.values())}
        entry.update({status: counts.get(status, 0) for status in QueueItem.Status.values})
        result.append(entry)
    return result


# Reaction latency: from the event's arrival in the capture (received_at) to the
# service starting it and finishing it, for the completed items, per service and type.
LATENCY_SQL = f"""
SELECT s.name, q.event_type, count(*),
       percentile_cont(ARRAY[0.5, 0.95, 0.99])
           WITHIN GROUP (ORDER BY extract(epoch FROM q.finished_at - e.received_at)),
       max(extract(epoch FROM q.finished_at - e.received_at)),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM q.started_at - e.received_at))
FROM {QueueItem._meta.db_table} q
JOIN {LiveEvent._meta.db_table} e ON e.id = q.live_event_id
JOIN {Service._meta.db_table} s ON s.id = q.service_id
WHERE e.session_id = %s AND q.status = %s AND q.finished_at IS NOT NULL AND q.started_at IS NOT NULL
GROUP BY s.name, q.event_type
ORDER BY s.name, q.event_type
"""  # noqa: S608 - table names come from the models


def latency(session_id: int) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(LATENCY_SQL, [session_id, QueueItem.Status.COMPLETED])
        rows = cursor.fetchall()
    return [
        {
            "service": name,
            "event_type": event_type,
            "n": n,
            "p50": pct[0],
            "p95": pct[1],
            "p99": pct[2],
            "max": float(worst),  # extract() gives numeric
            "start_p50": start_p50,
        }
        for name, event_type, n, pct, worst, start_p50 in rows
    ]


def session_rows(sessions) -> list[dict[str, Any]]:
    """The list page: each session with its event count (one grouped count over the index)."""
    sessions = list(sessions)
    counts = dict(
        LiveEvent.objects.filter(session_id__in=[s.pk for s in sessions])
        .values("session_id")
        .annotate(n=Count("*"))
        .order_by()
        .values_list("session_id", "n")
    )
    now = timezone.now()
    rows = []
    for s in sessions:
        end = s.ended_at or (now if s.status == LiveSession.Status.LIVE else s.started_at)
        rows.append({"session": s, "events": counts.get(s.pk, 0), "duration": (end - s.started_at).total_seconds()})
    return rows
