"""The /overlays/ OBS page in a real (headless) Chromium, fed through the Redis stream."""

from __future__ import annotations

import itertools
import time

import pytest

from project.services.overlays.stream import id_millis, publish_card
from tests.support.browser import transparent_screenshot
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CARD_TYPES = ["gift", "follow", "subscribe", "share", "comment", "like", "join", "gift"]


@pytest.fixture
def overlay(browser, live_server, overlay_stream, settings):
    """The page, freshly opened on this test's stream and connected."""
    settings.OVERLAYS_SSE_HEARTBEAT = 2
    driver = browser.driver
    driver.get(f"{live_server.url}/overlays/")
    wait_for(lambda: driver.execute_script("return window.overlays && window.overlays.connected()"), what="SSE")
    yield driver
    driver.get("about:blank")  # closes the event stream before the next test changes settings


def visible(driver) -> list[str]:
    return driver.execute_script("return window.overlays.visible()")


def history(driver, card_id: str) -> dict:
    entries = [e for e in driver.execute_script("return window.overlays.history()") if e["id"] == card_id]
    assert entries, f"{card_id} was never shown"
    return entries[-1]


def test_it_is_a_transparent_1920x1080_page(overlay):
    background = overlay.execute_script("return getComputedStyle(document.body).backgroundColor")
    assert background == "rgba(0, 0, 0, 0)"
    size = overlay.execute_script("const r = stage.getBoundingClientRect(); return [r.width, r.height]")
    assert size == [1920, 1080]


def test_it_shows_a_pushed_card_within_a_second_and_removes_it_after_its_display_time(overlay, browser):
    entry_id = publish_card(
        {"id": "gift-1", "type": "gift", "nickname": "Lucia", "text": "sent Rose ×5", "duration_ms": 3000}
    )
    wait_for(lambda: "gift-1" in visible(overlay), timeout=5, interval=0.05, what="the card")
    shown = history(overlay, "gift-1")
    latency_ms = shown["shownAt"] - id_millis(entry_id)
    assert latency_ms <= 1000, f"the card took {latency_ms} ms from Redis to the screen"
    card = overlay.find_element("css selector", '[data-card-id="gift-1"]')
    assert card.find_element("css selector", ".name").get_attribute("textContent") == "Lucia"
    assert card.find_element("css selector", ".text").get_attribute("textContent") == "sent Rose ×5"
    assert "gift" in card.get_attribute("class")
    transparent_screenshot(browser, "overlays-one-card.png")
    time.sleep(1.5)
    assert "gift-1" in visible(overlay), "the card left before its display time"
    wait_for(lambda: "gift-1" not in visible(overlay), timeout=10, interval=0.05, what="the card to leave")
    on_screen = history(overlay, "gift-1")["hiddenAt"] - shown["shownAt"]
    assert 2900 <= on_screen <= 4000, f"on screen for {on_screen} ms instead of 3000"
    wait_for(
        lambda: not overlay.find_elements("css selector", '[data-card-id="gift-1"]'),
        what="the card to be removed from the page",
    )


def test_it_shows_eight_cards_at_once(overlay, browser, live_server):
    image = f"{live_server.url}/static/admin/img/icon-yes.svg"
    for i, kind in enumerate(CARD_TYPES):
        publish_card(
            {
                "id": f"c{i}",
                "type": kind,
                "nickname": f"viewer {i}",
                "text": f"{kind} card",
                "duration_ms": 15000,
                **({"image": image} if i == 0 else {}),
            }
        )
    wait_for(lambda: len(visible(overlay)) == 8, timeout=10, what="eight cards")
    time.sleep(0.5)  # let the slide-in animations finish before measuring and capturing
    rects = overlay.execute_script(
        "return [...document.querySelectorAll('.card')].map(c => {"
        "  const r = c.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })"
    )
    assert len(rects) == 8
    for left, top, right, bottom in rects:
        assert 0 <= left < right <= 1920 and 0 <= top < bottom <= 1080, "a card is off the 1920x1080 stage"
    for (_, _, _, bottom), (_, next_top, _, _) in itertools.pairwise(rects):
        assert bottom <= next_top, "cards overlap"
    assert overlay.execute_script("return document.querySelector('[data-card-id=c0] img').naturalWidth") > 0
    assert len(overlay.find_elements("css selector", ".card svg")) == 7  # drawn icons for the rest
    transparent_screenshot(browser, "overlays-eight-cards.png")


