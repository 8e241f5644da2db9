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


def test_it_survives_a_postgresql_restart_in_the_middle_of_a_live(vhost, seeded):
    with simulated_live(seconds=30, likes=100, comments=20) as live:
        capture = CaptureProcess.start(vhost, live)
        try:
            wait_for(lambda: LiveEvent.objects.count() > 300, timeout=90, message="the capture never stored events")
            with postgres_stopped():
                time.sleep(OUTAGE_SECONDS)
            run = capture.wait()
        finally:
            capture.kill()
        sent = live.sent()
    assert run.returncode == 0, run.output[-5000:]
    assert run.summary, "no summary written: " + run.output[-3000:]
    session = LiveSession.objects.get(pk=run.session_id)
    assert session.status == LiveSession.Status.ENDED and session.ended_at is not None
    assert stored_events(run) == sent == run.summary["events_stored"], run.output[-3000:]
    assert_every_item_dispatched(run)
    assert "🏁 Session #" in run.output
