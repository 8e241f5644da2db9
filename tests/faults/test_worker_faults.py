"""Service workers under real faults: PostgreSQL restarted under them, hung handlers, lost messages.

Every test asserts on the QueueItem rows and on what the service really ran
(tests.support.recording_service.RecordingService writes each start, end and on_timeout to Redis).
"""

from __future__ import annotations

import sys
import time
from collections import Counter

import pytest

from project.queue_system.dispatcher import EventDispatcher
from project.queue_system.models import QueueItem
from tests.support.broker import depth
from tests.support.outages import postgres_stopped
from tests.support.queueing import all_settled, make_events, make_service, make_session, statuses
from tests.support.recording_service import records
from tests.support.waiting import wait_for
from tests.support.worker_processes import consumers, running_workers

pytestmark = [pytest.mark.django_db(transaction=True)]

GIFTS = 60


def runs(key: str, phase: str) -> Counter:
    """How many times each item reached ``phase`` in the service."""
    return Counter(r["item"] for r in records(key) if r["phase"] == phase)


def completed(service) -> int:
    return QueueItem.objects.filter(service=service, status="completed").count()


def test_a_postgresql_restart_under_sync_and_async_workers_loses_no_gift_and_runs_none_twice(vhost):
    sync = make_service("pg-sync")
    async_ = make_service("pg-async", mode="ASYNC", concurrency=4)
    key = f"rec:{vhost.name}"
    # No watchdog pass during the test: the requeue itself must bring every gift back
    # (the recovery of lost messages has tests of its own below).
    env = {"TTE_TEST_RECORD_KEY": key, "TTE_DB_OUTAGE_WAIT_SECONDS": "30", "TTE_DRAIN_WATCHDOG_SECONDS": "3600"}
    with running_workers(vhost, ["pg-sync", "pg-async"], extra_env=env) as workers:
        events = make_events(make_session(), ["GiftEvent"] * GIFTS, sleep=0.05)
        EventDispatcher().dispatch_many(events)
        wait_for(lambda: completed(sync) >= 5 and completed(async_) >= 5, timeout=60, what="no gift ran")

        with postgres_stopped():
            time.sleep(8)
        restarted_at = time.monotonic()

        wait_for(lambda: all_settled(sync) and all_settled(async_), timeout=120, what="gifts were left behind")
        recovered_in = time.monotonic() - restarted_at
        logs = workers.log("pg-sync") + workers.log("pg-async")

    print(f"every gift settled {recovered_in:.1f} s after PostgreSQL was back; {statuses(sync)} {statuses(async_)}")
    print("\n".join(line[:300] for line in logs.splitlines() if "database" in line or "lost their" in line))
    for service in (sync, async_):
        assert statuses(service)["completed"] == GIFTS, (service.slug, statuses(service), logs[-6000:])
        items = set(QueueItem.objects.filter(service=service).values_list("pk", flat=True))
        ends = runs(key, "end")
        # The handler finished exactly once per gift: an outcome is never lost (the worker
        # retried writing it) and a claim that failed never ran the handler.
        assert {pk: ends[pk] for pk in items} == dict.fromkeys(items, 1)
    assert "goes back to the queue once the database answers" in logs or "could not record" in logs
    assert depth(vhost, "svc.pg-sync") == 0 and depth(vhost, "svc.pg-async") == 0


