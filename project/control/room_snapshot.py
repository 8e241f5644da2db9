"""What the control room's live page shows, as one JSON-ready dict.

``snapshot()`` is rendered into the page and sent again every second over the
page's event stream, so it keeps to a few indexed queries and shares its slower
parts between the pages of a process:

- every second: the services, their pending items per priority and their
  running items (``queueitem_service_status``), the broker's queue depths
  (passive declares on one AMQP connection of the process), the workers'
  heartbeats (one Redis round trip), and the events of the last few seconds
  per type (``received_at``);
- every ``SLOW_SECONDS``: this live's counts per service and status, the
  latency percentiles of the last 5 minutes, the feeds, the viewers — ranges of
  the ``created_at`` index of QueueItem, cached for every page of the process.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count
from django.utils import timezone

from project.queue_system import control, queues
from project.queue_system.broker import (
    CONNECTION_ERRORS,
    BrokerError,
    Management,
    QueueDepth,
    abandon,
    broker_url,
    close_quietly,
    open_connection,
    passive_counts,
)
from project.queue_system.models import QueueItem, Service, ServiceEventConfig
from project.tiktok_events.models import LiveEvent, LiveSession

Status = QueueItem.Status

WINDOW_SECONDS = 300  # the rolling chart and the latency percentiles
SLOW_SECONDS = 2.0
FAST_SECONDS = 1.0
QUIET_AFTER_SECONDS = 30  # a live with no event for this long is shown as quiet
REACTIONS = 50
PROBLEMS = 20
VIEWERS_EVENT = "RoomUserSeqEvent"


class _Cached:
    """One value per key shared by the threads of a process, recomputed at most every ``ttl`` seconds."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._values: dict[Any, tuple[float, Any]] = {}

    def get(self, key, compute):
        with self._lock:
            hit = self._values.get(key)
            if hit is not None and time.monotonic() - hit[0] < self.ttl:
                return hit[1]
            value = compute()
            self._values = {key: (time.monotonic(), value)}  # one key alive: the current live
            return value

    def clear(self) -> None:
        with self._lock:
            self._values = {}


_slow = _Cached(SLOW_SECONDS)
_depths = _Cached(FAST_SECONDS)


def clear_caches() -> None:
    """After an action: the next snapshot shows its effect at once."""
    _slow.clear()
    _depths.clear()


def current_session() -> LiveSession | None:
    """The latest real live (the Test events page's sessions are not one)."""
    return LiveSession.objects.filter(is_test=False).order_by("-started_at").first()


def live_since(session: LiveSession | None, now: datetime) -> datetime:
    """Where "this live" starts for the counts, the feeds and the retry action: the live's start,
    or before any live the last 5 minutes (test events, a backlog left from before)."""
    return session.started_at if session else now - timedelta(seconds=WINDOW_SECONDS)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


# -- the live -------------------------------------------------------------------------------------


def live_state(session: LiveSession | None, last_event_at: datetime | None, now: datetime) -> dict:
    """connected / waiting / reconnecting / quiet / ended / failed, with the reason, from the session row."""
    if session is None:
        return {"state": "none", "label": "no live yet", "reason": "the capture has not connected to a live"}
    if session.status == LiveSession.Status.CONNECTING:
        return {"state": "waiting", "label": "waiting", "reason": "connecting to TikTok"}
    if session.status in (LiveSession.Status.ENDED, LiveSession.Status.FAILED):
        return {"state": session.status, "label": session.status, "reason": session.end_reason or ""}
    if session.connection_note:
        return {"state": "reconnecting", "label": "reconnecting", "reason": session.connection_note}
    quiet = (now - (last_event_at or session.started_at)).total_seconds()
    if quiet >= QUIET_AFTER_SECONDS:
        return {
            "state": "quiet",
            "label": "connected, quiet",
            "reason": f"no event for {int(quiet)} s: the capture reconnects if the socket stays silent",
        }
    return {"state": "connected", "label": "connected", "reason": ""}


