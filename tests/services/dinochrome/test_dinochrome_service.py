"""DinoChromeService driving the game in a real headless Chromium, watched through DevTools."""

from __future__ import annotations

import logging

import pytest

from project.app_config.config import set_config
from project.queue_system.base_service import TransientError
from project.services.dinochrome.services import DinoChromeService
from tests.support.browser import DevToolsPage
from tests.support.servers import free_port
from tests.support.service_events import live_event, live_session
from tests.support.waiting import wait_for


@pytest.fixture(scope="module")
def dino(live_server):
    """The service with its own browser, plus an independent DevTools view of that browser."""
    port = free_port()
    service = DinoChromeService(
        # slow and without AI: the test decides every move, no cactus arrives for ~10 s
        dino_url=f"{live_server.url}/dino/?autoplay=0&speed=1",
        dino_headless="true",
        dino_window_size="1280x720",
        dino_kiosk="false",
        dino_remote_debugging_port=str(port),
    )
    service.on_start()
    try:
        yield service, DevToolsPage(port)
    finally:
        service.on_stop()


@pytest.fixture
def fresh_run(dino):
    service, page = dino
    service.chrome.restart()
    return service, page


@pytest.mark.slow
@pytest.mark.browser
def test_it_makes_the_dino_jump_for_a_like(fresh_run):
    service, page = fresh_run
    assert page.stats()["jumps"] == 0
    assert service.process_event(live_event(live_session(), "LikeEvent"), None) is True
    stats = page.stats()
    assert stats["jumps"] == 1 and stats["jumping"] is True


@pytest.mark.browser
def test_it_makes_the_dino_duck_for_a_comment(fresh_run):
    service, page = fresh_run
    assert service.process_event(live_event(live_session(), "CommentEvent", event_data={"comment": "hi"}), None)
    wait_for(lambda: page.stats()["ducks"] == 1, what="a duck")


@pytest.mark.browser
def test_it_does_nothing_to_the_game_for_an_unmapped_event(fresh_run):
    service, page = fresh_run
    runs = page.stats()["runs"]
    assert service.process_event(live_event(live_session(), "JoinEvent"), None) is True
    stats = page.stats()
    assert (stats["jumps"], stats["ducks"], stats["runs"]) == (0, 0, runs)


@pytest.mark.browser
def test_it_follows_the_streamers_override(fresh_run):
    service, page = fresh_run
    runs = page.stats()["runs"]
    set_config("dinochrome_actions", '{"LikeEvent": ["restart"]}')
    service.process_event(live_event(live_session(), "LikeEvent"), None)
    assert page.stats()["runs"] == runs + 1


@pytest.mark.django_db
def test_it_asks_for_a_retry_when_the_browser_cannot_start(caplog):
    service = DinoChromeService(chromedriver="/nonexistent/chromedriver", dino_headless="true", dino_kiosk="false")
    with caplog.at_level(logging.ERROR, logger="services.dinochrome"):
        service.on_start()  # the worker stays up
    assert "chromedriver not found at /nonexistent/chromedriver" in caplog.text
    with pytest.raises(TransientError, match="jump: chromedriver not found") as raised:
        service.process_event(live_event(live_session(), "LikeEvent"), None)
    assert raised.value.retry_after == 5.0


@pytest.mark.django_db
def test_it_keeps_the_default_actions_when_the_override_is_broken(caplog):
    set_config("dinochrome_actions", '{"LikeEvent": ["fly"]}')
    service = DinoChromeService()
    with caplog.at_level(logging.ERROR, logger="services.dinochrome"):
        first = service.action_map()
        service.action_map()
    assert [str(a) for a in first["LikeEvent"]] == ["jump"]
    assert caplog.text.count("Config dinochrome_actions ignored") == 1
    assert "unknown action 'fly'" in caplog.text
