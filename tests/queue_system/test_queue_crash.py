"""A worker killed mid-item loses nothing and runs nothing twice, on the real broker."""

from __future__ import annotations

import pytest

from project.queue_system.dispatcher import EventDispatcher
from project.queue_system.models import QueueItem
from tests.support.queueing import all_settled, make_events, make_service, make_session
from tests.support.recording_service import records
from tests.support.waiting import wait_for
from tests.support.worker_processes import running_workers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


# A gift goes through the process_event task; a comment (discardable) through a drain ticket.
@pytest.mark.parametrize("event_type", ["GiftEvent", "CommentEvent"])
def test_it_redelivers_the_item_of_a_killed_worker_and_completes_it_once(vhost, event_type):
    service = make_service("crash")
    key = f"rec:{vhost.name}"

    with running_workers(vhost, ["crash"], extra_env={"TTE_TEST_RECORD_KEY": key}) as workers:
        [event] = make_events(make_session(), [event_type], hang_first=120)
        EventDispatcher().dispatch_many([event])
        item = QueueItem.objects.get(live_event=event)

        def phases() -> list[tuple[str, int]]:
            return [(r["phase"], r["attempt"]) for r in records(key) if r.get("item") == item.pk]

        wait_for(lambda: ("start", 1) in phases(), timeout=120, what="the item never started")
        workers.kill("crash")  # SIGKILL, worker and prefork child, in the middle of the handler
        item.refresh_from_db()
        assert item.status == "processing" and item.attempts == 1

        workers.start("crash")
        wait_for(lambda: all_settled(service), timeout=120, what="the item was not redelivered")

    item.refresh_from_db()
    assert item.status == "completed", item.error
    assert item.attempts == 2
    assert phases() == [("start", 1), ("start", 2), ("end", 2)]
