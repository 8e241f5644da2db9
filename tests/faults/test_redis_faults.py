"""Redis stopped for real while the overlays, the LLM cooldown and the avatar registry need it.

Redis keeps nothing on disk here: it comes back empty. The assertions are therefore
on what outlives it — QueueItem rows in PostgreSQL and what the overlay page (a real
Chromium on the SSE endpoint) received — never on records written into Redis.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
import redis
import requests
from django.db import connection
from django.utils import timezone

from project.app_config.config import set_config
from project.integrations.llm.cooldown import CooldownUnavailable
from project.integrations.llm.models import LLMReply
from project.queue_system.base_service import TransientError
from project.queue_system.dispatcher import EventDispatcher
from project.queue_system.models import QueueItem
from project.redis_outage import RedisOutage
from project.services.avatar.session_registry import LIVE_SESSION_KEY, SessionRegistry
from project.tiktok_events.models import LiveEvent
from tests.support.outages import redis_stopped
from tests.support.queueing import all_settled
from tests.support.service_events import gift, live_session
from tests.support.service_fixtures import page_history
from tests.support.waiting import wait_for
from tests.support.worker_processes import running_workers

OUTAGE_SECONDS = 12


class Waiter(threading.Thread):
    """Runs ``call`` in a thread; keeps its result or exception and when it ended."""

    def __init__(self, call) -> None:
        super().__init__(daemon=True)
        self.call = call
        self.result = None
        self.error: BaseException | None = None
        self.ended_at = 0.0

    def run(self) -> None:
        try:
            self.result = self.call()
        except BaseException as exc:
            self.error = exc
        finally:
            self.ended_at = time.monotonic()
            connection.close()  # this thread's own database connection


# --- overlays: every gift card shown across a Redis restart --------------------------------


class SSEListener(threading.Thread):
    """A plain HTTP client of /overlays/events/ that reconnects with Last-Event-ID, as EventSource does."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.cards: dict[str, float] = {}  # card id -> when it arrived (time.time())
        self.events: list[str] = []
        self.responses: list[int] = []
        self.last_id = ""
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
            try:
                with requests.get(self.url, headers=headers, stream=True, timeout=(5, 30)) as response:
                    self.responses.append(response.status_code)
                    self._read(response)
            except requests.RequestException as exc:
                self.events.append(f"error {type(exc).__name__}")
            time.sleep(1)

    def _read(self, response) -> None:
        fields: dict[str, str] = {}
        # chunk_size=1: the test server sends no chunked encoding, a bigger read would wait for more
        for line in response.iter_lines(chunk_size=1, decode_unicode=True):
            if self.stopping.is_set():
                return
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
                continue
            if fields.get("id"):
                self.last_id = fields["id"]
            self.events.append(fields.get("event", ""))
            if fields.get("event") == "card":
                self.cards.setdefault(json.loads(fields["data"])["id"], time.time())
            fields = {}


