"""Fixtures of the avatar tests: the HeyGen and ConvAI fakes and the shared-session record in Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.convai import FakeConvAI
from tests.fakes.heygen import FakeHeyGen


@pytest.fixture
def heygen_fake() -> Iterator[FakeHeyGen]:
    with FakeHeyGen() as fake:
        yield fake


@pytest.fixture
def convai_fake() -> Iterator[FakeConvAI]:
    with FakeConvAI() as fake:
        yield fake


@pytest.fixture
def live_session_key():
    """The Redis record the server publishes, cleared before and after the test."""
    from project.services.avatar.session_registry import SessionRegistry

    registry = SessionRegistry()
    registry._redis.delete("avatar:live_session")
    yield registry
    registry._redis.delete("avatar:live_session")
    registry.close()
