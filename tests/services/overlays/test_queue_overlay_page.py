"""The "Next up" overlay in a real (headless) Chromium, on items set as a worker sets them."""

from __future__ import annotations

import datetime as dt

import pytest

from project.app_config.config import set_config
from project.services.overlays.queue_reader import POLL_SECONDS, reader_for
from tests.services.overlays.test_queue_overlay import build_queue, claim, enqueue, finish, viewer_event
from tests.support.browser import artifact, transparent_screenshot
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TOKEN = "queue-overlay-page-token-5b7e"
HOSTILE = '<img src=x onerror="window.pwned=1">'


def rows(driver) -> list[tuple[str, str]]:
    return [(row["place"], row["text"]) for row in driver.execute_script("return window.queueOverlay.rows()")]


def test_it_shows_the_running_gift_and_the_next_ones_and_follows_the_queue(browser, live_server, settings):
    settings.OVERLAYS_SSE_HEARTBEAT = 1  # the server notices the closed page at its next ping
    settings.OVERLAYS_LOCAL_WITHOUT_TOKEN = False  # the page must hand its token on to its stream
    set_config("overlays_token", TOKEN)
    items = build_queue()
    cy = items["cy"]
    hostile = enqueue(
        cy.service,
        viewer_event(cy.live_event.session, "FollowEvent", HOSTILE),
        dispatched_at=cy.dispatched_at - dt.timedelta(seconds=1),
    )
    driver = browser.driver
    driver.get(f"{live_server.url}/overlays/queue/?service=dino_queue&token={TOKEN}")
    try:
        expected = [
            ("now", "Ana’s Rose ×5"),
            ("next", "Bob’s Rose"),
            ("next", "Eve’s Galaxy ×2"),
            ("next", "Dee subscribed"),
        ]
        wait_for(lambda: rows(driver) == expected, timeout=15, what=f"the queue {expected}")
        assert driver.execute_script("return window.queueOverlay.waiting()") == "7 waiting"
        assert driver.execute_script("return window.queueOverlay.shown()") is True
        badges = [el.text for el in driver.find_elements("css selector", ".row .badge")]
        assert badges == ["NOW", "NEXT"]
        assert driver.execute_script("return getComputedStyle(document.body).backgroundColor") == "rgba(0, 0, 0, 0)"
        box = driver.execute_script("const r = queue.getBoundingClientRect(); return [r.x, r.y, r.right, r.bottom]")
        assert 1920 / 2 < box[0] < box[2] <= 1920 and 0 <= box[1] < box[3] <= 1080 / 2, f"not top-right: {box}"
        shadow = driver.execute_script("return getComputedStyle(document.querySelector('.row .name')).textShadow")
        assert "rgb(0, 0, 0) -2px -2px 0px" in shadow, f"no dark outline behind the text: {shadow}"
        transparent_screenshot(browser, "queue_overlay_running.png")
        # What a viewer sees over a bright scene: the outline keeps white text readable.
        driver.execute_cdp_cmd(
            "Emulation.setDefaultBackgroundColorOverride", {"color": {"r": 235, "g": 235, "b": 225, "a": 1}}
        )
        driver.save_screenshot(str(artifact("queue_overlay_on_a_bright_scene.png")))

        # The worker finishes Ana's gift and takes Bob's; the hostile name comes up, as text.
        renders = driver.execute_script("return window.queueOverlay.renders()")
        finish(items["ana"])
        claim(items["bob"])
        expected = [
            ("now", "Bob’s Rose"),
            ("next", "Eve’s Galaxy ×2"),
            ("next", "Dee subscribed"),
            ("next", f"{HOSTILE} followed"),
        ]
        wait_for(lambda: rows(driver) == expected, timeout=POLL_SECONDS * 2 + 3, what=f"the queue {expected}")
        assert driver.execute_script("return window.queueOverlay.renders()") == renders + 1
        assert driver.execute_script("return window.queueOverlay.waiting()") == "6 waiting"
        assert driver.find_elements("css selector", ".what img") == []
        assert driver.execute_script("return window.pwned === undefined")
        transparent_screenshot(browser, "queue_overlay_next_one_running.png")

        for item in [*items.values(), hostile]:
            finish(item)
        wait_for(lambda: not driver.execute_script("return window.queueOverlay.shown()"), 5, what="the list to hide")
        assert driver.execute_script("return window.queueOverlay.connected()") is True
    finally:
        driver.get("about:blank")
        # The stream ends and the reader stops before the test's data is flushed.
        wait_for(lambda: not reader_for(cy.service_id).running(), 10, what="the reader to stop")