@pytest.mark.django_db(transaction=True)
@pytest.mark.browser
def test_it_shows_every_gift_card_across_a_redis_restart(vhost, overlays_only, overlay_page, live_server):
    """A page open before the outage and a client that connects during it get every card."""
    set_config("overlays_display_times", '{"GiftEvent": 1}')
    driver = overlay_page.driver
    session = live_session()
    dispatcher = EventDispatcher()
    gifts: list[LiveEvent] = []
    dispatched_at: dict[int, float] = {}
    late_client = SSEListener(f"{live_server.url}/overlays/events/")

    def send() -> None:
        event = gift(session, "Rose", nickname=f"viewer {len(gifts)}")
        dispatched_at[event.pk] = time.time()
        dispatcher.dispatch(event)
        gifts.append(event)

    # The worker runs with the real default wait (120 s): a 12 s outage is well inside it.
    with running_workers(vhost, ["overlays"]) as workers:
        for _ in range(6):
            send()
            time.sleep(0.5)
        wait_for(lambda: len(page_history(driver)) == 6, timeout=30, what="the cards before the outage")
        before_outage = len(gifts)

        with redis_stopped():
            stopped_at = time.time()
            for n in range(2 * OUTAGE_SECONDS):  # two gifts a second for the whole outage
                send()
                if n == 4:
                    late_client.start()  # a page opened while Redis is away
                time.sleep(0.5)
            assert driver.execute_script("return window.overlays.unavailable()"), "the page never saw Redis go"
        back_at = time.time()
        for _ in range(6):
            send()
            time.sleep(0.5)

        expected = {f"event-{e.pk}": e for e in gifts}

        def missing() -> list[str]:
            return sorted(expected.keys() - page_history(driver).keys())

        try:
            wait_for(lambda: not missing(), timeout=90, what=f"all {len(expected)} gift cards on the page")
            late_expected = {f"event-{e.pk}" for e in gifts[before_outage + 5 :]}
            wait_for(
                lambda: late_expected <= late_client.cards.keys(),
                timeout=30,
                what="the cards published after the late client connected",
            )
            wait_for(lambda: all_settled(overlays_only), timeout=60, what="every gift item to finish")
        except AssertionError:
            state = driver.execute_script(
                "const o = window.overlays; "
                "return [o.opens(), o.connects(), o.unavailable(), o.connected(), o.lastId()]"
            )
            items = {
                i.live_event_id: (i.status, i.attempts, i.error[:200])
                for i in QueueItem.objects.filter(service=overlays_only)
            }
            print(f"missing {missing()}; page opens/connects/unavailable/connected/lastId {state}")
            print(f"items of the missing: {[items.get(expected[c].pk) for c in missing()]}")
            raise
        finally:
            late_client.stopping.set()
        log = workers.log("overlays")

    items = {i.live_event_id: i for i in QueueItem.objects.filter(service=overlays_only)}
    assert {i.status for i in items.values()} == {QueueItem.Status.COMPLETED}, {
        e: (i.status, i.error) for e, i in items.items() if i.status != QueueItem.Status.COMPLETED
    }
    assert len(items) == len(gifts) == 36
    # Waited in their attempt, not failed and retried through the queue.
    assert max(i.attempts for i in items.values()) == 1
    assert "Redis unreachable, waiting up to 120 s" in log

    shown = page_history(driver)
    page = driver.execute_script("const o = window.overlays; return [o.opens(), o.outages(), o.unavailable()]")
    assert page[1] >= 1 and page[2] is False, f"opens, outages, unavailable: {page}"
    # The client that connected during the outage: a 200 stream, not an error, and every
    # card published after it connected (all of them after Redis was back).
    assert late_client.responses and set(late_client.responses) == {200}, late_client.responses
    assert "unavailable" in late_client.events and "available" in late_client.events
    assert late_expected <= late_client.cards.keys()

    during = [e for e in gifts if stopped_at <= dispatched_at[e.pk] < back_at]
    late_ms = [shown[f"event-{e.pk}"]["shownAt"] - back_at * 1000 for e in during]
    after_ms = [shown[f"event-{e.pk}"]["shownAt"] - dispatched_at[e.pk] * 1000 for e in gifts[-6:]]
    print(
        f"redis outage {back_at - stopped_at:.1f} s: {len(during)} gifts sent during it; "
        f"cards shown {min(late_ms):.0f}-{max(late_ms):.0f} ms after Redis was back; "
        f"gifts after it: dispatch→screen max {max(after_ms):.0f} ms; page opens {page[0]}, "
        f"late client: {len(late_client.cards)} cards over {len(late_client.responses)} responses"
    )
    # The first cards wait in the worker's threads (back-off at most 2 s), the rest in the
    # queue behind them, eight cards of one second at a time.
    assert min(late_ms) <= 4000
    assert max(late_ms) <= 4000 + 1000 * (len(during) / overlays_only.concurrency + 2)


@pytest.mark.django_db(transaction=True)
def test_a_card_outliving_its_wait_goes_back_through_the_queue_and_fails_only_after_its_attempts(
    vhost, overlays_only, overlay_stream, live_server, settings
):
    """With a 2 s wait: a gift sent as Redis stops fails after five waits, one sent late is shown after it."""
    from project.queue_system.processing import MAX_ATTEMPTS

    settings.OVERLAYS_SSE_HEARTBEAT = 2
    set_config("overlays_display_times", '{"GiftEvent": 1}')
    session = live_session()
    listener = SSEListener(f"{live_server.url}/overlays/events/")
    listener.start()
    with running_workers(vhost, ["overlays"], {"REDIS_OUTAGE_WAIT_SECONDS": "2"}) as workers:
        wait_for(lambda: "hello" in listener.events, timeout=10, what="the SSE client")
        with redis_stopped():
            stopped = time.monotonic()
            early = gift(session, "Rose", nickname="early")
            EventDispatcher().dispatch(early)
            # five attempts of 2 s, four retries 2 s apart: gone after ~18 s
            wait_for(
                lambda: QueueItem.objects.get(live_event=early).status == QueueItem.Status.FAILED,
                timeout=40,
                what="the early gift to fail",
            )
            failed_after = time.monotonic() - stopped
            late = gift(session, "Lion", nickname="late")
            EventDispatcher().dispatch(late)
            wait_for(
                lambda: QueueItem.objects.get(live_event=late).attempts >= 2,
                timeout=20,
                what="a retry of the late gift",
            )
        back_at = time.time()
        try:
            wait_for(lambda: f"event-{late.pk}" in listener.cards, timeout=30, what="the late gift's card")
            wait_for(lambda: all_settled(overlays_only), timeout=30, what="the late gift to finish")
        finally:
            listener.stopping.set()
        log = workers.log("overlays")

    early_item = QueueItem.objects.get(live_event=early)
    assert early_item.attempts == MAX_ATTEMPTS
    assert early_item.error.startswith(
        f"gave up after {MAX_ATTEMPTS} attempts: Redis unreachable for 2 s (overlay card): ConnectionError"
    ), early_item.error
    assert failed_after >= MAX_ATTEMPTS * 2 + (MAX_ATTEMPTS - 1) * 2 - 1, f"failed after {failed_after:.1f} s"
    late_item = QueueItem.objects.get(live_event=late)
    assert late_item.status == QueueItem.Status.COMPLETED and 2 <= late_item.attempts < MAX_ATTEMPTS
    assert f"event-{early.pk}" not in listener.cards
    assert "will be retried in 2.0s" in log
    print(
        f"wait 2 s: the early gift failed {failed_after:.1f} s into the outage after {early_item.attempts} attempts; "
        f"the late gift's card arrived {listener.cards[f'event-{late.pk}'] - back_at:.1f} s "
        f"after Redis was back, on attempt {late_item.attempts}"
    )


