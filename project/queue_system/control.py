# Design: docs/architecture.md#processes
"""Pause, resume and skip: what the control room (/control/) asks of a service's worker.

Pause is a flag on ``Service`` (``paused``), so it survives a worker restart. The
worker of the service applies it (workers/control.py): it stops consuming
``svc.<slug>`` (Celery cancels its consumer; messages already delivered to it
finish, none is acked or dropped), and a worker started while its service is
paused does not consume at all. Resuming adds the consumer back and the backlog
drains in priority order, as RabbitMQ hands it out. Gifts wait in their durable
priority queue; discardable queues keep their bound meanwhile.

The web process tells the workers at once through a Celery broadcast
(``tte_sync_pause``); each worker also re-reads the flag every few seconds, so a
missed broadcast only delays the change.

Skip asks the service to stop the item it is running now (``cancel_current`` on
``BaseQueueService``): a message on a Redis channel that the worker's process
holding the service object listens to. Services that do not override
``cancel_current`` cannot be skipped.

Each worker writes a heartbeat (its node name, whether it consumes) into a Redis
hash per service, which the control room reads to tell up, paused and down.
"""

from __future__ import annotations

import functools
import json
import logging
import time

import redis
from django.conf import settings

from project.queue_system.base_service import BaseQueueService
from project.queue_system.broker import vhost_name

logger = logging.getLogger("queue.control")

PAUSE_COMMAND = "tte_sync_pause"
HEARTBEAT_TTL = 10.0  # a heartbeat older than this means the worker is gone
HEARTBEAT_EVERY = 2.0


def _prefix() -> str:
    # Pub/sub channels are shared by every database of a Redis server, and tests run
    # one RabbitMQ vhost each: the vhost keeps installations and tests apart.
    return f"tte:control:{vhost_name()}"


def heartbeat_key(slug: str) -> str:
    return f"{_prefix()}:workers:{slug}"


def skip_channel(slug: str) -> str:
    return f"{_prefix()}:skip:{slug}"


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


@functools.lru_cache(maxsize=256)
def can_skip(service_class: str) -> bool:
    """True when the class overrides ``cancel_current`` (an unloadable class cannot).

    Cached: the control room asks every second, and a module that fails to import is not
    cached by Python itself."""
    from project.queue_system.service_loader import load_service_class

    try:
        cls = load_service_class(service_class)
    except Exception:
        return False
    return getattr(cls, "cancel_current", None) is not BaseQueueService.cancel_current


def set_paused(service, paused: bool) -> None:
    """Persist the flag, then tell the workers (best effort: they re-read it every few seconds)."""
    from project.queue_system.models import Service

    Service.objects.filter(pk=service.pk).update(paused=paused)
    service.paused = paused
    notify_workers(service.slug)


def notify_workers(slug: str) -> None:
    from project.celery import app

    try:
        # On a connection and producer of its own, as app.control.broadcast would send it: the
        # app's producer pool belongs to whoever configured the app (a test closes it).
        with app.connection_for_write() as connection:
            mailbox = app.control.mailbox(connection)
            mailbox._producer_pool = None
            mailbox._broadcast(PAUSE_COMMAND, {"slug": slug}, None, False, 1.0)
    except Exception as exc:  # the workers' own re-read applies it a few seconds later
        logger.warning("could not broadcast the pause change", extra={"service": slug, "error": str(exc)[:200]})


def request_skip(slug: str) -> int:
    """Publish a skip request; the number of worker processes that heard it."""
    client = redis_client()
    try:
        return int(client.publish(skip_channel(slug), json.dumps({"at": time.time()})))
    finally:
        client.close()


def write_heartbeat(client: redis.Redis, slug: str, node: str, consuming: bool) -> None:
    key = heartbeat_key(slug)
    pipe = client.pipeline()
    pipe.hset(key, node, json.dumps({"at": time.time(), "consuming": consuming}))
    pipe.expire(key, int(HEARTBEAT_TTL * 6))
    pipe.execute()


def remove_heartbeat(client: redis.Redis, slug: str, node: str) -> None:
    client.hdel(heartbeat_key(slug), node)


def read_heartbeats(client: redis.Redis, slugs: list[str]) -> dict[str, list[dict]]:
    """slug → the live workers' heartbeats (node, consuming, age in seconds)."""
    pipe = client.pipeline()
    for slug in slugs:
        pipe.hgetall(heartbeat_key(slug))
    now = time.time()
    result: dict[str, list[dict]] = {}
    for slug, raw in zip(slugs, pipe.execute(), strict=True):
        beats = []
        for node, value in (raw or {}).items():
            try:
                data = json.loads(value)
            except ValueError:
                continue
            age = now - float(data.get("at", 0))
            if age <= HEARTBEAT_TTL:
                beats.append({"node": node.decode(), "consuming": bool(data.get("consuming")), "age": age})
        result[slug] = sorted(beats, key=lambda b: b["node"])
    return result
