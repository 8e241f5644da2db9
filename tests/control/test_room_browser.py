"""The control room in a real headless Chromium during a simulated live: events are stored and
dispatched as the capture does, real workers (``python -m workers``) react to them, and the page
follows over its event stream. Pausing DinoChrome stops its reactions; resuming drains the
backlog highest priority first. Screenshots go to test-artifacts/control-room-*.png.

The DinoChrome service here runs the tests' recording class under the seeds' DinoChrome table
(the real game needs a browser of its own, which the dino tests cover)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest
from django.db import connections
from django.utils import timezone

from project.control import room_views
from project.queue_system.models import QueueItem
from project.tiktok_events.models import LiveSession
from tests.support import ROOT
from tests.support.browser import artifact, page_browser
from tests.support.queueing import all_settled, dispatch_in_batches, make_events, make_service, make_session
from tests.support.servers import subprocess_env
from tests.support.waiting import wait_for
from tests.support.worker_processes import consumers, running_workers

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-streamers-own-pass-42"
DINO_TABLE = [
    ("GiftEvent", 10, False),
    ("SubscribeEvent", 9, False),
    ("FollowEvent", 8, False),
    ("CommentEvent", 6, True),
    ("LikeEvent", 3, True),
]
Status = QueueItem.Status


@pytest.fixture(scope="module")
def browser():
    browser = page_browser(1400, 1000)
    try:
        yield browser
    finally:
        browser.quit()


class Feeder(threading.Thread):
    """A simulated live: a few events every 0.2 s, stored and dispatched as the capture does."""

    TYPES = ["GiftEvent", "CommentEvent", "LikeEvent", "FollowEvent", "SubscribeEvent", "CommentEvent"]

    def __init__(self, session) -> None:
        super().__init__(name="feeder", daemon=True)
        self.session = session
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            n = 0
            while not self.stop_event.is_set():
                types = [self.TYPES[(n + k) % len(self.TYPES)] for k in range(3)]
                n += 3
                dispatch_in_batches(make_events(self.session, types, sleep=0.05))
                self.stop_event.wait(0.2)
        except BaseException as exc:
            self.error = exc
        finally:
            connections.close_all()

    def stop(self) -> None:
        self.stop_event.set()
        self.join(30)
        assert self.error is None, self.error


def card_text(driver, slug: str, field: str) -> str:
    return driver.execute_script(
        "var n = document.querySelector('.service-card[data-slug=\"' + arguments[0] + '\"] "
        "[data-field=\"' + arguments[1] + '\"]'); return n ? n.textContent : null;",
        slug,
        field,
    )


def snapshots(driver) -> int:
    return driver.execute_script("return window.controlRoom ? window.controlRoom.snapshots : 0")


def click_action(driver, slug: str, action: str) -> None:
    driver.find_element("css selector", f'.service-card[data-slug="{slug}"] .action-{action} button').click()


def log_in(driver, live_server) -> None:
    driver.get(f"{live_server.url}/control/")
    wait_for(lambda: driver.find_elements("id", "id_username"), what="the login form")
    driver.find_element("id", "id_username").send_keys("streamer")
    driver.find_element("id", "id_password").send_keys(PASSWORD)
    driver.find_element("css selector", "input[type=submit]").click()
    wait_for(lambda: driver.find_elements("id", "services"), timeout=30, what="the control room after login")


def live_field(driver, name: str) -> str:
    return driver.find_element("css selector", f'[data-live="{name}"]').text


def test_the_control_room_shows_the_simulators_live_as_the_capture_stores_it(
    browser, live_server, vhost, seeded, django_user_model
):
    """The demo's path: the capture against the TikTok simulator, the page open beside it."""
    django_user_model.objects.create_superuser("streamer", "streamer@example.com", PASSWORD)
    driver = browser.driver
    log_in(driver, live_server)
    capture = subprocess.Popen(
        [sys.executable, "manage.py", "capture_tiktok_live", "--simulate", "steady",
         "--simulator-arg=--steady-seconds=60", "--quiet"],
        cwd=ROOT, env=subprocess_env(vhost), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_for(
            lambda: live_field(driver, "streamer") == "@simulated_streamer", timeout=60, what="the live's streamer"
        )
        wait_for(lambda: live_field(driver, "label") == "connected", timeout=30, what="the live connected")
        session = LiveSession.objects.get(status=LiveSession.Status.LIVE)
        assert live_field(driver, "session_id") == str(session.pk)
        wait_for(lambda: driver.execute_script(
            "var c = Chart.getChart(document.getElementById('rate-chart'));"
            "return c && c.data.datasets.some(d => d.data.some(v => v > 0));"), timeout=20,
            what="the chart to plot the live's events")  # fmt: skip
        driver.save_screenshot(str(artifact("control-room-simulated-live.png")))
    finally:
        capture.send_signal(signal.SIGTERM)  # as Ctrl+C would: the session ends, stopped
        output, _ = capture.communicate(timeout=60)
    assert capture.returncode == 0, output
    wait_for(lambda: live_field(driver, "label") == "ended", timeout=20, what="the page to say the live ended")
    assert "stopped" in live_field(driver, "reason")
    driver.get("about:blank")


def test_the_control_room_follows_a_live_and_pauses_dinochrome(browser, live_server, vhost, django_user_model):
    django_user_model.objects.create_superuser("streamer", "streamer@example.com", PASSWORD)
    dino = make_service("dinochrome", table=DINO_TABLE, max_queue_size=20)
    make_service("overlays", mode="ASYNC", concurrency=4, table=DINO_TABLE)
    session = make_session()
    driver = browser.driver
    # With the discard accounting: what a bounded queue drops is marked discarded, not left pending.
    with running_workers(vhost, ["dinochrome", "overlays"], discards=True):
        log_in(driver, live_server)

        feeder = Feeder(session)
        feeder.start()
        try:
            # Moving counts: the page's numbers grow between two snapshots of the stream.
            wait_for(lambda: snapshots(driver) >= 2, timeout=30, what="snapshots over the event stream")
            wait_for(lambda: card_text(driver, "dinochrome", "worker") == "up", timeout=20, what="DinoChrome up")
            first = int(
                wait_for(
                    lambda: (
                        int(card_text(driver, "dinochrome", "completed") or 0) > 0
                        and card_text(driver, "dinochrome", "completed")
                    ),
                    timeout=30,
                    what="a completed count",
                )
            )
            wait_for(
                lambda: int(card_text(driver, "dinochrome", "completed")) > first,
                timeout=30,
                what="DinoChrome's completed count to move",
            )
            wait_for(
                lambda: int(card_text(driver, "overlays", "completed")) > 0,
                timeout=30,
                what="Overlays' completed count to move",
            )
            wait_for(lambda: driver.execute_script(
                "var c = Chart.getChart(document.getElementById('rate-chart'));"
                "return c && c.data.datasets.some(d => d.data.some(v => v > 0));"), timeout=20,
                what="the chart to plot events per second")  # fmt: skip
            assert driver.find_elements("css selector", "#reactions tr td.status-completed")
            driver.save_screenshot(str(artifact("control-room-live.png")))

            # Pause DinoChrome: the page reloads with the message, the card turns paused.
            click_action(driver, "dinochrome", "pause")
            # Until the form's answer loads, the old page (no message list) is still there.
            wait_for(lambda: any("paused" in m.text for m in driver.find_elements("css selector", ".control-messages")),
                     timeout=20, what="the pause message")  # fmt: skip
            wait_for(lambda: card_text(driver, "dinochrome", "worker") == "paused", timeout=20,
                     what="DinoChrome's card to say paused")  # fmt: skip
            wait_for(lambda: consumers(vhost, "svc.dinochrome") == 0, timeout=10, what="no consumer on svc.dinochrome")
            wait_for(lambda: not QueueItem.objects.filter(service=dino, status=Status.PROCESSING).exists(),
                     timeout=20, what="DinoChrome's last item to finish")  # fmt: skip
            paused_at = timezone.now()
            overlays_before = QueueItem.objects.filter(service__slug="overlays", status=Status.COMPLETED).count()
            time.sleep(2.0)
            # No DinoChrome reaction while paused; Overlays goes on; a backlog builds up.
            assert not QueueItem.objects.filter(service=dino, started_at__gte=paused_at).exists()
            assert QueueItem.objects.filter(service__slug="overlays", status=Status.COMPLETED).count() > overlays_before
            wait_for(lambda: driver.find_elements(
                "css selector", '.service-card[data-slug="dinochrome"] [data-field="by-priority"] tr td.num'),
                timeout=10, what="the waiting counts per priority")  # fmt: skip
            assert int(card_text(driver, "dinochrome", "main-ready") or 0) >= 0
            assert (
                driver.find_element("css selector", '.service-card[data-slug="dinochrome"]')
                .get_attribute("class")
                .count("paused")
            )
            card = '.service-card[data-slug="dinochrome"]'
            assert driver.find_element("css selector", f"{card} .action-resume button").is_displayed()
            assert not driver.find_element("css selector", f"{card} .action-pause button").is_displayed()
            driver.save_screenshot(str(artifact("control-room-paused.png")))
        finally:
            feeder.stop()

        backlog = list(
            QueueItem.objects.filter(service=dino, status=Status.PENDING, discardable=False).values_list(
                "pk", flat=True
            )
        )
        assert len({p for p in QueueItem.objects.filter(pk__in=backlog).values_list("priority", flat=True)}) == 3
        click_action(driver, "dinochrome", "resume")
        wait_for(lambda: card_text(driver, "dinochrome", "worker") == "up", timeout=20, what="DinoChrome up again")
        wait_for(lambda: all_settled(dino), timeout=60, what="DinoChrome's backlog to drain")
        order = list(QueueItem.objects.filter(pk__in=backlog).order_by("started_at").values_list("priority", flat=True))
        assert order == sorted(order, reverse=True), f"the backlog ran out of priority order: {order}"
        assert set(QueueItem.objects.filter(pk__in=backlog).values_list("status", flat=True)) == {Status.COMPLETED}
        wait_for(lambda: card_text(driver, "dinochrome", "by-priority") == "nothing waiting", timeout=20,
                 what="the card's backlog to empty")  # fmt: skip
        driver.save_screenshot(str(artifact("control-room-resumed.png")))
        # Leaving the page ends its stream: the server gives the slot (and its database connection) back.
        driver.get("about:blank")
        wait_for(lambda: room_views.SLOTS.open == 0, timeout=10, what="the page's stream to end")
