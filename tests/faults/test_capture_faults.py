"""The capture under server faults: PostgreSQL, RabbitMQ restarted in the middle of a
simulated live. Each test compares what the simulator sent with the LiveEvent rows
stored and checks every QueueItem's fate."""

from __future__ import annotations

import json
import re
import time
from collections import Counter

import pytest
from django.db import connection

from project.queue_system.models import QueueItem
from project.tiktok_events.models import LiveEvent, LiveSession
from tests.support.capture import comment, run_capture
from tests.support.capture_live import CaptureProcess, simulated_live
from tests.support.outages import postgres_stopped, rabbitmq_stopped
from tests.support.queueing import all_settled, make_service
from tests.support.recording_service import records
from tests.support.waiting import wait_for
from tests.support.worker_processes import running_workers

pytestmark = [pytest.mark.django_db(transaction=True)]

OUTAGE_SECONDS = 8.0
KEPT_TYPES = {"GiftEvent", "FollowEvent", "SubscribeEvent"}  # what the seeded services keep


def stored_events(run) -> int:
    return LiveEvent.objects.filter(session_id=run.session_id).count()


def assert_every_item_dispatched(run) -> None:
    items = QueueItem.objects.filter(live_event__session_id=run.session_id)
    assert items.exists()
    unsent = items.filter(dispatched_at__isnull=True).count()
    assert unsent == 0, f"{unsent} of {items.count()} QueueItems never dispatched"


def capture_through_a_postgresql_restart(vhost, *, env: dict[str, str] | None = None):
    """A 30 s live at ≈ 130 events/s; PostgreSQL stopped for OUTAGE_SECONDS once 300 are stored.
    Returns the run and how many distinct messages the simulator sent."""
    with simulated_live(seconds=30, likes=100, comments=20) as live:
        capture = CaptureProcess.start(vhost, live, env=env)
        try:
            wait_for(lambda: LiveEvent.objects.count() > 300, timeout=90, what="the capture never stored events")
            with postgres_stopped():
                time.sleep(OUTAGE_SECONDS)
            run = capture.wait()
        finally:
            capture.kill()
        return run, live.sent()


def test_it_survives_a_postgresql_restart_in_the_middle_of_a_live(vhost, seeded, tmp_path):
    run, sent = capture_through_a_postgresql_restart(vhost, env={"CAPTURE_SPILL_DIR": str(tmp_path)})
    assert run.returncode == 0, run.output[-5000:]
    assert run.summary, "no summary written: " + run.output[-3000:]
    session = LiveSession.objects.get(pk=run.session_id)
    assert session.status == LiveSession.Status.ENDED and session.ended_at is not None
    assert stored_events(run) == sent == run.summary["events_stored"], run.output[-3000:]
    assert_every_item_dispatched(run)
    assert "🏁 Session #" in run.output
    # ≈ 1,000 events waited: within the default bound, nothing went to disk.
    assert run.summary["write_retries"] >= 1 and run.summary["events_spilled"] == 0, run.summary
    assert "capture behind" in run.output  # how far behind it was, logged while it was
    assert not list(tmp_path.iterdir())
    print(f"sent {sent}, stored {stored_events(run)}; {[line for line in run.output.splitlines() if '🏁' in line]}")


def test_past_its_backlog_bound_it_spills_to_disk_and_stores_it_all_in_order(vhost, seeded, tmp_path):
    spill_dir = tmp_path / "spill"
    env = {"CAPTURE_BACKLOG_MAX_EVENTS": "100", "CAPTURE_SPILL_DIR": str(spill_dir)}
    run, sent = capture_through_a_postgresql_restart(vhost, env=env)
    assert run.returncode == 0, run.output[-5000:]
    assert stored_events(run) == sent == run.summary["events_stored"], run.output[-3000:]
    # ≈ 1,000 events arrived during the outage: all but the first hundred went to disk.
    assert run.summary["events_spilled"] >= 500, run.summary
    assert run.summary["priority_batches"] > 0, run.summary  # gifts and follows went through their lane
    assert run.summary["backlog_max_events"] <= 100 + 5_000, run.summary  # the bound, and one batch in flight
    assert "the next ones are kept on disk" in run.output
    # Each spill file says so once stored; with a bound of 100 a busy machine can spill twice.
    stored_from_disk = re.findall(r"✅ The (\d+) events kept on disk are stored", run.output)
    assert sum(map(int, stored_from_disk)) == run.summary["events_spilled"], stored_from_disk
    assert list(spill_dir.iterdir()) == []  # removed once stored
    # In the order they were sent, in each lane (gifts and follows, which the services keep, go
    # through the priority lane): the simulator numbers its messages as it sends them.
    rows = LiveEvent.objects.filter(session_id=run.session_id).order_by("id").values_list("event_type", "msg_id")
    for lane in (True, False):
        msg_ids = [msg_id for event_type, msg_id in rows if (event_type in KEPT_TYPES) == lane]
        assert msg_ids and msg_ids == sorted(msg_ids), "priority lane" if lane else "main lane"
    assert_every_item_dispatched(run)
    print(f"sent {sent}, stored {stored_events(run)}, spilled {run.summary['events_spilled']}")


