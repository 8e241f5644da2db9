"""A custom service written and registered as the seeds say works end to end.

The class is the seeds' "Crear Servicios Personalizados" example
(tests/support/custom_service_example.py); it is registered through the admin add form
with the seeds' event table (Paso 2 and 3), its worker is the production
launcher (Paso 4), and real events go through the real broker.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from project.queue_system.dispatcher import EventDispatcher
from project.queue_system.models import QueueItem, Service
from project.tiktok_events.models import LiveEvent
from tests.support.queueing import all_settled, make_session
from tests.support.waiting import wait_for
from tests.support.worker_processes import running_workers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Paso 3: the seeds' table (Event Type, Enabled, Priority, Discardable).
SEEDS_TABLE = [("GiftEvent", 10, False), ("CommentEvent", 5, True), ("LikeEvent", 2, True)]


def add_form() -> dict[str, str]:
    """Paso 2 and 3 as the admin's add page posts them."""
    data = {
        "name": "Mi Servicio",
        "slug": "mi_servicio",
        "service_class": "tests.support.custom_service_example.MiServicio",
        "is_active": "on",
        "mode": "SYNC",
        "concurrency": "1",
        "max_queue_size": "100",
        "time_budget_seconds": "300",  # the admin form shows the default
        "event_configs-TOTAL_FORMS": str(len(SEEDS_TABLE)),
        "event_configs-INITIAL_FORMS": "0",
        "event_configs-MIN_NUM_FORMS": "0",
        "event_configs-MAX_NUM_FORMS": "1000",
    }
    for n, (event_type, priority, discardable) in enumerate(SEEDS_TABLE):
        data[f"event_configs-{n}-event_type"] = event_type
        data[f"event_configs-{n}-enabled"] = "on"
        data[f"event_configs-{n}-priority"] = str(priority)
        if discardable:
            data[f"event_configs-{n}-discardable"] = "on"
    return data


def event(session, event_type: str, **event_data) -> LiveEvent:
    return LiveEvent.objects.create(
        session=session,
        event_type=event_type,
        received_at=timezone.now(),
        user_unique_id="lucia_99",
        user_nickname="Lucía",
        event_data=event_data,
    )


def test_it_runs_the_seeds_custom_service_registered_through_the_admin(vhost, admin_client_logged):
    response = admin_client_logged.post("/admin/queue_system/service/add/", add_form())
    assert response.status_code == 302, response.content.decode()[:3000]
    service = Service.objects.get(slug="mi_servicio")
    assert sorted(service.event_configs.values_list("event_type", "priority", "discardable")) == sorted(SEEDS_TABLE)

    with running_workers(vhost, ["mi_servicio"]) as workers:
        session = make_session()
        gift = event(session, "GiftEvent", gift={"name": "Rosa"})
        comment = event(session, "CommentEvent", comment="¡Hola!")
        like = event(session, "LikeEvent", count=15)  # a type the class does not handle
        EventDispatcher().dispatch_many([gift, comment, like])
        wait_for(lambda: all_settled(service), timeout=120, what="the events were not processed")
        workers.stop("mi_servicio")  # a clean (warm) shutdown, so on_stop runs
        log = workers.log("mi_servicio")

    item = {i.live_event_id: i for i in QueueItem.objects.filter(service=service)}
    assert (item[gift.pk].status, item[gift.pk].error) == ("completed", "")
    assert (item[comment.pk].status, item[comment.pk].error) == ("completed", "")
    assert (item[like.pk].status, item[like.pk].error) == ("failed", "process_event returned False")
    # What the class printed reached the worker's output.
    assert log.count("🚀 Mi Servicio iniciado") == 1, log[-4000:]
    assert "🎁 Lucía envió Rosa" in log
    assert "💬 Lucía: ¡Hola!" in log
    assert log.count("👋 Mi Servicio detenido") == 1, log[-4000:]
