"""Test events: real LiveEvents in a test LiveSession, dispatched as the capture's are.

A streamer checks their setup before going live: each event is stored with the
fields the capture's ``normalize`` gives a real one (a gift's ``event_data["gift"]``
and diamonds, a comment's cleaned text, a like's count), then handed to the same
``EventDispatcher.dispatch_many``, so every active service subscribed to the type
gets a QueueItem and a broker message exactly as during a live.

Test sessions (``LiveSession.is_test``) are left out of the report list and of any
"current live" selection: they are stored with status ``ended`` (``ended_at`` moves
with each test event), so nothing that looks for the ``live`` session finds them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from project.queue_system.dispatcher import DispatchResult, EventDispatcher
from project.queue_system.models import QueueItem
from project.tiktok_events.capture.text_cleaning import clean_nickname, clean_text, db_safe
from project.tiktok_events.models import LiveEvent, LiveSession

TEST_STREAMER = "test"
MAX_FLOOD = 5_000  # events of one flood: enough to see shedding, small enough for one request
DISPATCH_BATCH = 500  # events per dispatch_many call, as the capture's batches


@dataclass(frozen=True)
class Gift:
    id: int
    name: str
    diamonds: int
    streakable: bool


# Ids and prices as TikTok lists them (the simulator's catalogue).
ROSE = Gift(5655, "Rose", 1, True)
BIG_GIFT = Gift(6369, "Lion", 29999, False)

KINDS = {
    "rose": "Rose gift",
    "big_gift": "Big gift (Lion, 29,999 diamonds)",
    "follow": "Follow",
    "subscribe": "Subscribe",
    "comment": "Comment",
    "likes": "100 likes",
    "flood": "Flood of likes and comments",
}


@dataclass
class Sent:
    """What one test action did."""

    session: LiveSession
    events: list[LiveEvent] = field(default_factory=list)
    dispatch: DispatchResult = field(default_factory=DispatchResult)

    def summary(self) -> str:
        d = self.dispatch
        text = f"{len(self.events)} test event(s) in session #{self.session.pk}: {d.created} queue item(s)"
        if d.created:
            text += f", {d.confirmed} confirmed by RabbitMQ"
        if d.pending and not d.deferred:
            text += f", {d.pending} left pending (broker: {d.error or 'no answer'}; published again later)"
        return text


def current_test_session(*, new: bool = False) -> LiveSession:
    """The newest test session, or a new one (``new``, or none yet)."""
    if not new:
        session = LiveSession.objects.filter(is_test=True).order_by("-started_at", "-pk").first()
        if session is not None:
            return session
    now = timezone.now()
    return LiveSession.objects.create(
        name=f"Test events {timezone.localtime(now):%Y-%m-%d %H:%M}",
        streamer=TEST_STREAMER,
        started_at=now,
        ended_at=now,
        status=LiveSession.Status.ENDED,
        end_reason="test session",
        is_test=True,
    )


def _user(n: int | str, nickname: str = "") -> dict[str, str]:
    unique_id = f"test_viewer_{n}"
    raw = nickname or f"Test viewer {n}"
    return {
        "user_id": f"90000{n}" if str(n).isdigit() else "",
        "user_unique_id": unique_id,
        "user_nickname": clean_nickname(raw, unique_id)[:200],
        "user_nickname_raw": db_safe(raw),
    }


def _event(session: LiveSession, event_type: str, user: dict[str, str], data: dict, **fields) -> LiveEvent:
    return LiveEvent(
        session=session,
        event_type=event_type,
        received_at=timezone.now(),
        event_data={**data, "test": True},
        **user,
        **fields,
    )


def gift_event(session: LiveSession, gift: Gift, user: dict[str, str], repeat: int = 1) -> LiveEvent:
    # A finished streak, as the capture dispatches a combo gift; other gifts are single.
    data = {
        "gift": {"id": gift.id, "name": gift.name, "diamond_count": gift.diamonds, "streakable": gift.streakable},
        "repeat_count": repeat,
        "repeat_end": True,
        "group_id": "0",
        "diamonds_total": gift.diamonds * repeat,
        "to_user": {"id": "", "unique_id": "", "nickname": "", "is_host": True},
    }
    streak = LiveEvent.Streak.ENDED if gift.streakable else LiveEvent.Streak.NONE
    return _event(session, "GiftEvent", user, data, streak_status=streak, repeat_count=repeat)


def comment_event(session: LiveSession, text: str, user: dict[str, str]) -> LiveEvent:
    return _event(session, "CommentEvent", user, {"comment": clean_text(text), "comment_raw": db_safe(text)})


def like_event(session: LiveSession, count: int, user: dict[str, str], total: int) -> LiveEvent:
    data = {"count": count, "room_total": total, "user_total": count, "session_total": total}
    return _event(session, "LikeEvent", user, data)


def build(session: LiveSession, kind: str, *, nickname: str = "", text: str = "", count: int = 0) -> list[LiveEvent]:
    """The unsaved LiveEvents of one test action."""
    user = _user(1, nickname)
    if kind == "rose":
        return [gift_event(session, ROSE, user, repeat=max(1, count or 1))]
    if kind == "big_gift":
        return [gift_event(session, BIG_GIFT, user)]
    if kind == "follow":
        return [_event(session, "FollowEvent", user, {"follow_count": 1})]
    if kind == "subscribe":
        return [_event(session, "SubscribeEvent", user, {"tiktok_type": "SubNotifyEvent", "sub_month": 1})]
    if kind == "comment":
        return [comment_event(session, text or "Hello from a test event!", user)]
    if kind == "likes":
        return [like_event(session, 100, user, 100)]
    if kind == "flood":
        n = max(1, min(count or 100, MAX_FLOOD))
        events: list[LiveEvent] = []
        # Likes and comments alternate, from many viewers, as in a busy live.
        for i, is_like in zip(range(n), itertools.cycle((True, False)), strict=False):
            viewer = _user(i % 50 + 1)
            if is_like:
                events.append(like_event(session, 15, viewer, 15 * (i // 2 + 1)))
            else:
                events.append(comment_event(session, f"{text or 'Test comment'} #{i // 2 + 1}", viewer))
        return events
    raise ValueError(f"unknown test event {kind!r}; one of {', '.join(KINDS)}")


def send(kind: str, *, nickname: str = "", text: str = "", count: int = 0, new_session: bool = False) -> Sent:
    """Store the test events and dispatch them through the capture's dispatcher."""
    with transaction.atomic():
        session = current_test_session(new=new_session)
        events = build(session, kind, nickname=nickname, text=text, count=count)
        LiveEvent.objects.bulk_create(events, batch_size=1000)
        LiveSession.objects.filter(pk=session.pk).update(ended_at=timezone.now())
    sent = Sent(session=session, events=events)
    # Outside the transaction: the items are published as soon as they are created,
    # as the capture does once its batch is committed.
    dispatcher = EventDispatcher()
    try:
        for start in range(0, len(events), DISPATCH_BATCH):
            sent.dispatch = sent.dispatch + dispatcher.dispatch_many(events[start : start + DISPATCH_BATCH])
    finally:
        dispatcher.close()
    return sent


def delete_session(session_id: int) -> int:
    """Delete a test session with its events and their queue items; how many events went.

    Refuses a real session: only test sessions may go in one click.
    """
    with transaction.atomic():
        session = LiveSession.objects.select_for_update().get(pk=session_id)
        if not session.is_test:
            raise PermissionError("only a test session can be deleted here")
        QueueItem.objects.filter(live_event__session_id=session_id).delete()
        _, deleted = LiveEvent.objects.filter(session_id=session_id).delete()
        session.delete()
    return deleted.get(LiveEvent._meta.label, 0)
