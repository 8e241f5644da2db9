"""Fixtures of the services' tests (registered in tests/conftest.py)."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def overlay_stream(settings, monkeypatch):
    """A Redis stream of its own for the overlay cards of one test (deleted afterwards).

    Set in Django settings for this process and in the environment for the workers a
    test starts through ``tests.support.servers.subprocess_env``.
    """
    from project.services.overlays.stream import publisher

    key = f"overlays:test:{uuid.uuid4().hex[:10]}"
    client = publisher()  # the test may point REDIS_URL elsewhere before cleaning up
    settings.OVERLAYS_STREAM = key
    monkeypatch.setenv("OVERLAYS_STREAM", key)
    try:
        yield key
    finally:
        client.delete(key)


@pytest.fixture
def overlays_only(seeded):
    """The seeded services, with only Overlays active (nothing else consumes in the test)."""
    from project.queue_system.models import Service

    Service.objects.exclude(slug="overlays").update(is_active=False)
    return Service.objects.get(slug="overlays")


@pytest.fixture
def overlay_page(live_server, overlay_stream, settings):
    """The overlay page in a real browser, connected to its event stream."""
    from tests.support.browser import page_browser
    from tests.support.waiting import wait_for

    settings.OVERLAYS_SSE_HEARTBEAT = 2
    browser = page_browser(1920, 1080)
    try:
        browser.driver.get(f"{live_server.url}/overlays/")
        wait_for(lambda: browser.driver.execute_script("return window.overlays.connected()"), what="SSE")
        yield browser
    finally:
        browser.quit()


def page_history(driver) -> dict[str, dict]:
    """The cards the overlay page has shown, by card id."""
    return {e["id"]: e for e in driver.execute_script("return window.overlays.history()")}


@pytest.fixture
def llm_service(seeded, llm_fake):
    """The seeded LLM auto-reply service, started, asking the LLM fake with short back-offs."""
    from project.integrations.llm.client import LLMClient
    from project.queue_system.models import Service
    from project.queue_system.service_loader import load_service_class

    row = Service.objects.get(slug="llm")
    instance = load_service_class(row.service_class)(row)
    instance.llm = LLMClient(backoff_seconds=0.01)
    instance.on_start()
    return instance
