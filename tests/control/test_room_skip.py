"""Skip from the control room with a real worker: the request reaches the process that holds the
service object (a SYNC worker's prefork child, an ASYNC worker's main process) over Redis, and
the service's ``cancel_current`` ends the running item early."""

from __future__ import annotations

import time
import uuid

import pytest

from project.control import room_snapshot
from project.queue_system import control
from project.queue_system.models import QueueItem
from tests.support.queueing import dispatch_in_batches, make_events, make_service, make_session
from tests.support.recording_service import records
from tests.support.waiting import wait_for
from tests.support.worker_processes import running_workers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SKIPPABLE = "tests.control.room_services.SkippableService"
Status = QueueItem.Status


@pytest.mark.parametrize("mode", ["SYNC", "ASYNC"])
def test_skip_ends_the_running_item(vhost, admin_client_logged, mode):
    key = f"tte-test-skip-{uuid.uuid4().hex[:8]}"
    service = make_service("skipper", mode=mode, concurrency=2, service_class=SKIPPABLE)
    session = make_session()
    with running_workers(vhost, ["skipper"], extra_env={"TTE_TEST_RECORD_KEY": key}):
        page = admin_client_logged.get("/control/").content.decode()
        assert "Skip current" in page
        dispatch_in_batches(make_events(session, ["GiftEvent"], hold=60))
        item = wait_for(
            lambda: QueueItem.objects.filter(service=service, status=Status.PROCESSING).first(),
            timeout=30,
            what="the gift to be running",
        )
        wait_for(lambda: any(r["phase"] == "start" for r in records(key)), timeout=10, what="the handler to start")
        room_snapshot.clear_caches()
        card = admin_client_logged.get("/control/live/snapshot.json").json()["services"][0]
        assert card["can_skip"] and card["busy"] == 1 and card["running"][0]["id"] == item.pk

        # The process holding the service object listens (its listener thread subscribes as it starts).
        client = control.redis_client()
        channel = control.skip_channel("skipper")
        wait_for(lambda: client.pubsub_numsub(channel)[0][1] >= 1, timeout=10, what="the skip listener")
        client.close()
        asked = time.monotonic()
        response = admin_client_logged.post("/control/services/skipper/skip/", follow=True)
        html = response.content.decode()
        assert "asked to skip the item it is running" in html, html.split("control-messages")[1][:300]
        wait_for(lambda: QueueItem.objects.get(pk=item.pk).status == Status.COMPLETED, timeout=15, what="the skip")
        assert time.monotonic() - asked < 15  # far from its 60 s hold
        assert [r["item"] for r in records(key) if r["phase"] == "skipped"] == [item.pk]


def test_a_service_without_cancel_current_cannot_skip(admin_client_logged, vhost):
    make_service("plain")
    response = admin_client_logged.post("/control/services/plain/skip/", follow=True)
    assert "cannot skip what it is running" in response.content.decode()
