"""The capture under server faults: PostgreSQL, RabbitMQ restarted in the middle of a
simulated live. Each test compares what the simulator sent with the LiveEvent rows
stored and checks every QueueItem's fate."""

from __future__ import annotations

import time

import pytest

from project.queue_system.models import QueueItem
from project.tiktok_events.models import LiveEvent, LiveSession
from tests.faults.capture_live import CaptureProcess, simulated_live
from tests.faults.servers import postgres_stopped
from tests.queueing import wait_for

pytestmark = [pytest.mark.django_db(transaction=True)]

OUTAGE_SECONDS = 8.0


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
            wait_for(lambda: LiveEvent.objects.count() > 300, timeout=90, message="the capture never stored events")
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
    assert run.summary["backlog_max_events"] <= 100 + 5_000, run.summary  # the bound, and one batch in flight
    assert "the next ones are kept on disk" in run.output
    assert f"✅ The {run.summary['events_spilled']} events kept on disk are stored" in run.output
    assert list(spill_dir.iterdir()) == []  # removed once stored
    # In the order they were sent: the simulator numbers its messages as it sends them.
    msg_ids = list(LiveEvent.objects.filter(session_id=run.session_id).order_by("id").values_list("msg_id", flat=True))
    assert msg_ids == sorted(msg_ids)
    assert_every_item_dispatched(run)
    print(f"sent {sent}, stored {stored_events(run)}, spilled {run.summary['events_spilled']}")