@pytest.mark.parametrize("mode", ["SYNC", "ASYNC"])
def test_a_hung_handler_fails_with_timed_out_calls_on_timeout_and_the_next_item_runs(vhost, mode):
    slug = f"hang-{mode.lower()}"
    service = make_service(slug, mode=mode, concurrency=2)
    service.time_budget_seconds = 5
    service.save()
    key = f"rec:{vhost.name}"
    env = {"TTE_TEST_RECORD_KEY": key, "TTE_TIMEOUT_GRACE_SECONDS": "1"}
    with running_workers(vhost, [slug], extra_env=env) as workers:
        session = make_session()
        [hung] = make_events(session, ["GiftEvent"], hang_first=600)
        EventDispatcher().dispatch_many([hung])
        hung_item = QueueItem.objects.get(live_event=hung)
        wait_for(lambda: runs(key, "start")[hung_item.pk] == 1, timeout=60, what="the hung gift never started")
        started = time.monotonic()
        follow_ups = make_events(session, ["GiftEvent", "FollowEvent", "GiftEvent"])
        EventDispatcher().dispatch_many(follow_ups)

        wait_for(lambda: all_settled(service), timeout=90, what="the items after the hung one did not run")
        settled_in = time.monotonic() - started
        after_grace = "replacing the worker process" if mode == "SYNC" else "its thread is abandoned (1 stuck)"
        wait_for(lambda: after_grace in workers.log(slug), timeout=30, what=f"no {after_grace!r}")
        log = workers.log(slug)

    hung_item.refresh_from_db()
    print(f"{mode}: everything settled {settled_in:.1f} s after the hung handler started (budget 5 s)")
    assert (hung_item.status, hung_item.error) == ("failed", "timed out after 5 s"), log[-4000:]
    assert runs(key, "on_timeout")[hung_item.pk] == 1
    assert runs(key, "end")[hung_item.pk] == 0
    others = QueueItem.objects.filter(live_event__in=follow_ups)
    assert sorted(others.values_list("status", flat=True)) == ["completed"] * 3
    # A SYNC worker's overdue child was replaced, and the redelivered message of the failed
    # item was skipped; an ASYNC worker left the thread behind and went on.
    assert runs(key, "start")[hung_item.pk] == 1
    assert settled_in < 60


def test_an_async_worker_whose_threads_are_all_stuck_is_restarted_by_the_supervisor(vhost):
    """Concurrency 1 and its one handler stuck for good: the worker shuts down, the supervisor restarts it."""
    from tests.support.processes import Output
    from tests.support.servers import subprocess_env

    service = make_service("stuck", mode="ASYNC", concurrency=1)
    service.time_budget_seconds = 5
    service.save()
    key = f"rec:{vhost.name}"
    env = subprocess_env(vhost, TTE_TEST_RECORD_KEY=key, TTE_TIMEOUT_GRACE_SECONDS="1")
    supervisor = Output([sys.executable, "manage.py", "run_queue_workers", "--service", "stuck"], env)
    try:
        supervisor.wait_for_text("✅ 1 worker(s) active", timeout=120)
        session = make_session()
        [hung] = make_events(session, ["GiftEvent"], hang_first=600)
        EventDispatcher().dispatch_many([hung])
        hung_item = QueueItem.objects.get(live_event=hung)
        wait_for(lambda: runs(key, "start")[hung_item.pk] == 1, timeout=60, what="the hung gift never started")
        after = make_events(session, ["GiftEvent"] * 3)
        EventDispatcher().dispatch_many(after)
        wait_for(lambda: all_settled(service), timeout=120, what="nothing ran after the stuck handler")
        supervisor.wait_for_text("restarting", timeout=60)
    finally:
        supervisor.close()
    hung_item.refresh_from_db()
    assert (hung_item.status, hung_item.error) == ("failed", "timed out after 5 s")
    assert sorted(QueueItem.objects.filter(live_event__in=after).values_list("status", flat=True)) == ["completed"] * 3
    # A fresh worker started the service again.
    assert len([r for r in records(key) if r["phase"] == "on_start"]) >= 2


