# Design: docs/architecture.md#drain-tickets-and-tokens
"""Celery task messages (protocol 2) built for publishing on a raw py-amqp channel.

The dispatcher publishes a batch of tasks and then waits for all their
publisher confirms at once, which ``apply_async`` cannot do (it waits for each
confirm in turn). The headers, properties and body come from Celery's own
``app.amqp.as_task_v2``, so the worker decodes them exactly like a message sent
by ``apply_async``.
https://docs.celeryq.dev/en/stable/internals/protocol.html#version-2
"""

from __future__ import annotations

import json
import uuid

import amqp
from celery.utils.nodenames import anon_nodename

PROCESS_EVENT_TASK = "tasks.process_event"
DRAIN_TASK = "tasks.drain"

_ORIGIN = anon_nodename()


def celery_task_message(task_name: str, args: list, priority: int, *, persistent: bool = True) -> amqp.Message:
    """A Celery task message carrying ``args`` at ``priority`` (0–10, higher first on RabbitMQ);
    ``persistent``: it survives a broker restart in its durable queue."""
    from project.celery import app

    task_id = str(uuid.uuid4())
    headers, properties, body, _ = app.amqp.as_task_v2(
        task_id,
        task_name,
        args=args,
        argsrepr=repr(args),
        kwargsrepr="{}",
        origin=_ORIGIN,
        ignore_result=True,
    )
    return amqp.Message(
        json.dumps(body),
        content_type="application/json",
        content_encoding="utf-8",
        application_headers=headers,
        delivery_mode=2 if persistent else 1,
        priority=priority,
        correlation_id=properties["correlation_id"],
        reply_to=properties["reply_to"],
    )


def process_event_message(queue_item_id: int, priority: int) -> amqp.Message:
    return celery_task_message(PROCESS_EVENT_TASK, [queue_item_id], priority)


def drain_ticket_message(slug: str, event_type: str, priority: int) -> amqp.Message:
    """Transient, like the discardable messages it drains (a broker restart drops both, and the
    tokens): the broker confirms it without a disk write, so a drain that passes its ticket on
    does not wait for the disk (under live_load.py's load, ≈ 60 ms a ticket for a SYNC worker,
    whose gifts waited behind them)."""
    return celery_task_message(DRAIN_TASK, [slug, event_type], priority, persistent=False)


def discardable_message(queue_item_id: int, event_type: str, priority: int) -> amqp.Message:
    """What waits in ``svc.<slug>.discardable.<T>``: read by a drain ticket or, when dropped, the discard consumer.

    Transient (delivery mode 1): the broker keeps it in memory and confirms it without
    a disk write, about 1.5× its persistent rate. A broker restart drops the ones still
    queued; their items are then marked discarded, "broker restarted" (``restarts.py``).
    """
    return amqp.Message(
        json.dumps({"queue_item_id": queue_item_id, "event_type": event_type, "priority": priority}),
        content_type="application/json",
        delivery_mode=1,
    )


def queue_item_id_of(body: bytes | str) -> int | None:
    """The queue item id in a discardable message body; None for a body that is not ours."""
    try:
        data = json.loads(body)
        return int(data["queue_item_id"])
    except (ValueError, TypeError, KeyError):
        return None