def event_rates(session: LiveSession | None, since: datetime) -> dict[str, dict[int, int]]:
    """Events per type per second (epoch seconds) since ``since``, from the ``received_at`` index."""
    if session is None:
        return {}
    rates: dict[str, dict[int, int]] = {}
    table = LiveEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT event_type, floor(extract(epoch FROM received_at))::bigint AS s, count(*) "  # noqa: S608
            f"FROM {table} WHERE received_at >= %s AND session_id = %s GROUP BY 1, 2",
            [since, session.pk],
        )
        for event_type, second, count in cursor.fetchall():
            rates.setdefault(event_type, {})[int(second)] = int(count)
    return rates


# -- the slow part (cached) -----------------------------------------------------------------------


def _slow_part(session: LiveSession | None) -> dict:
    now = timezone.now()
    window = now - timedelta(seconds=WINDOW_SECONDS)
    since_live = live_since(session, now)
    counts: dict[int, dict[str, int]] = {}
    for row in (
        QueueItem.objects.filter(
            created_at__gte=since_live, status__in=[Status.COMPLETED, Status.FAILED, Status.DISCARDED]
        )
        .values("service_id", "status")
        .annotate(n=Count("id"))
    ):
        counts.setdefault(row["service_id"], {})[row["status"]] = row["n"]
    return {
        "counts": counts,
        "latency": _latencies(max(window, since_live)),
        "reactions": _feed(since_live, [Status.COMPLETED, Status.FAILED], REACTIONS),
        "problems": _feed(since_live, [Status.FAILED, Status.DISCARDED], PROBLEMS),
        "viewers": _viewers(session),
        "last_event_at": _last_event_at(session),
    }


def _latencies(since: datetime) -> dict[int, dict]:
    """Per service over the items created since ``since``: p50/p99 of event received → handler start and → end."""
    items = QueueItem._meta.db_table
    events = LiveEvent._meta.db_table
    result: dict[int, dict] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT q.service_id, count(*), "  # noqa: S608
            "percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP "
            "(ORDER BY extract(epoch FROM q.started_at - e.received_at)), "
            "percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP "
            "(ORDER BY extract(epoch FROM q.finished_at - e.received_at)) "
            f"FROM {items} q JOIN {events} e ON e.id = q.live_event_id "
            "WHERE q.created_at >= %s AND q.started_at IS NOT NULL AND q.finished_at IS NOT NULL "
            "AND q.status IN ('completed', 'failed') GROUP BY q.service_id",
            [since],
        )
        for service_id, n, start, finish in cursor.fetchall():
            result[service_id] = {
                "n": n,
                "start_p50": _round(start[0]),
                "start_p99": _round(start[1]),
                "finish_p50": _round(finish[0]),
                "finish_p99": _round(finish[1]),
            }
    return result


def _round(value) -> float | None:
    return None if value is None else round(float(value), 3)


def _feed(since: datetime, statuses: list[str], limit: int) -> list[dict]:
    rows = (
        QueueItem.objects.filter(created_at__gte=since, status__in=statuses)
        .order_by("-created_at", "-id")
        .values(
            "id",
            "event_type",
            "priority",
            "status",
            "error",
            "started_at",
            "finished_at",
            "updated_at",
            "service__name",
            "service__slug",
            "live_event__received_at",
            "live_event__user_nickname",
        )[:limit]
    )
    feed = []
    for row in rows:
        received = row["live_event__received_at"]
        feed.append(
            {
                "id": row["id"],
                "event_type": row["event_type"],
                "priority": row["priority"],
                "status": row["status"],
                "reason": row["error"][:300],
                "service": row["service__name"],
                "slug": row["service__slug"],
                "user": row["live_event__user_nickname"],
                "at": iso(row["finished_at"] or row["updated_at"]),
                "start_latency": seconds_between(received, row["started_at"]),
                "latency": seconds_between(received, row["finished_at"]),
            }
        )
    return feed