def test_a_rabbitmq_restart_with_the_capture_and_the_workers_running_loses_no_gift_or_follow(vhost):
    sync = make_service("live-sync")
    async_ = make_service("live-async", mode="ASYNC", concurrency=4)
    key = f"rec:{vhost.name}"
    with (
        running_workers(vhost, ["live-sync", "live-async"], extra_env={"TTE_TEST_RECORD_KEY": key}, discards=True),
        simulated_live(seconds=30, likes=100, comments=50) as live,
    ):
        capture = CaptureProcess.start(vhost, live)
        try:
            # The workers have run some of the live already when the broker goes.
            wait_for(
                lambda: QueueItem.objects.filter(status="completed", event_type="GiftEvent").count() >= 4,
                timeout=90,
                what="the workers never completed a gift",
            )
            with rabbitmq_stopped(vhost):
                time.sleep(OUTAGE_SECONDS)
            run = capture.wait()
        finally:
            capture.kill()
        sent = live.sent()
        # Both workers go on at once after the restart: a worker whose prefetch stayed used up
        # (Celery's prefetch reduction under the thread pool) left gifts waiting for minutes.
        wait_for(lambda: all_settled(sync) and all_settled(async_), timeout=60, what="items left unsettled")

    assert run.returncode == 0, run.output[-5000:]
    assert "RabbitMQ did not confirm" in run.output  # the capture did lose the broker mid-live
    assert stored_events(run) == sent, run.output[-3000:]
    items = QueueItem.objects.filter(live_event__session_id=run.session_id)
    statuses = Counter(items.values_list("event_type", "status"))
    print(f"sent {sent}; items by type and status: {dict(statuses)}")
    kept = items.filter(event_type__in=["GiftEvent", "FollowEvent", "SubscribeEvent"])
    gifts_and_follows = set(kept.values_list("pk", flat=True))
    assert gifts_and_follows and set(kept.values_list("status", flat=True)) == {"completed"}, statuses
    # Each gift and follow reached the service's end once (a finished item never runs twice).
    ends = Counter(r["item"] for r in records(key) if r["phase"] == "end" and r["item"] in gifts_and_follows)
    assert set(ends) == gifts_and_follows and set(ends.values()) == {1}
    assert set(items.values_list("status", flat=True)) <= {"completed", "discarded"}, statuses
    # Likes and chat are transient: what the restart dropped is discarded for that reason.
    reasons = Counter(items.filter(status="discarded").values_list("error", flat=True))
    print(f"discarded, by reason: {dict(reasons)}")
    assert all(r == "broker restarted" or r.startswith("dropped: more than max_queue_size") for r in reasons), reasons
    assert run.summary["priority_batches"] > 0, run.summary


def spilled_lines(directory) -> list[str]:
    files = list(directory.glob("session-*.jsonl")) if directory.exists() else []
    return files[0].read_text(encoding="utf-8").splitlines() if files else []


