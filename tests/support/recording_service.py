"""A service class for tests, written exactly as the seeds say a custom service is.

What it does is driven by the event's ``event_data`` and it records every
call in a Redis list (``TTE_TEST_RECORD_KEY``), so a test can see what ran,
when, in which process and thread:

- ``sleep``: seconds to spend in the handler;
- ``fail``: return False; ``raise``: raise RuntimeError(text);
- ``transient``: raise TransientError on the first N attempts;
- ``hang_first``: spend this long on the first attempt only (to be killed, or to time out);
- ``on_timeout`` is recorded too.
"""

from __future__ import annotations

import json
import os
import threading
import time

import redis
from django.conf import settings

from project.queue_system.base_service import BaseQueueService, TransientError


def record_key() -> str:
    return os.environ.get("TTE_TEST_RECORD_KEY", "tte-test-record")


def records(key: str) -> list[dict]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    return [json.loads(raw) for raw in client.lrange(key, 0, -1)]


class RecordingService(BaseQueueService):
    def on_start(self):
        self._redis = redis.Redis.from_url(settings.REDIS_URL)
        self._record("on_start")

    def on_stop(self):
        self._record("on_stop")

    def _record(self, phase: str, **fields) -> None:
        entry = {"phase": phase, "t": time.time(), "pid": os.getpid(), "thread": threading.get_ident(), **fields}
        self._redis.rpush(record_key(), json.dumps(entry))

    def on_timeout(self, live_event, queue_item):
        self._record("on_timeout", item=queue_item.pk, attempt=queue_item.attempts)

    def process_event(self, live_event, queue_item):
        data = live_event.event_data or {}
        fields = {
            "item": queue_item.pk,
            "event": live_event.pk,
            "type": live_event.event_type,
            "priority": queue_item.priority,
            "attempt": queue_item.attempts,
        }
        self._record("start", **fields)
        if queue_item.attempts == 1 and data.get("hang_first"):
            time.sleep(float(data["hang_first"]))
        time.sleep(float(data.get("sleep", 0)))
        if queue_item.attempts <= int(data.get("transient", 0)):
            self._record("transient", **fields)
            raise TransientError("the fake backend is busy", retry_after=0.2)
        if data.get("raise"):
            raise RuntimeError(data["raise"])
        ok = not data.get("fail")
        self._record("end", ok=ok, **fields)
        return ok