# --- LLM cooldown and avatar registry: waiting out a short outage -------------------------


def comment_item(service, text: str) -> QueueItem:
    event = LiveEvent.objects.create(
        session=live_session(),
        event_type="CommentEvent",
        user_unique_id=f"viewer-{uuid.uuid4().hex[:10]}",
        user_nickname="Ana",
        event_data={"comment": text},
        received_at=timezone.now(),
    )
    item = QueueItem.objects.create(live_event=event, service=service.service, event_type="CommentEvent", priority=6)
    item.attempts = 1  # as claimed by a worker
    return item


@pytest.mark.django_db(transaction=True)
def test_the_llm_cooldown_waits_out_a_short_outage_and_gives_up_after_its_limit(
    llm_service, llm_fake, settings, caplog
):
    llm_fake.replies.extend(["¡Hola, Ana!"])
    patient, hurried = comment_item(llm_service, "hola"), comment_item(llm_service, "¿estás?")

    with redis_stopped():
        settings.REDIS_OUTAGE_WAIT_SECONDS = 60
        waiting = Waiter(lambda: llm_service.process_event(patient.live_event, patient))
        waiting.start()
        wait_for(lambda: "waiting up to 60 s" in caplog.text, timeout=10, what="the first claim to wait")
        settings.REDIS_OUTAGE_WAIT_SECONDS = 2
        started = time.monotonic()
        with pytest.raises(CooldownUnavailable) as raised:
            llm_service.process_event(hurried.live_event, hurried)
        gave_up_after = time.monotonic() - started
        time.sleep(3)
        assert waiting.is_alive(), f"the claim did not wait for Redis: {waiting.error!r}"
    back = time.monotonic()
    waiting.join(timeout=30)

    assert isinstance(raised.value, TransientError)
    assert str(raised.value).startswith("Redis unreachable for 2 s (LLM reply cooldown): ConnectionError")
    assert 2 <= gave_up_after < 4
    assert waiting.error is None and waiting.result is True
    replied = LLMReply.objects.get(live_event=patient.live_event)
    assert replied.status == LLMReply.Status.REPLIED and replied.reply == "¡Hola, Ana!"
    assert not LLMReply.objects.filter(live_event=hurried.live_event).exists()
    print(
        f"LLM cooldown: gave up after {gave_up_after:.1f} s; "
        f"claimed {waiting.ended_at - back:.1f} s after Redis was back"
    )
    assert waiting.ended_at - back < 4


def test_the_avatar_registry_waits_out_an_outage_and_never_hands_out_the_lost_session(settings):
    owner = SessionRegistry(ttl=60)
    reader = SessionRegistry(outage_wait_seconds=60)
    hurried = SessionRegistry(outage_wait_seconds=2)
    owner._redis.delete(LIVE_SESSION_KEY)
    try:
        owner.publish("sess-live", "server:test:1:1")
        owner.publish("sess-old", "server:test:1:2")
        owner.publish("sess-live", "server:test:1:1")  # the newer session replaced sess-old
        owner.withdraw("sess-old")
        with redis_stopped():
            waiting = Waiter(reader.current)
            waiting.start()
            started = time.monotonic()
            with pytest.raises(RedisOutage, match=r"Redis unreachable for 2 s \(live avatar session\)"):
                hurried.current()
            gave_up_after = time.monotonic() - started
            time.sleep(3)
            assert waiting.is_alive(), f"the read did not wait for Redis: {waiting.error!r}"
            # the writes try once (the avatar server's keep-alive loop must not stall)
            with pytest.raises(redis.ConnectionError):
                owner.refresh("sess-live")
        back = time.monotonic()
        waiting.join(timeout=30)

        assert 2 <= gave_up_after < 4
        # Redis came back empty: the record died with it, nothing stale is handed out...
        assert waiting.error is None and waiting.result is None
        assert waiting.ended_at - back < 4
        # ...until the owner of the live session refreshes it: written again, as published
        assert owner.refresh("sess-live") is True
        current = reader.current()
        assert (current.session_id, current.owner) == ("sess-live", "server:test:1:1")
        # a session withdrawn before the restart is never written back
        assert owner.refresh("sess-old") is False
        assert reader.current().session_id == "sess-live"
        print(f"avatar registry: read answered {waiting.ended_at - back:.1f} s after Redis was back")
    finally:
        owner._redis.delete(LIVE_SESSION_KEY)
        for registry in (owner, reader, hurried):
            registry.close()
