"""Builders shared by the queue tests: services with their event tables, stored events."""

from __future__ import annotations

import time

from django.utils import timezone

from project.queue_system.models import QueueItem, Service, ServiceEventConfig
from project.tiktok_events.models import LiveEvent, LiveSession

RECORDING = "tests.support.recording_service.RecordingService"

# The seeds' DinoChrome table.
SEED_TABLE = [
    ("GiftEvent", 10, False),
    ("SubscribeEvent", 9, False),
    ("FollowEvent", 8, False),
    ("CommentEvent", 6, True),
    ("LikeEvent", 3, True),
]


def make_service(
    slug: str,
    *,
    mode: str = "SYNC",
    concurrency: int = 1,
    max_queue_size: int = 100,
    table: list[tuple[str, int, bool]] | None = None,
    service_class: str = RECORDING,
    is_active: bool = True,
) -> Service:
    service = Service.objects.create(
        name=slug.replace("_", " ").title(),
        slug=slug,
        service_class=service_class,
        mode=mode,
        concurrency=concurrency,
        max_queue_size=max_queue_size,
        is_active=is_active,
    )
    for event_type, priority, discardable in table or SEED_TABLE:
        ServiceEventConfig.objects.create(
            service=service, event_type=event_type, priority=priority, discardable=discardable
        )
    return service


def make_session() -> LiveSession:
    return LiveSession.objects.create(streamer="streamer", started_at=timezone.now(), status=LiveSession.Status.LIVE)


def make_events(session: LiveSession, types: list[str], **event_data) -> list[LiveEvent]:
    now = timezone.now()
    return LiveEvent.objects.bulk_create(
        [
            LiveEvent(session=session, event_type=t, received_at=now, user_unique_id=f"u{n}", event_data=event_data)
            for n, t in enumerate(types)
        ]
    )


def statuses(service: Service) -> dict[str, int]:
    counts = {s: 0 for s in QueueItem.Status.values}
    for status in QueueItem.objects.filter(service=service).values_list("status", flat=True):
        counts[status] += 1
    return counts


def all_settled(service: Service) -> bool:
    return not QueueItem.objects.filter(
        service=service, status__in=[QueueItem.Status.PENDING, QueueItem.Status.PROCESSING]
    ).exists()


def dispatch_in_batches(events: list[LiveEvent], size: int = 10, pause: float = 0.0) -> None:
    """Dispatch as the capture does under a flood: small batches, one after the other."""
    from project.queue_system.dispatcher import EventDispatcher

    dispatcher = EventDispatcher()
    try:
        for start in range(0, len(events), size):
            dispatcher.dispatch_many(events[start : start + size])
            if pause:
                time.sleep(pause)
    finally:
        dispatcher.close()
