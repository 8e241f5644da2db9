"""pytest fixtures that start the SaaS fakes and point the product at them.

Registered in tests/conftest.py (``pytest_plugins``). Settings go through the
environment (and Django settings for MEDIA_ROOT), so subprocesses a test
starts with ``tests.support.servers.subprocess_env`` — Celery workers, management
commands — reach the same fake.

- ``elevenlabs_fake``: an :class:`ElevenLabsFake` on an ephemeral port;
  ``ELEVENLABS_BASE_URL`` and ``ELEVENLABS_API`` point at it, and MEDIA_ROOT is
  a fresh directory so no phrase is cached from an earlier test.
  ``fake.tts_requests()`` lists the text-to-speech calls received,
  ``fake.set_mode("401" | "quota" | "429" | "busy" | "500" | "slow", times=N, ...)``
  switches failures on.
- ``llm_fake``: an :class:`LLMFake`; ``LLM_URL``, ``LLM_KEY`` and ``LLM_MODEL``
  point at it. ``fake.replies.append(...)`` queues answers,
  ``fake.chat_requests()`` lists what was asked.
- ``heygen_fake``, ``convai_fake``: the HeyGen Streaming API and ConvAI fakes on free ports.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.convai import FakeConvAI
from tests.fakes.elevenlabs_fake import ElevenLabsFake
from tests.fakes.heygen import FakeHeyGen
from tests.fakes.llm_fake import LLMFake

ELEVENLABS_TEST_KEY = "sk_fake_elevenlabs_0123456789abcdef"
LLM_TEST_KEY = "sk-fake-llm-0123456789abcdef"
LLM_TEST_MODEL = "fake-model"


@pytest.fixture
def media_root(settings, tmp_path, monkeypatch):
    """A fresh MEDIA_ROOT for this test (in settings and, for subprocesses, in the environment)."""
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = root
    monkeypatch.setenv("MEDIA_ROOT", str(root))
    return root


@pytest.fixture
def elevenlabs_fake(monkeypatch, media_root):
    fake = ElevenLabsFake(api_key=ELEVENLABS_TEST_KEY).start()
    monkeypatch.setenv("ELEVENLABS_BASE_URL", fake.url)
    monkeypatch.setenv("ELEVENLABS_API", ELEVENLABS_TEST_KEY)
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def llm_fake(monkeypatch):
    fake = LLMFake(api_key=LLM_TEST_KEY).start()
    monkeypatch.setenv("LLM_URL", fake.chat_url)
    monkeypatch.setenv("LLM_KEY", LLM_TEST_KEY)
    monkeypatch.setenv("LLM_MODEL", LLM_TEST_MODEL)
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def heygen_fake() -> Iterator[FakeHeyGen]:
    with FakeHeyGen() as fake:
        yield fake


@pytest.fixture
def convai_fake() -> Iterator[FakeConvAI]:
    with FakeConvAI() as fake:
        yield fake
