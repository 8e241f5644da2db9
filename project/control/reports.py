"""The post-live report of a LiveSession, computed in PostgreSQL.

Every figure is an aggregate (``values`` / ``annotate``, and one SQL statement for the
queue items and their latency histogram): no event or queue item row is loaded into
Python, so a session of a million events costs a few scans of its rows, not a million
objects (the timing is in docs/control-reports.md). The session's events are found
through LiveEvent's (session_id, event_type) index and its queue items through
QueueItem's unique (live_event_id, service_id) one; no index was added for the reports.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
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

    @property
    def duration_text(self) -> str:
        return human_duration(self.duration_seconds)

    def chart_data(self) -> dict[str, Any]:
        """What report.js draws (json_script on the page)."""
        return {
            "timeline": self.timeline,
            "by_type": {"labels": [r["event_type"] for r in self.by_type], "counts": [r["n"] for r in self.by_type]},
        }


# For the report's statements only: JIT compilation cost seconds (it is planned for the
# high cost of a scan of a million rows, and saves less than it takes to compile), and
# a larger work_mem keeps the hash join of the session's events with their items in
# memory instead of spilling it to disk in batches.
REPORT_SETTINGS = ("SET LOCAL jit = off", "SET LOCAL work_mem = '64MB'")


def build(session: LiveSession) -> Report:
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in REPORT_SETTINGS:
            cursor.execute(statement)
        return _build(session)


def _build(session: LiveSession) -> Report:
    events = LiveEvent.objects.filter(session_id=session.pk)
    report = Report(session=session)

    report.by_type = list(events.values("event_type").annotate(n=Count("*")).order_by("-n", "event_type"))
    report.total_events = sum(r["n"] for r in report.by_type)
    is_like = Q(event_type="LikeEvent")
    # One scan of the session's rows for the span, the storage delays and the likes.
    span = events.aggregate(
        first=Min("received_at"),
        last=Max("received_at"),
        first_id=Min("id"),
        last_id=Max("id"),
        behind_max=Max(F("created_at") - F("received_at")),
        behind_events=Count("id", filter=Q(created_at__gt=F("received_at") + dt.timedelta(seconds=BEHIND_SECONDS))),
        likes_counted=Coalesce(Sum(Cast(KT("event_data__count"), BigIntegerField()), filter=is_like), 0),
        likes_room_total=Coalesce(Max(Cast(KT("event_data__room_total"), BigIntegerField()), filter=is_like), 0),
    )
    report.likes = {"counted": span["likes_counted"], "room_total": span["likes_room_total"]}
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
    report.followers = people(events.filter(event_type="FollowEvent"))
    report.subscribers = people(events.filter(event_type="SubscribeEvent"))

    if span["first_id"] is not None:
        report.services, report.reasons, report.latency = queue_items(session.pk, span["first_id"], span["last_id"])
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


# The session's queue items in one pass (a hash join of its events with their items),
# grouped once: per service, type, status and reason, and, for the completed ones, per
# reaction-latency bin: the time from the event's arrival in the capture (received_at)
# to the service finishing it. A histogram is hashing work where an exact percentile
# would sort every item (twice as long on a million events); its bins are the millisecond
# below 1 s and three significant digits above (e.g. 4.57 s), so a percentile read from
# it is within 0.5 ms, or 0.5 %, of the exact one.
QUEUE_ITEMS_SQL = f"""
SELECT service_id, event_type, status, reason, done_bin, count(*)
FROM (
    SELECT q.service_id, q.event_type, q.status,
           CASE WHEN q.status IN (%(failed)s, %(discarded)s) THEN q.error END AS reason,
           CASE WHEN q.status <> %(completed)s OR q.finished_at IS NULL THEN NULL
                WHEN d.ms < 1000 THEN round(d.ms)
                ELSE round(d.ms / power(10, floor(log(d.ms)) - 2)) * power(10, floor(log(d.ms)) - 2)
           END AS done_bin
    FROM {QueueItem._meta.db_table} q
    JOIN {LiveEvent._meta.db_table} e ON e.id = q.live_event_id
    CROSS JOIN LATERAL (SELECT date_part('epoch', q.finished_at - e.received_at) * 1000 AS ms) d
    WHERE e.session_id = %(session)s AND q.live_event_id BETWEEN %(first_id)s AND %(last_id)s
) item
GROUP BY service_id, event_type, status, reason, done_bin
"""  # noqa: S608 - table names come from the models


def queue_items(
    session_id: int, first_id: int, last_id: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(outcomes per service, failure and discard reasons, latency per service and type).

    ``first_id``..``last_id``: the session's event ids, so the items are read through the
    range of the unique (live_event_id, service_id) index, not the whole table of every
    session's items.
    """
    Status = QueueItem.Status
    params = {
        "session": session_id,
        "first_id": first_id,
        "last_id": last_id,
        "completed": Status.COMPLETED,
        "failed": Status.FAILED,
        "discarded": Status.DISCARDED,
    }
    with connection.cursor() as cursor:
        # Hashing, not sorting: PostgreSQL cannot tell the bins are few and would sort
        # every item to group them (60 % slower on a million events).
        cursor.execute("SET LOCAL enable_sort = off")
        try:
            cursor.execute(QUEUE_ITEMS_SQL, params)
            rows = cursor.fetchall()
        finally:
            cursor.execute("SET LOCAL enable_sort = on")
    outcomes: dict[int, dict[str, int]] = {}
    reasons: dict[tuple[int, str, str], int] = {}
    done: dict[tuple[int, str], list[tuple[float, int]]] = {}
    for service_id, event_type, status, reason, done_bin, n in rows:
        counts = outcomes.setdefault(service_id, {})
        counts[status] = counts.get(status, 0) + n
        if reason is not None:
            key = (service_id, status, reason)
            reasons[key] = reasons.get(key, 0) + n
        if done_bin is not None:
            done.setdefault((service_id, event_type), []).append((float(done_bin) / 1000, n))
    names = dict(Service.objects.filter(pk__in=outcomes).values_list("pk", "name"))

    def name(service_id: int) -> str:
        return names.get(service_id, f"#{service_id}")

    services = []
    for service_id, counts in sorted(outcomes.items(), key=lambda kv: name(kv[0])):
        entry = {"service": name(service_id), "total": sum(counts.values())}
        entry.update({status: counts.get(status, 0) for status in Status.values})
        services.append(entry)
    reason_rows = [
        {"service__name": name(service_id), "status": status, "error": reason, "n": n}
        for (service_id, status, reason), n in sorted(
            reasons.items(), key=lambda kv: (name(kv[0][0]), kv[0][1], -kv[1], kv[0][2])
        )
    ]
    latency = []
    for (service_id, event_type), histogram in sorted(done.items(), key=lambda kv: (name(kv[0][0]), kv[0][1])):
        latency.append(
            {
                "service": name(service_id),
                "event_type": event_type,
                "n": sum(n for _, n in histogram),
                "p50": percentile(histogram, 0.5),
                "p95": percentile(histogram, 0.95),
                "p99": percentile(histogram, 0.99),
                "max": max(value for value, _ in histogram),
            }
        )
    return services, reason_rows, latency


def percentile(histogram: list[tuple[float, int]], fraction: float) -> float | None:
    """PostgreSQL's percentile_cont (linear between the closest ranks) over a histogram's values."""
    if not histogram:
        return None
    ordered = sorted(histogram)
    total = sum(n for _, n in ordered)
    rank = fraction * (total - 1)
    low, high = int(rank), min(int(rank) + 1, total - 1)

    def value_at(position: int) -> float:
        seen = 0
        for value, n in ordered:
            seen += n
            if position < seen:
                return value
        return ordered[-1][0]

    below, above = value_at(low), value_at(high)
    return below + (above - below) * (rank - low)


def human_duration(seconds: float) -> str:
    """2 h 05 min, 25 min 30 s, 42 s."""
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


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
        duration = (end - s.started_at).total_seconds()
        rows.append({"session": s, "events": counts.get(s.pk, 0), "duration": human_duration(duration)})
    return rows
