"""The "Next up" overlay (/overlays/queue/): its token, its error pages, the snapshot it reads and
the server-sent events it sends, on the real PostgreSQL with items set as a worker sets them."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.utils import timezone

from project.app_config.config import set_config
from project.queue_system.models import QueueItem, Service
from project.services.overlays.queue_reader import POLL_SECONDS, read_snapshot, reader_for
from project.tiktok_events.capture.text_cleaning import clean_nickname
from project.tiktok_events.models import LiveEvent
from tests.support.queueing import make_events, make_service, make_session
from tests.support.waiting import wait_for
from tests.support.web_servers import close, parse_sse, status

TOKEN = "queue-overlay-token-for-tests-8c1e"
ELSEWHERE = "203.0.113.9"  # a documentation address: only ever a REMOTE_ADDR value here, never contacted
Status = QueueItem.Status


# --- building a queue as the capture and a worker leave it ------------------------------------


def viewer_event(session, event_type: str, raw_name: str, *, gift: str = "", count: int = 1) -> LiveEvent:
    """A stored event whose nickname is what the capture stores: the cleaned name beside the raw one."""
    (event,) = make_events(session, [event_type], **({"gift": {"name": gift}} if gift else {}))
    event.user_nickname_raw = raw_name
    event.user_nickname = clean_nickname(raw_name, event.user_unique_id)
    event.repeat_count = count
    event.save(update_fields=["user_nickname_raw", "user_nickname", "repeat_count"])
    return event


def enqueue(service: Service, event: LiveEvent, *, dispatched_at: dt.datetime | None) -> QueueItem:
    """The item the dispatcher creates, with ``dispatched_at`` once the broker confirmed it."""
    config = service.event_configs.get(event_type=event.event_type)
    return QueueItem.objects.create(
        live_event=event,
        service=service,
        event_type=event.event_type,
        priority=config.priority,
        discardable=config.discardable,
        dispatched_at=dispatched_at,
    )


def claim(item: QueueItem) -> None:
    """What the worker's claim writes (project/queue_system/processing.py)."""
    now = timezone.now()
    QueueItem.objects.filter(pk=item.pk).update(status=Status.PROCESSING, started_at=now, attempts=1, updated_at=now)


def finish(item: QueueItem, status: str = Status.COMPLETED) -> None:
    now = timezone.now()
    QueueItem.objects.filter(pk=item.pk).update(status=status, finished_at=now, updated_at=now)


def build_queue(slug: str = "dino_queue") -> dict[str, QueueItem]:
    """One gift running; gifts, a subscription and a follow waiting; a like and an undispatched gift too."""
    service = make_service(slug)
    session = make_session()
    start = timezone.now() - dt.timedelta(seconds=30)

    def add(event_type: str, raw_name: str, seconds: int | None, **gift) -> QueueItem:
        dispatched_at = None if seconds is None else start + dt.timedelta(seconds=seconds)
        return enqueue(service, viewer_event(session, event_type, raw_name, **gift), dispatched_at=dispatched_at)

    items = {
        # A mathematical alphabet and a right-to-left override, as TikTok sends such names.
        "ana": add("GiftEvent", "𝓐𝓷𝓪\u202e", 0, gift="Rose", count=5),
        "cy": add("FollowEvent", "Cy", 1),
        "dee": add("SubscribeEvent", "Dee", 2),
        "bob": add("GiftEvent", "Bob", 3, gift="Rose"),
        "liker": add("LikeEvent", "Liker", 4),
        "eve": add("GiftEvent", "Eve", 5, gift="Galaxy", count=2),
        "late": add("GiftEvent", "Late", None, gift="Rose"),  # not confirmed by the broker yet
        "done": add("GiftEvent", "Done", -5, gift="Rose"),
    }
    claim(items["done"])
    finish(items["done"])
    claim(items["ana"])
    return items


def names(snapshot: dict) -> list[str]:
    return [row["nickname"] for row in snapshot["next"]]


# --- streams read through the Django test client ---------------------------------------------


