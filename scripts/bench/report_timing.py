#!/usr/bin/env python
"""Post-live report timing: a generated session of 1,000,000 events with their queue items.

    .venv/bin/python scripts/bench/report_timing.py [--events 1000000] [--reuse]

It uses its own database (``<DATABASE_URL name>_report``, created and migrated if
needed), empties it and generates, inside PostgreSQL (INSERT … SELECT over
generate_series), one finished 4-hour session: likes, comments, joins, gifts (Rose,
Doughnut, Galaxy, Lion, with streaks), follows, shares and subscriptions from 20,000
viewers, and a queue item per (event, service) for two services taking every type but
joins and shares, mostly completed, some likes and comments discarded with the policy's
reason, a few failed. Then VACUUM ANALYZE, as autovacuum would have done after a live.
``--reuse`` keeps the session of the last run.

Timed, the report and the page the best of ``--runs`` (the first run, with colder caches, is
printed too), each CSV once:
  report_s          reports.build(): every aggregate of the report page
  page_s            the whole page through the view (build + template), as a browser gets it
  events_csv_s      the events CSV streamed to the end (bytes counted, nothing kept)
  queue_items_csv_s the queue items CSV streamed to the end

The last line printed is one JSON object with these, the row counts and the machine gauge.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

from bench_setup import MachineGauge, log, use_bench_database  # noqa: E402 - after the path set-up

STREAMER = "report-bench"
HOURS = 4
VIEWERS = 20_000

# One statement: the events of the session, the type and its event_data from g's last
# two digits (45 % likes, 30 % comments, 13 % joins, 7 % gifts, 3 % follows, 1 % shares,
# 1 % subscriptions), spread evenly over the session, stored 40-90 ms after receipt.
EVENTS_SQL = """
INSERT INTO {events} (created_at, updated_at, session_id, event_type, msg_id, user_id, user_unique_id,
                      user_nickname, user_nickname_raw, event_data, streak_status, repeat_count, received_at)
SELECT t.at + make_interval(secs => 0.04 + (g %% 50) / 1000.0), t.at + interval '50 ms', %(session)s, t.kind, g,
       (1000000 + t.viewer)::text, 'viewer_' || t.viewer, 'Viewer ' || t.viewer, 'Viewer ' || t.viewer,
       CASE t.kind
         WHEN 'LikeEvent' THEN jsonb_build_object('count', 1 + g %% 15, 'room_total', g * 8)
         WHEN 'CommentEvent' THEN jsonb_build_object('comment', 'comment ' || g, 'comment_raw', 'comment ' || g)
         WHEN 'JoinEvent' THEN jsonb_build_object('member_count', g %% 5000)
         WHEN 'GiftEvent' THEN jsonb_build_object(
           'gift', jsonb_build_object('id', t.gift_id, 'name', t.gift, 'diamond_count', t.price,
                                      'streakable', t.price < 1000),
           'repeat_count', t.repeats, 'repeat_end', true, 'group_id', '0',
           'diamonds_total', t.price * t.repeats, 'to_user', jsonb_build_object('is_host', true))
         WHEN 'FollowEvent' THEN jsonb_build_object('follow_count', g)
         WHEN 'ShareEvent' THEN jsonb_build_object('share_type', 1, 'users_joined', 0)
         ELSE jsonb_build_object('tiktok_type', 'SubNotifyEvent', 'sub_month', 1)
       END,
       CASE WHEN t.kind = 'GiftEvent' AND t.price < 1000 THEN 'ended' ELSE 'none' END,
       CASE WHEN t.kind = 'GiftEvent' THEN t.repeats ELSE 1 END,
       t.at