def test_a_capture_killed_while_postgresql_is_away_leaves_its_spill_file_to_the_next_one(vhost, seeded, tmp_path):
    spill_dir = tmp_path / "spill"
    env = {"CAPTURE_BACKLOG_MAX_EVENTS": "100", "CAPTURE_SPILL_DIR": str(spill_dir)}
    with simulated_live(seconds=30, likes=100, comments=20) as live:
        capture = CaptureProcess.start(vhost, live, env=env)
        try:
            wait_for(lambda: LiveEvent.objects.count() > 300, timeout=90, what="the capture never stored events")
            with postgres_stopped():
                wait_for(lambda: len(spilled_lines(spill_dir)) >= 300, timeout=30, what="nothing spilled")
                capture.proc.kill()  # SIGKILL: no shutdown, the file stays
                capture.proc.wait()
            killed_at = time.monotonic()
        finally:
            capture.kill()
    session = LiveSession.objects.get()
    stored_before = set(session.events.values_list("msg_id", flat=True))
    spilled = [json.loads(line)["msg_id"] for line in spilled_lines(spill_dir)]
    assert len(spilled) >= 300 and not stored_before & set(spilled)
    # Items the dead capture stored but never marked are republished by the next start once
    # they are 10 s old (younger ones may be a running capture's own): wait that long.
    time.sleep(max(0.0, 11 - (time.monotonic() - killed_at)))

    run = run_capture(vhost, [comment("next_live", "hola")], env=env)
    assert run.returncode == 0, run.output[-5000:]
    assert f"✅ Session #{session.pk}: {len(spilled)} events left on disk stored" in run.output, run.output[-3000:]
    stored_after = list(session.events.order_by("id").values_list("msg_id", flat=True))
    assert sorted(stored_after) == sorted(stored_before | set(spilled))
    assert stored_after[-len(spilled) :] == spilled  # stored in the order they were received
    assert list(spill_dir.iterdir()) == []
    items = QueueItem.objects.filter(live_event__session=session)
    assert not items.filter(dispatched_at__isnull=True).exists()
    assert run.events().filter(event_type="CommentEvent").count() == 1  # and the new live was captured meanwhile


def test_a_run_that_ends_before_postgresql_is_back_keeps_what_it_received_for_the_next_start(vhost, seeded, tmp_path):
    """In process: the pipeline itself, PostgreSQL stopped under it, then given up (as the run
    does after 120 s): every event it held goes to disk, in order, and the next start stores them."""
    import asyncio
    import datetime as dt

    from project.tiktok_events.capture.backlog import Backlog
    from project.tiktok_events.capture.leftovers import store_leftovers
    from project.tiktok_events.capture.normalize import CapturedEvent
    from project.tiktok_events.capture.output import CaptureOutput
    from project.tiktok_events.capture.pipeline import CapturePipeline
    from project.tiktok_events.capture.writer import BatchWriter
    from tests.support.queueing import make_session

    session = make_session()
    output = CaptureOutput(open("/dev/null", "w"))
    msg_ids = [7_500_000_000_000_000_000 + n for n in range(30)]

    def comment_event(msg_id: int) -> CapturedEvent:
        return CapturedEvent(
            "CommentEvent", msg_id, "42", "fan", "Fan", "Fan", {"comment": str(msg_id)}, dt.datetime.now(dt.UTC)
        )

    async def live_through_the_outage() -> int:
        writer = BatchWriter(separate_process=False)
        await writer.start()
        pipeline = CapturePipeline(
            output, writer, streak_timeout=1.0, backlog=Backlog(output, max_events=10, spill_dir=tmp_path)
        )
        pipeline.set_session(session.pk)
        for msg_id in msg_ids[:5]:  # stored before the outage
            pipeline.receive(comment_event(msg_id))
        flusher = asyncio.create_task(pipeline.run())
        while pipeline.stats.total_stored < 5:
            await asyncio.sleep(0.05)
        with postgres_stopped():
            for msg_id in msg_ids[5:]:
                pipeline.receive(comment_event(msg_id))
            await asyncio.sleep(2)
            await pipeline.close()
            flusher.cancel()  # the run gives up on PostgreSQL, as the runner does
            await pipeline.stop_tasks()
            kept = pipeline.keep_unstored_on_disk()
        await writer.close()
        return kept

    kept = asyncio.run(live_through_the_outage())
    # postgres_stopped() closed the event loop's connections (asgiref keeps them per task),
    # not this thread's, which died with the server.
    connection.close()
    assert kept == 25
    assert [json.loads(line)["msg_id"] for line in spilled_lines(tmp_path)] == msg_ids[5:]

    stored = asyncio.run(store_leftovers(output, tmp_path, streak_timeout=1.0))
    assert stored == 25
    assert list(session.events.order_by("id").values_list("msg_id", flat=True)) == msg_ids
    assert list(tmp_path.iterdir()) == []
    assert not QueueItem.objects.filter(live_event__session=session, dispatched_at__isnull=True).exists()
