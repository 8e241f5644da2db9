"""Pause and resume from the control room with a real worker (``python -m workers``), RabbitMQ,
PostgreSQL and Redis: a paused worker takes nothing and loses nothing, resuming drains the
backlog highest priority first, and a worker started while paused does not consume."""

from __future__ import annotations

import time

import pytest

from project.control import room_snapshot
from project.queue_system.models import QueueItem, Service
from tests.support.broker import depth
from tests.support.queueing import all_settled, dispatch_in_batches, make_events, make_service, make_session
from tests.support.waiting import wait_for
from tests.support.worker_processes import consumers, running_workers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SLUG = "pausing"
QUEUE = f"svc.{SLUG}"
Status = QueueItem.Status


def _card(client) -> dict:
    room_snapshot.clear_caches()
    snap = client.get("/control/live/snapshot.json").json()
    return next(c for c in snap["services"] if c["slug"] == SLUG)


def _statuses(service) -> dict[str, int]:
    counts = dict.fromkeys(Status.values, 0)
    for status in QueueItem.objects.filter(service=service).values_list("status", flat=True):
        counts[status] += 1
    return counts


def test_pause_stops_reactions_and_resume_drains_the_backlog_in_priority_order(vhost, admin_client_logged, caplog):
    service = make_service(SLUG)
    session = make_session()
    with running_workers(vhost, [SLUG]):
        wait_for(lambda: _card(admin_client_logged)["worker"] == "up", timeout=20, what="the card to say up")
        first = make_events(session, ["GiftEvent"])
        dispatch_in_batches(first)
        wait_for(lambda: all_settled(service), timeout=30, what="the first gift to complete")

        admin_client_logged.post(f"/control/services/{SLUG}/pause/")
        assert Service.objects.get(slug=SLUG).paused
        assert "could not broadcast" not in caplog.text  # told at once, not at the worker's next re-read
        wait_for(lambda: consumers(vhost, QUEUE) == 0, timeout=10, what="the worker to stop consuming")
        wait_for(lambda: _card(admin_client_logged)["worker"] == "paused", timeout=10, what="the card to say paused")

        # A backlog of mixed priorities arrives while paused: nothing runs, nothing is dropped.
        types = ["FollowEvent", "GiftEvent", "SubscribeEvent"] * 4
        dispatch_in_batches(make_events(session, types))
        wait_for(lambda: depth(vhost, QUEUE) == 12, timeout=10, what="12 messages waiting in svc.pausing")
        time.sleep(2.0)
        counts = _statuses(service)
        assert counts["pending"] == 12 and counts["processing"] == 0 and counts["completed"] == 1
        assert depth(vhost, QUEUE) == 12
        card = _card(admin_client_logged)
        assert card["paused"] and card["main_queue"]["ready"] is not None
        assert card["main_queue"]["by_priority"] == [
            {"priority": 10, "waiting": 4},
            {"priority": 9, "waiting": 4},
            {"priority": 8, "waiting": 4},
        ]
        page = admin_client_logged.get("/control/").content.decode()
        assert 'class="badge worker-paused" data-field="worker">paused<' in page

        admin_client_logged.post(f"/control/services/{SLUG}/resume/")
        wait_for(lambda: all_settled(service), timeout=60, what="the backlog to drain after resume")
        started = list(
            QueueItem.objects.filter(service=service)
            .exclude(live_event=first[0])
            .order_by("started_at")
            .values_list("priority", flat=True)
        )
        assert started == [10] * 4 + [9] * 4 + [8] * 4
        assert _statuses(service)["completed"] == 13
        wait_for(lambda: _card(admin_client_logged)["worker"] == "up", timeout=10, what="the card to say up again")


def test_a_worker_started_while_paused_does_not_consume(vhost, admin_client_logged):
    service = make_service(SLUG)
    Service.objects.filter(pk=service.pk).update(paused=True)
    session = make_session()
    with running_workers(vhost, []) as workers:
        workers.start(SLUG, wait=False)
        # Its heartbeat says it runs and does not consume.
        wait_for(lambda: _card(admin_client_logged)["worker"] == "paused", timeout=60, what="a paused worker's card")
        assert consumers(vhost, QUEUE) == 0
        dispatch_in_batches(make_events(session, ["GiftEvent", "GiftEvent"]))
        time.sleep(2.0)
        assert _statuses(service)["pending"] == 2 and depth(vhost, QUEUE) == 2

        admin_client_logged.post(f"/control/services/{SLUG}/resume/")
        wait_for(lambda: all_settled(service), timeout=30, what="the gifts to run after resume")
        assert _statuses(service)["completed"] == 2
        assert consumers(vhost, QUEUE) == 1