def test_it_shows_a_card_still_on_time_when_the_page_opens_late(browser, live_server, overlay_stream, settings):
    settings.OVERLAYS_SSE_HEARTBEAT = 2
    entry_id = publish_card({"id": "early", "type": "follow", "nickname": "Ana", "duration_ms": 6000})
    driver = browser.driver
    driver.get(f"{live_server.url}/overlays/")
    try:
        wait_for(lambda: driver.execute_script("return window.overlays.visible().includes('early')"), what="replay")
        wait_for(lambda: "early" not in visible(driver), timeout=15, interval=0.05, what="the card to leave")
        gone_at = history(driver, "early")["hiddenAt"]
        # it leaves when its time is over by the publisher's clock, not 6 s after the reload
        assert abs(gone_at - (id_millis(entry_id) + 6000)) <= 1000
    finally:
        driver.get("about:blank")


def test_it_reconnects_by_itself_when_the_stream_ends(overlay, settings):
    settings.OVERLAYS_SSE_MAX_SECONDS = 3  # applies to the connections opened from now on
    overlay.refresh()
    wait_for(lambda: overlay.execute_script("return window.overlays.connected()"), what="SSE")
    time.sleep(5)  # the server has closed that stream; EventSource reconnected with Last-Event-ID
    publish_card({"id": "after", "type": "like", "nickname": "Ana", "text": "sent 3 likes", "duration_ms": 3000})
    wait_for(lambda: "after" in visible(overlay), timeout=10, what="a card after the reconnect")


def test_it_shows_what_users_type_as_text_never_as_html(overlay):
    hostile = '<img src=x onerror="window.pwned=1">'
    publish_card({"id": "x", "type": "comment", "nickname": hostile, "text": hostile, "duration_ms": 4000})
    wait_for(lambda: "x" in visible(overlay), what="the card")
    card = overlay.find_element("css selector", '[data-card-id="x"]')
    assert card.find_element("css selector", ".name").get_attribute("textContent") == hostile
    assert card.find_elements("css selector", ".body img") == []
    assert overlay.execute_script("return window.pwned === undefined")


def test_a_page_left_for_another_gives_its_stream_back_and_catches_up_when_the_streamer_comes_back(
    browser, live_server, overlay_stream, settings
):
    """Chromium keeps a page left for another in its back-forward cache: with its stream open it
    would hold one of the process's few stream slots (OVERLAYS_MAX_STREAMS)."""
    from project.services.overlays.access import SLOTS

    settings.OVERLAYS_SSE_HEARTBEAT = 2
    driver = browser.driver
    driver.get(f"{live_server.url}/overlays/")
    wait_for(lambda: driver.execute_script("return window.overlays && window.overlays.connected()"), what="SSE")
    driver.execute_script("window.keptPage = true")
    wait_for(lambda: SLOTS.open == 1, what="the page's stream slot")
    driver.get(f"{live_server.url}/admin/login/")
    wait_for(lambda: SLOTS.open == 0, timeout=10, what="the slot given back after leaving")
    publish_card({"id": "while-away", "type": "gift", "nickname": "A", "text": "x", "duration_ms": 60000})
    driver.back()
    wait_for(lambda: driver.execute_script("return window.overlays && window.overlays.connected()"), what="SSE again")
    assert driver.execute_script("return window.keptPage") is True, "the page did not come from the cache"
    wait_for(lambda: "while-away" in visible(driver), timeout=5, what="the card published while away")
    assert SLOTS.open == 1
    driver.get("about:blank")