def test_items_whose_messages_were_purged_are_published_again_at_worker_start(vhost):
    """Pending items (never taken) and a processing one (its worker killed) lose their messages to a purge."""
    service = make_service("orphans")
    key = f"rec:{vhost.name}"
    session = make_session()
    with running_workers(vhost, ["orphans"], extra_env={"TTE_TEST_RECORD_KEY": key}) as workers:
        [hung] = make_events(session, ["GiftEvent"], hang_first=600)
        EventDispatcher().dispatch_many([hung])
        hung_item = QueueItem.objects.get(live_event=hung)
        wait_for(lambda: runs(key, "start")[hung_item.pk] == 1, timeout=60, what="the gift never started")
        waiting = make_events(session, ["GiftEvent", "FollowEvent", "CommentEvent", "LikeEvent"])
        EventDispatcher().dispatch_many(waiting)
        workers.kill("orphans")
        # The broker puts the killed worker's unacked gift back once it has seen the connection
        # close; a purge before that would leave the gift's message behind.
        wait_for(lambda: consumers(vhost, "svc.orphans") == 0, timeout=30, what="the killed worker still consumes")
        # An operator purges the service's queues: no message is left of any of the five.
        for name in ["svc.orphans", "svc.orphans.discardable.CommentEvent", "svc.orphans.discardable.LikeEvent"]:
            vhost.api("DELETE", f"/api/queues/{vhost.name}/{name}/contents").raise_for_status()
        hung_item.refresh_from_db()
        assert hung_item.status == "processing"
        assert statuses(service)["pending"] == 4

        workers.start("orphans")
        # The like and the comment too, at once: the purge took their drain tickets, and the
        # start purges the tokens left (the watchdog would only after its next passes, 60 s).
        wait_for(lambda: all_settled(service), timeout=20, what="the orphaned items were not published again")
        log = workers.log("orphans")

    assert "re-published 5 item(s) of orphans that had lost their message" in log, log[-3000:]
    assert "stale drain tokens purged" in log, log[-3000:]
    assert statuses(service)["completed"] == 5
    ends = runs(key, "end")
    assert all(ends[item.pk] == 1 for item in QueueItem.objects.filter(service=service))


def test_a_running_worker_recovers_items_that_lost_their_message_once_it_is_idle(vhost):
    service = make_service("idle-recovery")
    key = f"rec:{vhost.name}"
    env = {"TTE_TEST_RECORD_KEY": key, "TTE_DRAIN_WATCHDOG_SECONDS": "2"}
    with running_workers(vhost, ["idle-recovery"], extra_env=env) as workers:
        session = make_session()
        [slow] = make_events(session, ["GiftEvent"], sleep=3)
        EventDispatcher().dispatch_many([slow])
        slow_item = QueueItem.objects.get(live_event=slow)
        wait_for(lambda: runs(key, "start")[slow_item.pk] == 1, timeout=60, what="the gift never started")
        # While the worker is busy, three more gifts are queued behind it and purged.
        lost = make_events(session, ["GiftEvent"] * 3)
        EventDispatcher().dispatch_many(lost)
        vhost.api("DELETE", f"/api/queues/{vhost.name}/svc.idle-recovery/contents").raise_for_status()
        # And one more arrives, whose message is still queued when the worker is idle again.
        [queued] = make_events(session, ["FollowEvent"])
        EventDispatcher().dispatch_many([queued])

        wait_for(lambda: all_settled(service), timeout=60, what="the purged gifts were never recovered")
        log = workers.log("idle-recovery")

    assert "3 item(s) of idle-recovery had lost their message" in log, log[-3000:]
    assert statuses(service)["completed"] == 5
    ends = runs(key, "end")
    assert all(ends[item.pk] == 1 for item in QueueItem.objects.filter(service=service))


def test_a_duplicate_message_of_a_pending_item_runs_it_once(vhost):
    """What makes a wrong recovery harmless: two messages of one item, one run."""
    service = make_service("dupes")
    key = f"rec:{vhost.name}"
    events = make_events(make_session(), ["GiftEvent"] * 5)
    dispatcher = EventDispatcher()
    dispatcher.dispatch_many(events)
    items = list(QueueItem.objects.filter(service=service))
    dispatcher.publish_items(items)  # a second message for each, before any worker runs
    dispatcher.close()
    assert depth(vhost, "svc.dupes") == 10
    with running_workers(vhost, ["dupes"], extra_env={"TTE_TEST_RECORD_KEY": key}):
        wait_for(lambda: depth(vhost, "svc.dupes") == 0 and all_settled(service), timeout=60)
    assert statuses(service)["completed"] == 5
    assert runs(key, "start") == Counter({item.pk: 1 for item in items})
