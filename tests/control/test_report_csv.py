"""CSV exports of a session: streamed, one row per event / queue item, the same values as the database."""

from __future__ import annotations

import csv
import io
import json

import pytest

from project.queue_system.models import QueueItem
from project.tiktok_events.models import LiveEvent
from tests.control.test_report import simulated_session

pytestmark = pytest.mark.django_db


def read_csv(response) -> list[dict[str, str]]:
    assert response.streaming, "the export must stream, not build the file in memory"
    text = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.slow
def test_the_events_csv_has_every_event_of_the_session(admin_client_logged):
    session = simulated_session(3)
    other = simulated_session(4, name="another live")
    response = admin_client_logged.get(f"/control/sessions/{session.pk}/events.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert f'filename="session-{session.pk}-events.csv"' in response["Content-Disposition"]
    rows = read_csv(response)

    events = {e.pk: e for e in LiveEvent.objects.filter(session=session)}
    assert [int(r["id"]) for r in rows] == sorted(events)
    assert not LiveEvent.objects.filter(session=other, pk__in=[int(r["id"]) for r in rows]).exists()
    for row in rows:
        event = events[int(row["id"])]
        assert row["event_type"] == event.event_type
        assert row["user_unique_id"] == event.user_unique_id
        assert json.loads(row["event_data"]) == event.event_data
        if event.event_type == "GiftEvent":
            assert row["gift"] == event.event_data["gift"]["name"]
            assert int(row["diamonds"]) == event.event_data["diamonds_total"]
        if event.event_type == "CommentEvent":
            assert row["comment"] == event.event_data["comment"]
        if event.event_type == "LikeEvent":
            assert int(row["likes"]) == event.event_data["count"]


@pytest.mark.slow
def test_the_queue_items_csv_has_every_item_with_its_outcome(admin_client_logged):
    session = simulated_session(5)
    rows = read_csv(admin_client_logged.get(f"/control/sessions/{session.pk}/queue-items.csv"))
    items = {i.pk: i for i in QueueItem.objects.filter(live_event__session=session).select_related("service")}
    assert len(rows) == len(items) > 0
    assert {int(r["id"]) for r in rows} == set(items)
    for row in rows:
        item = items[int(row["id"])]
        assert (row["service"], row["status"], row["error"]) == (item.service.slug, item.status, item.error)
        assert int(row["live_event_id"]) == item.live_event_id
        assert (row["started_at"] == "") == (item.started_at is None)
    assert {r["status"] for r in rows} == {"completed", "failed", "discarded"}


def test_the_exports_require_staff(client):
    session = simulated_session(6)
    for name in ("events.csv", "queue-items.csv"):
        response = client.get(f"/control/sessions/{session.pk}/{name}")
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_a_viewers_formula_is_not_run_by_a_spreadsheet(admin_client_logged):
    session = simulated_session(8)
    hostile = LiveEvent.objects.create(
        session=session,
        event_type="CommentEvent",
        received_at=session.started_at,
        user_unique_id="@evil",
        user_nickname="+cmd|' /C calc'!A0",
        event_data={"comment": '=HYPERLINK("http://example.com/steal","click")'},
    )
    rows = {int(r["id"]): r for r in read_csv(admin_client_logged.get(f"/control/sessions/{session.pk}/events.csv"))}
    row = rows[hostile.pk]
    assert row["comment"] == "'" + hostile.event_data["comment"]
    assert row["user_nickname"] == "'" + hostile.user_nickname
    assert row["user_unique_id"] == "'@evil"
    assert json.loads(row["event_data"]) == hostile.event_data  # the JSON cell starts with '{': kept as it is
    ordinary = next(r for r in rows.values() if r["event_type"] == "CommentEvent" and r["id"] != str(hostile.pk))
    assert not ordinary["comment"].startswith("'")
