"""SIGKILL of an ASYNC worker, of the discard accounting and of the supervisor: nothing is lost.

(A SYNC worker killed mid-item: tests/queue_system/test_queue_crash.py; the capture and its
writer: tests/capture/test_capture_tiktok_live.py.)
"""

from __future__ import annotations

import signal
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from project.queue_system.dispatcher import EventDispatcher
from project.queue_system.models import QueueItem
from tests.support.broker import depth
from tests.support.processes import Output
from tests.support.queueing import all_settled, make_events, make_service, make_session, statuses
from tests.support.recording_service import records
from tests.support.servers import child_pids, subprocess_env
from tests.support.waiting import wait_for
from tests.support.worker_processes import running_workers
from workers.supervisor import DISCARDS

pytestmark = [pytest.mark.django_db(transaction=True)]


def ends(key: str) -> Counter:
    return Counter(r["item"] for r in records(key) if r["phase"] == "end")


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


def test_an_async_worker_killed_mid_item_has_it_redelivered_and_completed_once(vhost):
    service = make_service("kill-async", mode="ASYNC", concurrency=3)
    key = f"rec:{vhost.name}"
    with running_workers(vhost, ["kill-async"], extra_env={"TTE_TEST_RECORD_KEY": key}) as workers:
        session = make_session()
        [hung] = make_events(session, ["GiftEvent"], hang_first=120)
        others = make_events(session, ["GiftEvent"] * 10, sleep=0.2)
        EventDispatcher().dispatch_many([hung, *others])
        item = QueueItem.objects.get(live_event=hung)
        wait_for(lambda: any(r.get("item") == item.pk for r in records(key)), timeout=60, what="never started")
        workers.kill("kill-async")
        workers.start("kill-async")
        wait_for(lambda: all_settled(service), timeout=120, what="the killed worker's items were not redelivered")

    item.refresh_from_db()
    assert (item.status, item.attempts) == ("completed", 2)
    assert statuses(service)["completed"] == 11
    # Each item ran to its end once; only those the kill interrupted started twice.
    assert set(ends(key).values()) == {1} and len(ends(key)) == 11


def test_the_discard_accounting_killed_mid_flood_loses_no_discard(vhost):
    service = make_service("kill-discards", max_queue_size=5)
    with running_workers(vhost, [], discards=True) as workers:
        events = make_events(make_session(), ["LikeEvent"] * 400)
        dispatcher = EventDispatcher()
        for start in range(0, 200, 20):
            dispatcher.dispatch_many(events[start : start + 20])
        wait_for(lambda: statuses(service)["discarded"] > 0, timeout=60, what="nothing was discarded")
        workers.kill(DISCARDS)
        for start in range(200, 400, 20):  # dropped while nobody accounts for them
            dispatcher.dispatch_many(events[start : start + 20])
        dispatcher.close()
        assert depth(vhost, "events.discarded") > 0
        workers.start(DISCARDS)
        # 5 wait in the bounded queue (no worker here); every other like is accounted as discarded.
        wait_for(lambda: statuses(service)["discarded"] == 395, timeout=60, what=f"{statuses(service)}")
    counts = statuses(service)
    assert (counts["pending"], counts["discarded"], counts["processing"]) == (5, 395, 0)


def test_a_killed_supervisor_takes_its_workers_down_and_the_next_one_finishes_every_gift(vhost):
    service = make_service("kill-supervisor", mode="ASYNC", concurrency=2)
    key = f"rec:{vhost.name}"
    env = subprocess_env(vhost, TTE_TEST_RECORD_KEY=key)
    argv = [sys.executable, "manage.py", "run_queue_workers", "--service", "kill-supervisor"]
    first = Output(argv, env)
    try:
        first.wait_for_text("✅ 1 worker(s) active", timeout=120)
        workers = child_pids(first.proc.pid)
        assert len(workers) == 2  # the worker and the discard accounting
        EventDispatcher().dispatch_many(make_events(make_session(), ["GiftEvent"] * 60, sleep=0.1))
        wait_for(lambda: statuses(service)["completed"] >= 5, timeout=60, what="no gift ran")
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=30)
        killed_at = time.monotonic()
        wait_for(lambda: all(gone(pid) for pid in workers), timeout=60, what="the workers outlived their supervisor")
        left_in = time.monotonic() - killed_at
    finally:
        first.close()
    print(f"the workers left {left_in:.1f} s after their supervisor was killed; {statuses(service)}")
    assert statuses(service)["processing"] == 0  # the warm shutdown finished what it had begun
    assert statuses(service)["completed"] < 60

    second = Output(argv, env)
    try:
        second.wait_for_text("✅ 1 worker(s) active", timeout=120)
        wait_for(lambda: all_settled(service), timeout=120, what="the gifts left behind were not run")
    finally:
        second.close()
    assert statuses(service)["completed"] == 60
    assert set(ends(key).values()) == {1} and len(ends(key)) == 60
