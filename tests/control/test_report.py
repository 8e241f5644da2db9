"""The post-live report: every figure on the page checked against the rows in the database.

``simulated_session`` stores a finished 25-minute live (gifts with streaks, chat, likes,
follows, subscriptions, joins) with its queue items for two services in every end state,
with random but seeded timings. The expected figures are computed here in Python from the
rows, independently of the report's SQL aggregations.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections import Counter, defaultdict

import pytest
from django.db.models import F
from django.utils import timezone

from project.queue_system.models import QueueItem
from project.tiktok_events.models import LiveEvent, LiveSession
from tests.support.queueing import make_service

pytestmark = pytest.mark.django_db

GIFTS = [("Rose", 5655, 1), ("Doughnut", 5879, 30), ("Galaxy", 11046, 1000)]
MINUTES = 25


def _event(session, at, event_type, user, data, **fields):
    return LiveEvent(
        session=session,
        event_type=event_type,
        received_at=at,
        user_unique_id=user,
        user_id=str(abs(hash(user)) % 10**9),
        user_nickname=user.replace("_", " ").title(),
        event_data=data,
        **fields,
    )


def simulated_session(seed: int = 7, *, name: str = "Friday live", is_test: bool = False) -> LiveSession:
    """A finished live with its events and queue items, stored in bulk."""
    rng = random.Random(seed)
    start = timezone.now().replace(microsecond=0) - dt.timedelta(hours=2)
    session = LiveSession.objects.create(
        name=name,
        streamer="streamer",
        started_at=start,
        ended_at=start + dt.timedelta(minutes=MINUTES, seconds=30),
        status=LiveSession.Status.ENDED,
        reconnects=2,
        behind_max_seconds=7.5,
        is_test=is_test,
    )
    events = []
    viewers = [f"viewer_{n}" for n in range(12)]
    for n in range(600):
        at = start + dt.timedelta(seconds=rng.uniform(5, MINUTES * 60))
        user = rng.choice(viewers)
        kind = rng.choices(["gift", "comment", "like", "join", "follow", "sub"], [10, 30, 40, 12, 6, 2])[0]
        if kind == "gift":
            name_, gift_id, diamonds = rng.choice(GIFTS)
            repeat = rng.choice([1, 1, 3, 10]) if diamonds < 1000 else 1
            data = {
                "gift": {"id": gift_id, "name": name_, "diamond_count": diamonds, "streakable": diamonds < 1000},
                "repeat_count": repeat,
                "repeat_end": True,
                "diamonds_total": diamonds * repeat,
                "to_user": {"is_host": True},
            }
            events.append(_event(session, at, "GiftEvent", user, data, repeat_count=repeat))
        elif kind == "comment":
            events.append(_event(session, at, "CommentEvent", user, {"comment": f"hola {n}"}))
        elif kind == "like":
            data = {"count": rng.randint(1, 30), "room_total": n * 10}
            events.append(_event(session, at, "LikeEvent", user, data))
        elif kind == "join":
            events.append(_event(session, at, "JoinEvent", user, {"member_count": n}))
        elif kind == "follow":
            events.append(_event(session, at, "FollowEvent", user, {"follow_count": n}))
        else:
            events.append(_event(session, at, "SubscribeEvent", user, {"tiktok_type": "SubNotifyEvent"}))
    LiveEvent.objects.bulk_create(events)
    # Stored 50 ms after they were received (bulk_create set created_at to now, auto_now_add),
    # except two stored late: the capture was behind.
    stored = LiveEvent.objects.filter(session=session)
    stored.update(created_at=F("received_at") + dt.timedelta(milliseconds=50))
    stored.filter(pk=events[0].pk).update(created_at=F("received_at") + dt.timedelta(seconds=9.25))
    stored.filter(pk=events[1].pk).update(created_at=F("received_at") + dt.timedelta(seconds=6))

    services = [
        make_service(f"report-sync-{seed}", service_class="tests.support.recording_service.RecordingService"),
        make_service(f"report-async-{seed}", mode="ASYNC", concurrency=4),
    ]
    items = []
    for e in events:
        if e.event_type == "JoinEvent":
            continue
        for service in services:
            status = rng.choices(["completed", "failed", "discarded"], [85, 5, 10])[0]
            if status == "discarded" and e.event_type not in ("LikeEvent", "CommentEvent"):
                status = "completed"
            started = e.received_at + dt.timedelta(seconds=rng.uniform(0.01, 2))
            finished = started + dt.timedelta(seconds=rng.uniform(0.05, 3))
            error = ""
            if status == "failed":
                error = rng.choice(["RuntimeError: the game did not answer", "timed out after 300 s"])
            elif status == "discarded":
                error = f"dropped: more than max_queue_size waiting in svc.{service.slug}.discardable.{e.event_type}"
                started = None
            items.append(
                QueueItem(
                    live_event=e,
                    service=service,
                    event_type=e.event_type,
                    priority=5,
                    status=status,
                    error=error,
                    attempts=0 if status == "discarded" else 1,
                    dispatched_at=e.received_at,
                    started_at=started,
                    finished_at=finished,
                )
            )
    QueueItem.objects.bulk_create(items)
    return session


def interpolated(values: list[float], fraction: float) -> float:
    """PostgreSQL's percentile_cont: linear interpolation between the closest ranks."""
    ordered = sorted(values)
    rank = fraction * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def expected(session: LiveSession) -> dict:
    """The report's figures, from the rows, in Python."""
    events = list(LiveEvent.objects.filter(session=session))
    gifts = [e for e in events if e.event_type == "GiftEvent"]
    diamonds_by_user: Counter = Counter()
    for g in gifts:
        diamonds_by_user[g.user_unique_id] += g.event_data["diamonds_total"]
    by_gift: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for g in gifts:
        row = by_gift[g.event_data["gift"]["name"]]
        row[0] += 1
        row[1] += g.repeat_count
        row[2] += g.event_data["diamonds_total"]
    items = list(QueueItem.objects.filter(live_event__session=session).select_related("service", "live_event"))
    outcomes: dict[str, Counter] = defaultdict(Counter)
    for item in items:
        outcomes[item.service.name][item.status] += 1
    latencies: dict[tuple[str, str], list[float]] = defaultdict(list)
    for item in items:
        if item.status == "completed":
            seconds = (item.finished_at - item.live_event.received_at).total_seconds()
            latencies[(item.service.name, item.event_type)].append(seconds)
    per_minute: Counter = Counter()
    first = min(e.received_at for e in events).replace(second=0, microsecond=0)
    for e in events:
        per_minute[int((e.received_at - first).total_seconds() // 60)] += 1
    return {
        "total": len(events),
        "by_type": Counter(e.event_type for e in events),
        "diamonds": sum(diamonds_by_user.values()),
        "diamonds_by_user": diamonds_by_user,
        "gifts": {name: tuple(v) for name, v in by_gift.items()},
        "chatters": Counter(e.user_unique_id for e in events if e.event_type == "CommentEvent"),
        "likes": sum(e.event_data["count"] for e in events if e.event_type == "LikeEvent"),
        "followers": len({e.user_unique_id for e in events if e.event_type == "FollowEvent"}),
        "subscribers": len({e.user_unique_id for e in events if e.event_type == "SubscribeEvent"}),
        "outcomes": outcomes,
        "discard_reasons": Counter((i.service.name, i.error) for i in items if i.status in ("failed", "discarded")),
        "latencies": latencies,
        "per_minute": per_minute,
        "late": sum(1 for e in events if (e.created_at - e.received_at).total_seconds() > 5),
    }


@pytest.mark.slow
def test_the_report_figures_match_the_database(admin_client_logged, django_assert_max_num_queries):
    session = simulated_session()
    want = expected(session)
    # A fixed number of aggregate queries, whatever the session's size: no row is loaded one by one.
    with django_assert_max_num_queries(25):
        response = admin_client_logged.get(f"/control/sessions/{session.pk}/")
    assert response.status_code == 200
    report = response.context["report"]

    assert report.total_events == want["total"] == 600
    assert {r["event_type"]: r["n"] for r in report.by_type} == want["by_type"]
    assert report.duration_seconds == MINUTES * 60 + 30
    assert report.duration_text == "25 min 30 s"
    assert report.diamonds == want["diamonds"] > 1000
    top = want["diamonds_by_user"].most_common()
    assert [(g["user_unique_id"], g["diamonds"]) for g in report.top_gifters] == sorted(
        top, key=lambda kv: (-kv[1], kv[0])
    )[:10]
    assert {g["name"]: (g["n"], g["repeats"], g["diamonds"]) for g in report.gifts} == want["gifts"]
    assert [(c["user_unique_id"], c["comments"]) for c in report.top_chatters] == sorted(
        want["chatters"].items(), key=lambda kv: (-kv[1], kv[0])
    )[:10]
    assert report.likes["counted"] == want["likes"]
    assert (report.followers["count"], report.subscribers["count"]) == (want["followers"], want["subscribers"])
    assert report.followers["count"] == len(report.followers["listed"])

    for row in report.services:
        counts = want["outcomes"][row["service"]]
        assert {s: row[s] for s in ("completed", "failed", "discarded", "pending")} == {
            s: counts[s] for s in ("completed", "failed", "discarded", "pending")
        }
    assert len(report.services) == 2
    assert {(r["service__name"], r["error"]): r["n"] for r in report.reasons} == want["discard_reasons"]
    assert any(r["error"].startswith("dropped: more than max_queue_size") for r in report.reasons)

    assert {(r["service"], r["event_type"]) for r in report.latency} == set(want["latencies"])
    for row in report.latency:
        values = want["latencies"][(row["service"], row["event_type"])]
        assert row["n"] == len(values)
        for key, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            assert row[key] == pytest.approx(interpolated(values, fraction), rel=0.005, abs=0.0006)
        assert row["max"] == pytest.approx(max(values), rel=0.005, abs=0.0006)

    timeline = report.timeline
    per_minute = [sum(d["data"][m] for d in timeline["datasets"]) for m in range(len(timeline["labels"]))]
    assert {m: n for m, n in enumerate(per_minute) if n} == dict(want["per_minute"])
    assert report.capture["reconnects"] == 2 and report.capture["behind_max_seconds"] == 7.5
    assert report.capture["store_delay_max_seconds"] == pytest.approx(9.25)
    assert report.capture["stored_late_events"] == want["late"] == 2

    page = response.content.decode()
    assert re.search(rf'id="total-events">{want["total"]}<', page)
    assert re.search(rf'id="diamonds">{want["diamonds"]}<', page)
    assert 'id="report-data"' in page and "chart.umd.min.js" in page


def test_an_empty_session_has_a_report_too(admin_client_logged):
    session = LiveSession.objects.create(streamer="s", started_at=timezone.now(), status=LiveSession.Status.LIVE)
    response = admin_client_logged.get(f"/control/sessions/{session.pk}/")
    assert response.status_code == 200
    assert response.context["report"].total_events == 0
    assert "No gift." in response.content.decode()


@pytest.mark.slow
def test_the_list_leaves_test_sessions_out_unless_asked(admin_client_logged):
    live = simulated_session(1, name="Real live")
    test = simulated_session(2, name="Test events", is_test=True)
    page = admin_client_logged.get("/control/sessions/")
    ids = [row["session"].pk for row in page.context["sessions"]]
    assert ids == [live.pk]
    assert page.context["sessions"][0]["events"] == LiveEvent.objects.filter(session=live).count()
    assert page.context["sessions"][0]["duration"] == "25 min 30 s"
    ids = [row["session"].pk for row in admin_client_logged.get("/control/sessions/?show=test").context["sessions"]]
    assert ids == [test.pk]
    ids = {row["session"].pk for row in admin_client_logged.get("/control/sessions/?show=all").context["sessions"]}
    assert ids == {live.pk, test.pk}


def test_reports_require_staff(client):
    session = LiveSession.objects.create(streamer="s", started_at=timezone.now())
    for url in ("/control/sessions/", f"/control/sessions/{session.pk}/"):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