class Stream:
    """An open /overlays/queue/events/ response, read message by message.

    Read in the test's own thread: the stream sends a ping every heartbeat, so each read
    returns within a second or so.
    """

    def __init__(self, response) -> None:
        self.response = response
        self.messages: list[dict] = []
        self._chunks = iter(response.streaming_content)

    def pull(self) -> dict:
        message = parse_sse(next(self._chunks).decode())
        self.messages.append(message)
        return message

    def queue_events(self) -> list[dict]:
        return [m["data"] for m in self.messages if m.get("event") == "queue"]

    def wait_queue(self, check, what: str, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.pull()
            if message.get("event") == "queue" and check(message["data"]):
                return message["data"]
        raise AssertionError(f"no snapshot with {what} within {timeout} s: {self.messages[-5:]}")

    def read_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.pull()

    def close(self) -> None:
        close(self.response)


# --- the token, and the choice of the service ----------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/overlays/queue/", "/overlays/queue/events/"])
def test_it_takes_the_overlay_token(client, path):
    make_service("dino_queue")
    set_config("overlays_token", TOKEN)
    url = f"{path}?service=dino_queue"
    refused = client.get(url, REMOTE_ADDR=ELSEWHERE)
    assert refused.status_code == 403 and "needs its token" in refused.content.decode()
    wrong = client.get(f"{url}&token=not-it", REMOTE_ADDR=ELSEWHERE)
    assert wrong.status_code == 403 and "not the current one" in wrong.content.decode()
    assert status(client, f"{url}&token={TOKEN}", REMOTE_ADDR=ELSEWHERE) == 200


@pytest.mark.django_db
def test_a_stranger_learns_nothing_about_the_services(client):
    make_service("dino_queue")
    set_config("overlays_token", TOKEN)
    response = client.get("/overlays/queue/?service=nope", REMOTE_ADDR=ELSEWHERE)
    assert response.status_code == 403
    assert "dino_queue" not in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/overlays/queue/", "/overlays/queue/events/"])
def test_a_missing_unknown_or_async_service_gets_a_page_naming_the_sync_services(client, path):
    make_service("dino_queue")
    make_service("avatar_queue", is_active=False)
    make_service("cards_queue", mode="ASYNC", concurrency=8)

    missing = client.get(path, REMOTE_ADDR="127.0.0.1")
    unknown = client.get(f"{path}?service=nope", REMOTE_ADDR="127.0.0.1")
    async_one = client.get(f"{path}?service=cards_queue", REMOTE_ADDR="127.0.0.1")

    assert (missing.status_code, unknown.status_code, async_one.status_code) == (400, 404, 400)
    for response in (missing, unknown, async_one):
        text = response.content.decode()
        assert response["Content-Type"].startswith("text/plain")
        assert "SYNC services here: avatar_queue (inactive), dino_queue." in text
        assert "cards_queue," not in text and "cards_queue." not in text
    assert "?service=<slug>" in missing.content.decode()
    assert "There is no service 'nope'" in unknown.content.decode()
    assert "cards_queue runs ASYNC" in async_one.content.decode()


@pytest.mark.django_db
def test_the_error_page_says_when_there_is_no_sync_service_at_all(client):
    response = client.get("/overlays/queue/?service=x", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 404
    assert "There is no SYNC service yet" in response.content.decode()


@pytest.mark.django_db
def test_the_page_is_transparent_and_hands_service_and_token_to_its_stream(client):
    make_service("dino_queue")
    set_config("overlays_token", TOKEN)
    response = client.get(f"/overlays/queue/?service=dino_queue&token={TOKEN}", REMOTE_ADDR=ELSEWHERE)
    assert response.status_code == 200
    assert response["Referrer-Policy"] == "no-referrer", "gift images must not receive the token"
    html = response.content.decode()
    assert "<title>Next up · Dino Queue</title>" in html
    assert TOKEN not in html, "the token stays in the URL, never in the page"
    assert "background: transparent" in html and "text-shadow" in html
    assert 'url.searchParams.set("service", SERVICE)' in html
    assert 'url.searchParams.set("token", TOKEN)' in html


# --- the snapshot -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_snapshot_is_the_running_item_then_the_next_three_in_the_queues_order():
    items = build_queue()
    snapshot = read_snapshot(items["ana"].service_id)

    running = snapshot["running"]
    assert running["id"] == items["ana"].pk
    assert running["nickname"] == "Ana", "the capture's cleaned nickname, not the raw one"
    assert (running["type"], running["gift"], running["count"], running["text"]) == ("gift", "Rose", 5, "Rose ×5")
    # Priority first (gifts 10, subscriptions 9, follows 8), then dispatch time; the like is
    # discardable and the last gift is not dispatched yet, so neither is shown.
    assert names(snapshot) == ["Bob", "Eve", "Dee"]
    assert [row["text"] for row in snapshot["next"]] == ["Rose", "Galaxy ×2", "subscribed"]
    # Every pending item waits: Bob, Eve, Dee, Cy, the like and the undispatched gift.
    assert snapshot["waiting"] == 6


@pytest.mark.django_db
def test_a_blocked_nickname_is_masked_as_on_the_cards():
    service = make_service("dino_queue")
    event = viewer_event(make_session(), "GiftEvent", "fuck_you", gift="Rose")
    enqueue(service, event, dispatched_at=timezone.now())
    shown = read_snapshot(service.pk)["next"][0]["nickname"]
    assert shown != "fuck_you" and shown.startswith("f") and "*" in shown


@pytest.mark.django_db
def test_a_running_comment_or_like_shows_who_never_what_they_wrote():
    service = make_service("dino_queue")
    session = make_session()
    (comment,) = make_events(session, ["CommentEvent"], comment="visit my-spam-site dot com")
    comment_item = enqueue(service, comment, dispatched_at=timezone.now())
    claim(comment_item)
    running = read_snapshot(service.pk)["running"]
    assert (running["type"], running["text"], running["nickname"]) == ("comment", "commented", "u0")
    assert "spam" not in str(running)

    finish(comment_item)
    (like,) = make_events(session, ["LikeEvent"], count=15)
    claim(enqueue(service, like, dispatched_at=timezone.now()))
    running = read_snapshot(service.pk)["running"]
    assert (running["type"], running["text"]) == ("like", "sent 15 likes")


@pytest.mark.django_db
def test_an_idle_service_has_nothing_to_show():
    service = make_service("dino_queue")
    assert read_snapshot(service.pk) == {"running": None, "next": [], "waiting": 0}


# --- the event stream ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_stream_sends_the_snapshot_and_each_change_within_a_second_or_two(client, settings):
    settings.OVERLAYS_SSE_HEARTBEAT = 1
    items = build_queue()
    response = client.get("/overlays/queue/events/?service=dino_queue", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    assert response["Cache-Control"] == "no-cache, no-store"
    stream = Stream(response)
    try:
        assert stream.pull() == {"retry": "1000", "event": "hello", "data": {"heartbeat_ms": 1000}}
        first = stream.wait_queue(lambda s: True, "the first snapshot")
        assert first["running"]["nickname"] == "Ana" and names(first) == ["Bob", "Eve", "Dee"]
        assert first["waiting"] == 6

        # The worker finishes Ana's gift and takes the next one, Bob's.
        finish(items["ana"])
        claim(items["bob"])
        changed_at = time.monotonic()
        second = stream.wait_queue(lambda s: s["running"]["id"] == items["bob"].pk, "Bob's gift running")
        assert time.monotonic() - changed_at <= POLL_SECONDS * 2 + 1
        assert names(second) == ["Eve", "Dee", "Cy"] and second["waiting"] == 5

        for item in items.values():
            finish(item)
        idle = stream.wait_queue(lambda s: s["running"] is None, "an idle queue")
        assert idle == {"running": None, "next": [], "waiting": 0}
        stream.read_for(POLL_SECONDS * 2.5)
        assert len(stream.queue_events()) == 3, "a snapshot is sent only when it changed"
        assert any(m.get("event") == "ping" for m in stream.messages)
    finally:
        stream.close()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_open_pages_share_one_reader_that_reads_once_a_second(client, settings):
    settings.OVERLAYS_SSE_HEARTBEAT = 1
    items = build_queue()
    reader = reader_for(items["ana"].service_id)
    reads_before = reader.reads
    streams = [
        Stream(client.get("/overlays/queue/events/?service=dino_queue", REMOTE_ADDR="127.0.0.1")) for _ in range(3)
    ]
    try:
        for stream in streams:
            stream.wait_queue(lambda s: s["running"] is not None, "the snapshot on every page")
        opened = time.monotonic()
        time.sleep(2.5)
        elapsed = time.monotonic() - opened
        readers = [t for t in threading.enumerate() if t.name == reader.thread_name]
        assert len(readers) == 1, "one reader thread for the service, whatever the number of pages"
        assert reader.listeners() == 3
        reads = reader.reads - reads_before
        assert reads <= elapsed / POLL_SECONDS + 2, f"{reads} reads in {elapsed:.1f} s for three pages"
    finally:
        for stream in streams:
            stream.close()
    wait_for(lambda: not reader.running(), 5, what="the reader to stop once no page watches")


@pytest.mark.django_db
def test_the_queue_streams_count_against_the_overlay_stream_limit(client, settings, overlay_stream):
    settings.OVERLAYS_MAX_STREAMS = 1
    make_service("dino_queue")
    cards = client.get("/overlays/events/", REMOTE_ADDR="127.0.0.1")
    try:
        assert cards.status_code == 200
        refused = client.get("/overlays/queue/events/?service=dino_queue", REMOTE_ADDR="127.0.0.1")
        assert refused.status_code == 503 and refused["Retry-After"] == "10"
        assert "OVERLAYS_MAX_STREAMS" in refused.content.decode()
    finally:
        close(cards)
    assert status(client, "/overlays/queue/events/?service=dino_queue", REMOTE_ADDR="127.0.0.1") == 200
