"""The writer's store step on the real PostgreSQL: one COPY per batch, and a batch whose messages
are (partly) stored already — retried after the writer died — keeps the rows that are there."""

from __future__ import annotations

import pytest
from django.utils import timezone

from project.tiktok_events.capture import handoff
from project.tiktok_events.capture.batches import WriteBatch
from project.tiktok_events.models import LiveEvent, LiveSession

pytestmark = pytest.mark.django_db(transaction=True)


def like(msg_id: int, total: int = 1) -> dict:
    return {
        "event_type": "LikeEvent",
        "msg_id": msg_id,
        "user_id": msg_id,
        "user_unique_id": f"fan{msg_id}",
        "user_nickname": "Fan 🌹",
        "user_nickname_raw": "𝓕𝓪𝓷 🌹",
        "event_data": {"count": 1, "total": total},
        "streak_status": "",
        "repeat_count": 0,
        "received_at": timezone.now(),
    }


@pytest.fixture(autouse=True)
def stage():
    yield
    handoff.close()  # the publishing pipeline (threads, no broker connection: no service subscribes here)


@pytest.fixture
def session():
    return LiveSession.objects.create(name="store", streamer="store", started_at=timezone.now(), status="live")


def batch_of(session, msg_ids, number=1) -> WriteBatch:
    batch = WriteBatch(session_id=session.pk, number=number, inserts=[like(m) for m in msg_ids])
    batch.dispatch_inserts = list(range(len(msg_ids)))
    return batch


def test_a_batch_is_stored_with_its_ids(session):
    result = handoff.write_and_dispatch(batch_of(session, [11, 12, 13]))
    rows = dict(LiveEvent.objects.filter(session=session).values_list("msg_id", "pk"))
    assert result.ids == [rows[11], rows[12], rows[13]]
    assert len(set(result.ids)) == 3
    assert LiveEvent.objects.get(pk=rows[12]).user_nickname_raw == "𝓕𝓪𝓷 🌹"


def test_a_retried_batch_keeps_the_rows_already_stored(session):
    first = handoff.write_and_dispatch(batch_of(session, [21, 22, 23]))
    # The same messages again with two new ones, and a streak update of a stored row.
    retried = batch_of(session, [20, 21, 22, 23, 24], number=2)
    retried.updates = [(first.ids[0], {"repeat_count": 7, "streak_status": "ended"})]
    result = handoff.write_and_dispatch(retried)

    rows = dict(LiveEvent.objects.filter(session=session).values_list("msg_id", "pk"))
    assert sorted(rows) == [20, 21, 22, 23, 24]  # each message once
    assert result.ids[1:4] == first.ids  # the stored rows' keys, for the updates to come
    assert result.ids[0] == rows[20] and result.ids[4] == rows[24]
    assert LiveEvent.objects.get(pk=first.ids[0]).repeat_count == 7  # the update was not lost with the COPY


def test_ids_come_from_the_sequence_in_blocks_and_never_repeat(session):
    seen: list[int] = []
    for number in range(3):
        start = 1000 + number * 300
        seen += handoff.write_and_dispatch(batch_of(session, range(start, start + 300), number=number)).ids
    assert len(seen) == len(set(seen)) == 900
    assert seen == sorted(seen)
    # Another writer (another process, or a plain insert) takes its ids from the same sequence.
    other = LiveEvent.objects.create(session=session, event_type="LikeEvent", received_at=timezone.now())
    assert other.pk not in seen