def _viewers(session: LiveSession | None) -> int | None:
    if session is None:
        return None
    data = (
        LiveEvent.objects.filter(session=session, event_type=VIEWERS_EVENT)
        .order_by("-received_at")
        .values_list("event_data", flat=True)
        .first()
    )
    return int(data.get("viewers") or 0) if isinstance(data, dict) else None


def _last_event_at(session: LiveSession | None) -> datetime | None:
    if session is None:
        return None
    return (
        LiveEvent.objects.filter(session=session, received_at__gte=session.started_at)
        .order_by("-received_at")
        .values_list("received_at", flat=True)
        .first()
    )


# -- the fast part --------------------------------------------------------------------------------


class _BrokerLink:
    """One AMQP connection per web process for the queue depths: passive declares are exact and
    immediate, where the management API's counts are refreshed every ~5 s."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connection = None
        self._url = ""

    def counts(self, names: list[str]) -> dict[str, tuple[int, int] | None]:
        with self._lock:
            for attempt in (1, 2):
                url = broker_url()
                if self._connection is None or self._url != url:
                    close_quietly(self._connection)
                    self._connection, self._url = None, url
                    self._connection = open_connection(url)
                try:
                    return passive_counts(self._connection, names)
                except CONNECTION_ERRORS as exc:
                    # Closed while idle (no page open) or the broker restarted: once more, afresh.
                    abandon(self._connection)
                    self._connection = None
                    if attempt == 2:
                        raise BrokerError(f"RabbitMQ: {exc}") from exc
            return {}


_link = _BrokerLink()


def _broker_depths(names: list[str]) -> tuple[dict[str, QueueDepth], str]:
    def fetch():
        try:
            counts = _link.counts(names)
        except BrokerError as exc:
            try:  # the management API still answers with its slightly older counts
                return Management().queue_depths(prefix="svc."), ""
            except BrokerError:
                return {}, str(exc)[:200]
        return {n: QueueDepth(n, c[0], 0, c[1]) for n, c in counts.items() if c is not None}, ""

    return _depths.get(tuple(names), fetch)


def _heartbeats(slugs: list[str]) -> tuple[dict[str, list[dict]], str]:
    try:
        client = control.redis_client()
        try:
            return control.read_heartbeats(client, slugs), ""
        finally:
            client.close()
    except Exception as exc:  # Redis away: the consumers on the queue still say who is up
        return {}, f"Redis: {str(exc)[:150]}"


def _pending_by_priority(services: list[Service]) -> dict[int, dict[int, int]]:
    result: dict[int, dict[int, int]] = {}
    for row in (
        QueueItem.objects.filter(service__in=services, status=Status.PENDING, discardable=False)
        .values("service_id", "priority")
        .annotate(n=Count("id"))
    ):
        result.setdefault(row["service_id"], {})[row["priority"]] = row["n"]
    return result


def _running(services: list[Service], now: datetime) -> dict[int, list[dict]]:
    result: dict[int, list[dict]] = {}
    for row in (
        QueueItem.objects.filter(service__in=services, status=Status.PROCESSING)
        .order_by("started_at")
        .values("id", "service_id", "event_type", "priority", "started_at", "live_event__user_nickname")
    ):
        result.setdefault(row["service_id"], []).append(
            {
                "id": row["id"],
                "event_type": row["event_type"],
                "priority": row["priority"],
                "user": row["live_event__user_nickname"],
                "seconds": seconds_between(row["started_at"], now),
            }
        )
    return result


def _service_card(
    service: Service,
    *,
    discardable_types: list[str],
    depths: dict,
    beats: list[dict] | None,
    pending: dict[int, int],
    running: list[dict],
    counts: dict[str, int],
    latency: dict | None,
) -> dict:
    main = depths.get(queues.main_queue_name(service.slug))
    consumers = main.consumers if main else 0
    if beats:
        # The heartbeats are at most 2 s old; the management API's consumer count lags ~5 s.
        up, consuming = True, any(b["consuming"] for b in beats)
    else:
        up = consuming = consumers > 0
    if not up:
        worker = "down"
    elif service.paused and not consuming:
        worker = "paused"
    elif service.paused:
        worker = "pausing"
    elif not consuming:
        worker = "resuming"
    else:
        worker = "up"
    discardable = []
    for event_type in discardable_types:
        name = queues.discardable_queue_name(service.slug, event_type)
        depth = depths.get(name)
        discardable.append(
            {
                "event_type": event_type,
                "queue": name,
                "ready": depth.ready if depth else None,
                "bound": service.max_queue_size,
            }
        )
    return {
        "id": service.pk,
        "slug": service.slug,
        "name": service.name,
        "mode": service.mode,
        "concurrency": service.worker_concurrency,
        "is_active": service.is_active,
        "paused": service.paused,
        "worker": worker,
        "nodes": [b["node"] for b in beats or []],
        "consumers": consumers,
        "busy": len(running),
        "running": running,
        "main_queue": {
            "name": queues.main_queue_name(service.slug),
            "ready": main.ready if main else None,
            "by_priority": [{"priority": p, "waiting": n} for p, n in sorted(pending.items(), reverse=True)],
        },
        "discardable": discardable,
        "completed": counts.get(Status.COMPLETED, 0),
        "failed": counts.get(Status.FAILED, 0),
        "discarded": counts.get(Status.DISCARDED, 0),
        "latency": latency or {},
        "can_skip": control.can_skip(service.service_class),
    }


def snapshot(*, rates_since: datetime | None = None) -> dict:
    """The whole page's data; ``rates_since`` bounds the per-second event counts (default: the 5-minute window)."""
    now = timezone.now()
    session = current_session()
    slow = _slow.get(session.pk if session else None, lambda: _slow_part(session))
    services = list(Service.objects.order_by("name"))
    types: dict[int, list[str]] = {}
    for service_id, event_type in (
        ServiceEventConfig.objects.filter(service__in=services, discardable=True, enabled=True)
        .order_by("-priority", "event_type")
        .values_list("service_id", "event_type")
    ):
        types.setdefault(service_id, []).append(event_type)
    names = [queues.main_queue_name(s.slug) for s in services]
    names += [queues.discardable_queue_name(s.slug, t) for s in services for t in types.get(s.pk, [])]
    depths, broker_error = _broker_depths(names)
    beats, redis_error = _heartbeats([s.slug for s in services])
    pending = _pending_by_priority(services)
    running = _running(services, now)
    cards = [
        _service_card(
            service,
            discardable_types=types.get(service.pk, []),
            depths=depths,
            beats=beats.get(service.slug) if not redis_error else None,
            pending=pending.get(service.pk, {}),
            running=running.get(service.pk, []),
            counts=slow["counts"].get(service.pk, {}),
            latency=slow["latency"].get(service.pk),
        )
        for service in services
    ]
    window_start = now - timedelta(seconds=WINDOW_SECONDS)
    rates = event_rates(session, max(rates_since or window_start, window_start))
    return {
        "now": iso(now),
        "epoch": int(now.timestamp()),
        "window_seconds": WINDOW_SECONDS,
        "live": {
            "session_id": session.pk if session else None,
            "streamer": session.streamer if session else "",
            "started_at": iso(session.started_at) if session else None,
            "viewers": slow["viewers"],
            "last_event_at": iso(slow["last_event_at"]),
            **live_state(session, slow["last_event_at"], now),
        },
        "rates": {t: {str(s): n for s, n in per.items()} for t, per in rates.items()},
        "services": cards,
        "reactions": slow["reactions"],
        "problems": slow["problems"],
        "errors": [e for e in (broker_error and f"RabbitMQ: {broker_error}", redis_error) if e],
    }