FROM generate_series(1, %(n)s) AS g,
LATERAL (
  SELECT %(start)s::timestamptz + make_interval(secs => g * %(spacing)s) AS at,
         (g::bigint * 7919) %% %(viewers)s AS viewer,
         CASE WHEN g %% 100 < 45 THEN 'LikeEvent' WHEN g %% 100 < 75 THEN 'CommentEvent'
              WHEN g %% 100 < 88 THEN 'JoinEvent' WHEN g %% 100 < 95 THEN 'GiftEvent'
              WHEN g %% 100 < 98 THEN 'FollowEvent' WHEN g %% 100 < 99 THEN 'ShareEvent'
              ELSE 'SubscribeEvent' END AS kind,
         (ARRAY['Rose', 'Rose', 'Doughnut', 'Galaxy', 'Lion'])[1 + (g / 100) %% 5] AS gift,
         (ARRAY[5655, 5655, 5879, 11046, 6369])[1 + (g / 100) %% 5] AS gift_id,
         (ARRAY[1, 1, 30, 1000, 29999])[1 + (g / 100) %% 5] AS price,
         CASE WHEN (g / 100) %% 5 < 3 THEN 1 + (g / 100) %% 10 ELSE 1 END AS repeats
) AS t
"""

# A queue item per (event, service) for every type but joins and shares: discardable
# likes and comments, 4 % of them dropped by the policy; 0.5 % of the rest failed.
ITEMS_SQL = """
INSERT INTO {items} (created_at, updated_at, live_event_id, service_id, event_type, priority, discardable,
                     status, attempts, error, moderation, dispatched_at, started_at, finished_at)
SELECT e.received_at + interval '60 ms', e.received_at + x.done, e.id, s.id, e.event_type,
       CASE e.event_type WHEN 'GiftEvent' THEN 10 WHEN 'SubscribeEvent' THEN 9 WHEN 'FollowEvent' THEN 8
                         WHEN 'CommentEvent' THEN 6 ELSE 3 END,
       x.discardable, x.status,
       CASE WHEN x.status = 'discarded' THEN 0 ELSE 1 END,
       CASE x.status
         WHEN 'discarded' THEN 'dropped: more than max_queue_size waiting in svc.' || s.slug || '.discardable.'
                               || e.event_type
         WHEN 'failed' THEN 'RuntimeError: the game did not answer'
         ELSE '' END,
       '', e.received_at + interval '70 ms',
       CASE WHEN x.status = 'discarded' THEN NULL ELSE e.received_at + x.start END,
       e.received_at + x.done
