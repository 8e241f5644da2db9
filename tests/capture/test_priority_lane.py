"""The capture's priority lane on the real PostgreSQL and RabbitMQ: what a service keeps (a gift)
is stored, published and confirmed ahead of the discardable events that arrived with it."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from project.queue_system.models import QueueItem
from project.tiktok_events.capture.normalize import CapturedEvent
from project.tiktok_events.capture.output import CaptureOutput
from project.tiktok_events.capture.pipeline import CapturePipeline
from project.tiktok_events.capture.writer import PRIORITY, BatchWriter
from tests.support.queueing import make_service, make_session

pytestmark = pytest.mark.django_db(transaction=True)

FRAME = 2_000
GIFT_AT = 1_000


def event(event_type: str, n: int, **data) -> CapturedEvent:
    user = str(100 + n % 7)
    return CapturedEvent(
        event_type, 9_100_000 + n, user, f"fan{user}", "Fan 🌹", "Fan 🌹", data, dt.datetime.now(dt.UTC)
    )


def frame() -> list[CapturedEvent]:
    """2,000 events as one TikTok frame brings them: likes and comments, a gift in the middle."""
    events = []
    for n in range(FRAME):
        if n == GIFT_AT:
            events.append(event("GiftEvent", n, gift={"id": 5655, "name": "Rose"}))
        elif n % 10 == 0:
            events.append(event("CommentEvent", n, comment=f"hola {n}"))
        else:
            events.append(event("LikeEvent", n, count=1))
    return events


async def capture_one_frame(session_id: int, *, lane: bool) -> CapturePipeline:
    output = CaptureOutput(open("/dev/null", "w"))
    main = BatchWriter(separate_process=False)
    priority = BatchWriter(separate_process=False, role=PRIORITY) if lane else None
    writers = [w for w in (main, priority) if w is not None]
    await asyncio.gather(*(w.start() for w in writers))
    pipeline = CapturePipeline(output, main, streak_timeout=1.0, priority_writer=priority)
    if priority is not None:
        pipeline.priority_types = await priority.priority_types()
    pipeline.set_session(session_id)
    flusher = asyncio.create_task(pipeline.run())
    # TikTokLive emits a frame's events back to back, without giving the loop a turn.
    for captured in frame():
        pipeline.receive(captured)
    await pipeline.close()
    await asyncio.wait_for(flusher, timeout=120)
    for writer in writers:
        await writer.close()
    return pipeline


def confirmed_at(session, event_type: str) -> list[dt.datetime]:
    items = QueueItem.objects.filter(live_event__session=session, event_type=event_type)
    return list(items.values_list("dispatched_at", flat=True))


def test_a_gift_in_the_middle_of_a_2000_event_frame_is_confirmed_before_the_frames_likes(vhost):
    make_service("dino", max_queue_size=FRAME)
    session = make_session()

    pipeline = asyncio.run(capture_one_frame(session.pk, lane=True))

    assert pipeline.priority_types >= {"GiftEvent", "FollowEvent", "SubscribeEvent"}
    assert "LikeEvent" not in pipeline.priority_types
    assert pipeline.stats.total_stored == FRAME
    assert pipeline.stats.priority_batches == 1  # the gift, alone
    [gift] = confirmed_at(session, "GiftEvent")
    others = confirmed_at(session, "LikeEvent") + confirmed_at(session, "CommentEvent")
    assert len(others) == FRAME - 1 and None not in others and gift is not None
    assert gift < min(others)
    # Each lane keeps the order of arrival.
    rows = list(session.events.exclude(event_type="GiftEvent").order_by("id").values_list("msg_id", flat=True))
    assert rows == sorted(rows)


def test_without_the_lane_the_gift_waits_for_its_batch_of_likes(vhost):
    """The same frame with CAPTURE_PRIORITY_LANE off: the comparison the lane is measured against."""
    make_service("dino", max_queue_size=FRAME)
    session = make_session()

    pipeline = asyncio.run(capture_one_frame(session.pk, lane=False))

    assert pipeline.stats.total_stored == FRAME
    assert pipeline.stats.priority_batches == 0
    [gift] = confirmed_at(session, "GiftEvent")
    assert gift >= min(confirmed_at(session, "LikeEvent"))
    rows = list(session.events.order_by("id").values_list("msg_id", flat=True))
    assert rows == sorted(rows)
