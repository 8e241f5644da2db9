"""The per-item path stays one round trip per step, and complete: items are created with every
column, claimed with their event and service whole (no field left to load later, which would
cost a query per item), and finished in one statement."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from project.queue_system.dispatcher import EventDispatcher
from project.queue_system.models import QueueItem
from project.queue_system.processing import Status, _finish, claim
from tests.support.queueing import make_events, make_service, make_session

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dino(vhost):
    return make_service("dino")


def test_creating_items_routes_them_in_one_round_trip_with_whole_services(vhost, dino):
    events = make_events(make_session(), ["GiftEvent", "LikeEvent", "FollowEvent"])
    with CaptureQueriesContext(connection) as queries:
        items = EventDispatcher().create_items(events)
    assert len(queries) == 1
    assert len(items) == 3
    assert all(item.service.get_deferred_fields() == set() for item in items)
    stored = QueueItem.objects.get(pk=items[0].pk)
    assert (stored.status, stored.attempts, stored.error, stored.dispatched_at) == (Status.PENDING, 0, "", None)


def test_a_claim_is_one_round_trip_and_loads_the_item_its_event_and_its_service_whole(vhost, dino):
    gift = make_events(make_session(), ["GiftEvent"], gift={"name": "Rose"})[0]
    created = EventDispatcher().create_items([gift])[0]

    with CaptureQueriesContext(connection) as queries:
        item = claim(created.pk, redelivered=False)

    assert len(queries) == 1
    assert (item.status, item.attempts) == (Status.PROCESSING, 1)
    for instance in (item, item.live_event, item.service):
        assert instance.get_deferred_fields() == set(), type(instance).__name__
    fresh = QueueItem.objects.select_related("live_event", "service").get(pk=item.pk)
    for model_field in QueueItem._meta.concrete_fields:
        assert getattr(item, model_field.attname) == getattr(fresh, model_field.attname), model_field.name
    assert item.live_event.event_data == fresh.live_event.event_data
    assert item.service.time_budget_seconds == fresh.service.time_budget_seconds


def test_recording_an_outcome_is_one_statement(vhost, dino):
    created = EventDispatcher().create_items(make_events(make_session(), ["GiftEvent"]))[0]
    item = claim(created.pk, redelivered=False)

    with CaptureQueriesContext(connection) as queries:
        _finish(item, Status.COMPLETED, "", "[Dino] GiftEvent", {})

    assert len(queries) == 1
    assert QueueItem.objects.get(pk=item.pk).status == Status.COMPLETED
