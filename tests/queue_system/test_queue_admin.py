"""The admin's queue controls on the real broker: a max_queue_size change bounds the live
queue, live depths, purge, retry of failed items, and the explicit
deletion of a service's queues."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from project.queue_system import queues, topology
from project.queue_system.broker import Management
from project.queue_system.dispatcher import EventDispatcher
from project.queue_system.models import QueueItem, Service
from tests.support.broker import depth
from tests.support.queueing import all_settled, make_events, make_service, make_session, statuses
from tests.support.waiting import wait_for
from tests.support.worker_processes import running_workers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

LIKES = "svc.{slug}.discardable.LikeEvent"


def change_form(service: Service, **overrides) -> dict[str, str]:
    """The change form of a service as the admin page posts it, with its inline event configs."""
    data = {
        "name": service.name,
        "slug": service.slug,
        "service_class": service.service_class,
        "mode": service.mode,
        "concurrency": str(service.concurrency),
        "max_queue_size": str(service.max_queue_size),
        "time_budget_seconds": str(service.time_budget_seconds),
        **({"is_active": "on"} if service.is_active else {}),
    }
    configs = list(service.event_configs.order_by("pk"))
    data.update(
        {
            "event_configs-TOTAL_FORMS": str(len(configs)),
            "event_configs-INITIAL_FORMS": str(len(configs)),
            "event_configs-MIN_NUM_FORMS": "0",
            "event_configs-MAX_NUM_FORMS": "1000",
        }
    )
    for n, config in enumerate(configs):
        prefix = f"event_configs-{n}-"
        data.update(
            {
                f"{prefix}id": str(config.pk),
                f"{prefix}service": str(service.pk),
                f"{prefix}event_type": config.event_type,
                f"{prefix}priority": str(config.priority),
                **({f"{prefix}enabled": "on"} if config.enabled else {}),
                **({f"{prefix}discardable": "on"} if config.discardable else {}),
            }
        )
    data.update(overrides)
    return data


def flood_likes(service: Service, count: int, **event_data) -> list:
    events = make_events(make_session(), ["LikeEvent"] * count, **event_data)
    result = EventDispatcher().dispatch_many(events)
    assert result.confirmed == count, result
    return events


def test_it_applies_a_new_max_queue_size_to_the_live_queue(vhost, admin_client_logged):
    service = make_service("shrink", max_queue_size=50)
    flood_likes(service, 30)  # no worker: all 30 wait in the discardable queue
    assert depth(vhost, LIKES.format(slug="shrink")) == 30

    response = admin_client_logged.post(
        f"/admin/queue_system/service/{service.pk}/change/", change_form(service, max_queue_size="10"), follow=True
    )
    assert response.status_code == 200
    assert "discardable queues hold at most 10 events each" in response.content.decode()

    policy = Management().get_policy(queues.discardable_policy_name("shrink"))
    assert policy["definition"]["max-length"] == 10
    # The broker applies the policy to the existing queue at once: the 20 oldest are dropped
    # and dead-lettered for the discard accounting.
    wait_for(lambda: depth(vhost, LIKES.format(slug="shrink")) == 10, timeout=10, what="the queue was not cut to 10")
    assert depth(vhost, queues.DISCARDED_QUEUE) == 20


def test_it_shows_live_broker_depths_per_queue(vhost, admin_client_logged):
    service = make_service("depths", max_queue_size=50)
    flood_likes(service, 7)
    topology.declare_all(["depths"])

    def page_shows_depth() -> bool:
        page = admin_client_logged.get(f"/admin/queue_system/service/{service.pk}/change/").content.decode()
        return "<code>svc.depths.discardable.LikeEvent</code></td><td>7/50</td>" in page

    # The management API refreshes its counters every few seconds.
    wait_for(page_shows_depth, timeout=20, interval=1, what="the change page never showed 7/50")
    listing = admin_client_logged.get("/admin/queue_system/service/").content.decode()
    assert "LikeEvent: 7/50" in listing


def test_it_purges_a_services_discardable_queues_and_marks_the_items(vhost, admin_client_logged):
    service = make_service("purge", max_queue_size=50)
    flood_likes(service, 12)
    response = admin_client_logged.post(
        "/admin/queue_system/service/",
        {"action": "purge_discardable_queues", "_selected_action": [str(service.pk)]},
        follow=True,
    )
    assert "12 waiting message(s) purged, 12 queue item(s) marked discarded" in response.content.decode()
    assert depth(vhost, LIKES.format(slug="purge")) == 0
    assert statuses(service)["discarded"] == 12 and statuses(service)["pending"] == 0


def test_it_retries_failed_items_through_the_broker(vhost, admin_client_logged):
    service = make_service("retry")
    # Items an earlier run gave up on (their messages were consumed then).
    for event in make_events(make_session(), ["GiftEvent"] * 3):
        QueueItem.objects.create(
            live_event=event,
            service=service,
            event_type="GiftEvent",
            priority=10,
            status="failed",
            attempts=5,
            error="gave up after 5 attempts",
        )

    response = admin_client_logged.post(
        "/admin/queue_system/queueitem/",
        {
            "action": "retry_failed",
            "_selected_action": list(map(str, service.queue_items.values_list("pk", flat=True))),
        },
        follow=True,
    )
    assert "3 failed item(s) queued again" in response.content.decode()
    assert depth(vhost, queues.main_queue_name("retry")) == 3
    with running_workers(vhost, ["retry"]):
        wait_for(lambda: all_settled(service), timeout=120, what="the retried items did not run")
    items = list(service.queue_items.all())
    assert {(i.status, i.attempts, i.error) for i in items} == {("completed", 1, "")}


def test_it_deletes_a_services_queues_only_when_told_to(vhost):
    make_service("gone")
    topology.declare_all(["gone"])
    with pytest.raises(CommandError, match="run again with --yes"):
        call_command("delete_service_queues", "gone")
    assert depth(vhost, "svc.gone") == 0

    call_command("delete_service_queues", "gone", "--yes", stdout=open("/dev/null", "w"))
    assert depth(vhost, "svc.gone") is None
    assert depth(vhost, LIKES.format(slug="gone")) is None
    assert Management().get_policy(queues.discardable_policy_name("gone")) is None
