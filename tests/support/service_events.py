"""LiveEvent rows for service tests, with named viewers."""

from __future__ import annotations

import itertools

from django.utils import timezone

from project.tiktok_events.models import LiveEvent, LiveSession

_msg_ids = itertools.count(1)


def live_session() -> LiveSession:
    return LiveSession.objects.create(name="test live", streamer="streamer", started_at=timezone.now())


def live_event(session: LiveSession, event_type: str, nickname: str = "Lucia", **fields) -> LiveEvent:
    fields.setdefault("event_data", {})
    return LiveEvent.objects.create(
        session=session,
        event_type=event_type,
        msg_id=next(_msg_ids),
        user_unique_id=nickname.lower().replace(" ", "_"),
        user_nickname=nickname,
        user_nickname_raw=nickname,
        received_at=timezone.now(),
        **fields,
    )


def gift(session: LiveSession, name: str, nickname: str = "Lucia", count: int = 1, **data) -> LiveEvent:
    return live_event(session, "GiftEvent", nickname, event_data={"gift": {"name": name, **data}}, repeat_count=count)
