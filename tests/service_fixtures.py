"""Fixtures of the DinoChrome and Overlays tests (registered in tests/conftest.py)."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def overlay_stream(settings, monkeypatch):
    """A Redis stream of its own for the overlay cards of one test (deleted afterwards).

    Set in Django settings for this process and in the environment for the workers a
    test starts through ``tests.servers.subprocess_env``.
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
