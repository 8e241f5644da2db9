"""The live avatar session record on the real Redis: refresh, restore after a restart, withdrawals Redis missed.

A Redis restart (it keeps nothing on disk here) is stood in for by deleting the
record; the real restart is in tests/faults/test_redis_faults.py.
"""

from __future__ import annotations

import time

import pytest
import redis

from project.redis_outage import RedisOutage
from project.services.avatar.session_registry import LIVE_SESSION_KEY, SessionRegistry

UNREACHABLE = "redis://127.0.0.1:9/0"  # nothing listens on port 9


@pytest.fixture
def owner(live_session_key):
    registry = SessionRegistry(ttl=60)
    yield registry
    registry.close()


def test_the_owner_writes_its_record_again_after_redis_lost_it(owner, live_session_key):
    owner.publish("sess-1", "server:host:1:1")
    opened_at = live_session_key.current().opened_at
    live_session_key._redis.delete(LIVE_SESSION_KEY)
    assert live_session_key.current() is None
    assert owner.refresh("sess-1") is True
    restored = live_session_key.current()
    assert (restored.session_id, restored.owner, restored.opened_at) == ("sess-1", "server:host:1:1", opened_at)
    assert 0 < live_session_key._redis.ttl(LIVE_SESSION_KEY) <= 60


def test_a_refresh_never_replaces_another_session_nor_restores_a_withdrawn_one(owner, live_session_key):
    other = SessionRegistry()
    try:
        owner.publish("sess-old", "service:host:1")
        other.publish("sess-new", "server:host:2:1")
        assert owner.refresh("sess-old") is False
        assert live_session_key.current().session_id == "sess-new"
        owner.withdraw("sess-old")
        live_session_key._redis.delete(LIVE_SESSION_KEY)
        assert owner.refresh("sess-old") is False
        assert live_session_key.current() is None
        # a session this registry never published is not invented either
        assert SessionRegistry().refresh("sess-unknown") is False
        assert live_session_key.current() is None
    finally:
        other.close()


def test_a_withdrawal_redis_missed_is_done_before_the_next_read(owner, live_session_key):
    owner.publish("sess-1", "service:host:1")
    reachable = owner._redis
    owner._redis = redis.Redis.from_url(UNREACHABLE, socket_connect_timeout=1)
    try:
        with pytest.raises(redis.ConnectionError):
            owner.withdraw("sess-1")
    finally:
        owner._redis.close()
        owner._redis = reachable
    assert live_session_key.current().session_id == "sess-1", "the record is still in Redis"
    assert owner.current() is None  # never handed out by the registry that withdrew it...
    assert live_session_key._redis.get(LIVE_SESSION_KEY) is None  # ...and removed on that read


@pytest.mark.slow
def test_a_read_waits_for_redis_up_to_its_limit(settings):
    registry = SessionRegistry(UNREACHABLE, outage_wait_seconds=1.5)
    started = time.monotonic()
    with pytest.raises(RedisOutage, match=r"Redis unreachable for 2 s \(live avatar session\): ConnectionError"):
        registry.current()
    assert 1.5 <= time.monotonic() - started < 3.5
    settings.REDIS_OUTAGE_WAIT_SECONDS = 1  # the default wait comes from the setting
    started = time.monotonic()
    with pytest.raises(RedisOutage):
        SessionRegistry(UNREACHABLE).current()
    assert 1 <= time.monotonic() - started < 3
