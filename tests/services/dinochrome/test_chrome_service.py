"""ChromeService against a real headless Chromium: score, restart, and coming back from the dead."""

from __future__ import annotations

import os
import signal

import pytest

from project.services.dinochrome.chrome import ChromeError, ChromeService, chromium_options
from tests.support.browser import artifact
from tests.support.servers import child_pids
from tests.support.waiting import wait_for


@pytest.fixture(scope="module")
def chrome(live_server):
    service = ChromeService(f"{live_server.url}/dino/", page_timeout=90)
    service.initialize_browser(headless=True)
    try:
        yield service
    finally:
        service.close()


@pytest.mark.slow
@pytest.mark.browser
def test_it_resets_the_score_on_restart(chrome):
    chrome.set_autoplay(True)
    wait_for(lambda: chrome.get_score() >= 20, timeout=60, what="a score of 20")
    before = chrome.get_score()
    runs = chrome.stats()["runs"]
    assert chrome.restart() == 0
    after = chrome.get_score()
    chrome.screenshot(artifact("chrome-service-after-restart.png"))
    assert after < 10 < before
    assert chrome.get_state() == "running"
    assert chrome.stats()["runs"] == runs + 1


@pytest.mark.browser
def test_it_reopens_the_page_when_the_browser_went_elsewhere(chrome):
    starts, loads = chrome.browser_starts, chrome.page_loads
    chrome.driver.get("about:blank")
    assert chrome.get_score() >= 0
    assert chrome.page_loads == loads + 1
    assert chrome.browser_starts == starts
    assert chrome.driver.current_url.endswith("/dino/")


@pytest.mark.slow
@pytest.mark.browser
def test_it_starts_a_new_browser_when_chromium_was_killed(chrome):
    starts = chrome.browser_starts
    old_driver = chrome.driver
    chromedriver_pid = old_driver.service.process.pid
    browsers = child_pids(chromedriver_pid)
    assert browsers, "chromedriver has no Chromium child"
    for pid in browsers:
        os.kill(pid, signal.SIGKILL)
    chrome.restart()
    assert chrome.browser_starts == starts + 1
    assert chrome.driver is not old_driver
    assert chrome.get_state() == "running"
    # the dead session's chromedriver was stopped, not leaked
    wait_for(lambda: old_driver.service.process.poll() is not None, what="the old chromedriver to exit")


@pytest.mark.slow
@pytest.mark.browser
def test_it_starts_a_new_browser_when_its_window_was_closed(chrome):
    starts = chrome.browser_starts
    chrome.driver.close()  # the only window: Chromium quits with it
    assert chrome.jump() in (True, False)
    assert chrome.browser_starts == starts + 1
    assert chrome.get_state() == "running"


def test_it_says_which_binary_is_missing(tmp_path):
    service = ChromeService("http://127.0.0.1:9/dino/", chrome_binary=str(tmp_path / "no-chromium"))
    with pytest.raises(ChromeError, match=r"Chromium not found at .*no-chromium: install it"):
        service.initialize_browser(headless=True)
    assert service.driver is None


def test_it_says_there_is_no_display_for_a_visible_window(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    service = ChromeService("http://127.0.0.1:9/dino/")
    with pytest.raises(ChromeError, match=r"no display to show the game on .* dino_headless=true"):
        service.initialize_browser(headless=False)
    assert service.driver is None


@pytest.mark.slow
@pytest.mark.browser
def test_it_says_when_the_game_page_does_not_load():
    service = ChromeService("http://127.0.0.1:9/dino/", page_timeout=5)  # port 9: nothing listens
    try:
        with pytest.raises(ChromeError, match=r"the game page http://127.0.0.1:9/dino/ did not load"):
            service.initialize_browser(headless=True)
    finally:
        service.close()


def test_it_runs_headful_in_kiosk_for_the_stream(tmp_path):
    options = chromium_options(headless=False, profile_dir=str(tmp_path), window_size=(1920, 1080), kiosk=True)
    assert "--kiosk" in options.arguments
    assert "--window-size=1920,1080" in options.arguments
    assert f"--user-data-dir={tmp_path}" in options.arguments
    assert not any(arg.startswith("--headless") for arg in options.arguments)
    assert options.experimental_options["excludeSwitches"] == ["enable-automation"]


def test_it_runs_headless_with_the_ci_flags(tmp_path):
    options = chromium_options(headless=True, profile_dir=str(tmp_path))
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ):
        assert flag in options.arguments
    assert "--kiosk" not in options.arguments
    assert options.binary_location == "/usr/bin/chromium"


def test_it_sweeps_profiles_left_by_dead_processes(tmp_path):
    import subprocess

    from project.services.dinochrome.chrome import PROFILE_PREFIX, sweep_stale_profiles

    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / f"{PROFILE_PREFIX}{dead.pid}-abc" / "Default").mkdir(parents=True)
    alive = tmp_path / f"{PROFILE_PREFIX}{os.getpid()}-def"
    alive.mkdir()
    unrelated = tmp_path / f"{PROFILE_PREFIX}legacy"
    unrelated.mkdir()
    assert sweep_stale_profiles(str(tmp_path)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, unrelated.name])