FROM {events} e
CROSS JOIN {services} s
CROSS JOIN LATERAL (
  SELECT e.event_type IN ('LikeEvent', 'CommentEvent') AS discardable,
         CASE WHEN e.event_type IN ('LikeEvent', 'CommentEvent') AND e.id %% 25 = 0 THEN 'discarded'
              WHEN e.id %% 200 = 7 THEN 'failed' ELSE 'completed' END AS status,
         make_interval(secs => 0.08 + (e.id %% 97) / 100.0) AS start,
         make_interval(secs => 0.3 + (e.id %% 389) / 100.0) AS done
) AS x
WHERE e.session_id = %(session)s AND e.event_type NOT IN ('JoinEvent', 'ShareEvent') AND s.slug LIKE 'report-bench-%%'
"""


def generate(n: int) -> int:
    import datetime as dt

    from django.db import connection
    from django.utils import timezone

    from project.queue_system.models import QueueItem, Service
    from project.tiktok_events.models import LiveEvent, LiveSession

    tables = [m._meta.db_table for m in (QueueItem, LiveEvent, LiveSession, Service)]
    with connection.cursor() as cursor:
        # The bench's own database: emptied at once, no dead rows left for a vacuum to chase.
        cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
    start = timezone.now().replace(microsecond=0) - dt.timedelta(hours=HOURS + 1)
    session = LiveSession.objects.create(
        name="1M events",
        streamer=STREAMER,
        started_at=start,
        ended_at=start + dt.timedelta(hours=HOURS),
        status=LiveSession.Status.ENDED,
        reconnects=3,
        behind_max_seconds=4.2,
    )
    for slug, mode in (("report-bench-sync", "SYNC"), ("report-bench-async", "ASYNC")):
        Service.objects.create(name=slug, slug=slug, service_class="x.y", mode=mode, is_active=False)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        events_sql = EVENTS_SQL.replace("{events}", LiveEvent._meta.db_table)
        cursor.execute(
            events_sql,
            {"session": session.pk, "n": n, "start": start, "spacing": HOURS * 3600 / n, "viewers": VIEWERS},
        )
        log(f"{n:,} events in {time.perf_counter() - started:.1f} s")
        items_sql = (
            ITEMS_SQL.replace("{items}", QueueItem._meta.db_table)
            .replace("{events}", LiveEvent._meta.db_table)
            .replace("{services}", Service._meta.db_table)
        )
        cursor.execute(items_sql, {"session": session.pk})
        log(f"{cursor.rowcount:,} queue items; {time.perf_counter() - started:.1f} s in all")
    vacuum(tables)
    return session.pk


def vacuum(tables: list[str]) -> None:
    import psycopg
    from django.db import connection

    # VACUUM cannot run in a transaction: a connection of its own, in autocommit.
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    started = time.perf_counter()
    with psycopg.connect(**params, autocommit=True) as conn:
        for table in tables:
            conn.execute(f"VACUUM ANALYZE {table}")
    log(f"VACUUM ANALYZE in {time.perf_counter() - started:.1f} s")


def timed(fn, runs: int) -> tuple[float, float, object]:
    """(first run s, best run s, the last result)."""
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return round(times[0], 3), round(min(times), 3), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reuse", action="store_true", help="time the session of the last run again")
    args = parser.parse_args()

    use_bench_database("report")
    gauge = MachineGauge()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import RequestFactory

    from project.control import report_csv, reports
    from project.control.report_views import session_report
    from project.queue_system.models import QueueItem
    from project.tiktok_events.models import LiveEvent, LiveSession

    call_command("migrate", verbosity=0)
    session = LiveSession.objects.filter(streamer=STREAMER).first() if args.reuse else None
    session_id = session.pk if session else generate(args.events)
    session = LiveSession.objects.get(pk=session_id)
    events = LiveEvent.objects.filter(session_id=session_id).count()
    items = QueueItem.objects.filter(live_event__session_id=session_id).count()

    report_first, report_best, report = timed(lambda: reports.build(session), args.runs)
    log(f"report: first {report_first} s, best {report_best} s ({report.total_events:,} events)")

    user = get_user_model()(username="bench", is_staff=True, is_active=True)
    request = RequestFactory().get(f"/control/sessions/{session_id}/")
    request.user = user
    page_first, page_best, response = timed(lambda: session_report(request, session_id=session_id), args.runs)
    assert response.status_code == 200, response.status_code
    log(f"page: first {page_first} s, best {page_best} s ({len(response.content):,} bytes)")

    def export(rows, header) -> int:
        return sum(len(chunk) for chunk in report_csv._stream(header, rows))

    events_header = [name for name, _ in report_csv.EVENT_COLUMNS]
    items_header = [name for name, _ in report_csv.ITEM_COLUMNS]
    _, events_csv_best, events_bytes = timed(lambda: export(report_csv.event_rows(session_id), events_header), 1)
    log(f"events CSV: {events_csv_best} s, {events_bytes / 2**20:.0f} MiB")
    _, items_csv_best, items_bytes = timed(lambda: export(report_csv.queue_item_rows(session_id), items_header), 1)
    log(f"queue items CSV: {items_csv_best} s, {items_bytes / 2**20:.0f} MiB")

    figures = {
        "events": events,
        "queue_items": items,
        "report_s": report_best,
        "report_first_s": report_first,
        "page_s": page_best,
        "page_first_s": page_first,
        "events_csv_s": events_csv_best,
        "events_csv_mib": round(events_bytes / 2**20, 1),
        "queue_items_csv_s": items_csv_best,
        "queue_items_csv_mib": round(items_bytes / 2**20, 1),
        **gauge.figures(),
    }
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
