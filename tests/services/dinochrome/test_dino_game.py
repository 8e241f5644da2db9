"""The /dino/ game in a real (headless) Chromium: autoplay, crashes, the JavaScript API."""

from __future__ import annotations

import time

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from project.services.dinochrome.chrome import ChromeService
from tests.support.browser import artifact
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def game(live_server):
    chrome = ChromeService(f"{live_server.url}/dino/", page_timeout=90)
    chrome.initialize_browser(headless=True)
    try:
        yield chrome
    finally:
        chrome.close()


def open_game(game: ChromeService, query: str = "") -> None:
    assert game.driver is not None
    game.driver.get(game.url + query)
    wait_for(lambda: game.driver.execute_script("return !!(window.dino && window.dino.ready)"), what="game page")


def survive(game: ChromeService, seconds: float) -> dict:
    start = game.stats()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        stats = game.stats()
        assert stats["state"] == "running", f"the dino crashed after {stats['passed']} obstacles: {stats}"
        time.sleep(0.5)
    end = game.stats()
    assert end["runs"] == start["runs"], "the run was restarted behind the test's back"
    return end


def test_it_serves_the_game_page(client):
    response = client.get("/dino/")
    assert response.status_code == 200
    body = response.content.decode()
    assert '<canvas id="game"' in body
    assert "window.dino = Object.freeze" in body  # the script is inlined, no static server needed


def test_it_keeps_running_on_autoplay_for_ten_seconds(game):
    open_game(game)
    assert game.set_autoplay(True) is True
    game.restart()
    end = survive(game, 10)
    game.screenshot(artifact("dino-autoplay-10s.png"))
    # It really played: obstacles came and were cleared, and the score grew.
    assert end["passed"] >= 3, end
    assert end["jumps"] >= 3, end
    assert end["score"] >= 40, end
    assert end["crashes"] == game.stats()["crashes"]


def test_it_clears_birds_and_cacti_at_top_speed(game):
    open_game(game, "?speed=13")
    end = survive(game, 10)
    game.screenshot(artifact("dino-autoplay-top-speed.png"))
    assert end["speed"] == 13
    assert end["passed"] >= 6, end
    open_game(game)


def test_it_crashes_into_a_cactus_without_autoplay(game):
    open_game(game, "?autoplay=0")
    assert game.set_autoplay(False) is False
    wait_for(lambda: game.get_state() == "crashed", timeout=60, what="a crash")
    game.screenshot(artifact("dino-crashed.png"))
    frozen = game.get_score()
    time.sleep(0.5)
    assert game.get_score() == frozen, "the score kept counting after the crash"
    assert game.jump() is False, "a crashed dino cannot jump"
    assert game.stats()["passed"] == 0


def test_it_jumps_and_ducks_through_the_api(game):
    open_game(game, "?autoplay=0&speed=1")  # slow: no cactus reaches the dino during the test
    game.restart()
    assert game.jump() is True
    assert game.stats()["jumping"] is True
    assert game.jump() is False, "a second jump in the air must be refused"
    wait_for(lambda: not game.stats()["jumping"], what="landing")
    assert game.jump() is True
    assert game.stats()["jumps"] == 2
    wait_for(lambda: not game.stats()["jumping"], what="landing")
    assert game.duck(2000) is True
    wait_for(lambda: game.stats()["ducking"], what="ducking")
    assert game.stats()["ducks"] == 1


def test_it_restarts_from_the_keyboard_after_a_crash(game):
    open_game(game, "?autoplay=0")
    wait_for(lambda: game.get_state() == "crashed", timeout=60, what="a crash")
    runs = game.stats()["runs"]
    ActionChains(game.driver).send_keys(Keys.SPACE).perform()
    wait_for(lambda: game.get_state() == "running", what="a restart")
    assert game.stats()["runs"] == runs + 1
    assert game.get_score() < 20
