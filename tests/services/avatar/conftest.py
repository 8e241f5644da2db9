"""The avatar tests' fixture for the shared-session record in Redis (the fakes are in tests/fakes/fixtures.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def live_session_key():
    """The Redis record the server publishes, cleared before and after the test."""
    from project.services.avatar.session_registry import SessionRegistry

    registry = SessionRegistry()
    registry._redis.delete("avatar:live_session")
    yield registry
    registry._redis.delete("avatar:live_session")
    registry.close()


@pytest.fixture
def heygen_env(monkeypatch, heygen_fake, live_session_key):
    """The avatar service pointed at the HeyGen fake, in this process."""
    monkeypatch.setenv("HEYGEN_API_KEY", heygen_fake.api_key)
    monkeypatch.setenv("HEYGEN_AVATAR_ID", "Test_Avatar_public")
    monkeypatch.setenv("HEYGEN_BASE_URL", heygen_fake.base_url)
    monkeypatch.setenv("AVATAR_IDLE_SECONDS", "60")
    return heygen_fake
