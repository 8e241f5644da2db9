# Design: docs/architecture.md#queue-topology
"""The one registry of queue names and arguments; everything else is generated from it.

Per service ``s`` (see "Queue topology" in docs/architecture.md):

- ``svc.s`` — the only queue the Celery worker of ``s`` consumes: durable,
  ``x-max-priority: 10``, no length limit. Holds every non-discardable task and
  the drain tickets.
- ``svc.s.discardable.<EventType>`` — one FIFO per discardable event type, never
  consumed by Celery; a policy gives it max-length / drop-head / dead-lettering.
- ``svc.s.armed.<EventType>`` — the arming queue: at most K tokens
  (``x-max-length`` K, ``x-overflow: reject-publish``); a confirmed token is the
  right to have one drain ticket for that type in ``svc.s``.

Shared: the ``events`` direct exchange (routing key = queue name) and the
``events.discarded`` fanout exchange + queue that receive what the policies drop;
``tte.broker-epoch``, a queue that is not durable: its absence tells that the broker
restarted since it was declared (``restarts.py``).

This module imports nothing from Django models so ``project.celery`` can use it
before Django is set up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from kombu import Exchange, Queue

EXCHANGE = "events"
DISCARDED_EXCHANGE = "events.discarded"
DISCARDED_QUEUE = "events.discarded"
MAX_PRIORITY = 10
# "tte." (TikTok Live Events) names the policies this project puts, so they are told from
# others on a shared broker and never matched by another project's pattern.
POLICY_PREFIX = "tte."
# Not durable, never holds a message: a broker restart removes it (see restarts.py).
EPOCH_QUEUE = "tte.broker-epoch"

# Arguments of each kind of queue. Changing one is a migration: RabbitMQ refuses
# to redeclare an existing queue with other arguments (PRECONDITION_FAILED).
MAIN_QUEUE_ARGUMENTS = {"x-max-priority": MAX_PRIORITY}
DISCARDABLE_QUEUE_ARGUMENTS: dict[str, object] = {}


def main_queue_name(slug: str) -> str:
    return f"svc.{slug}"


def discardable_queue_name(slug: str, event_type: str) -> str:
    return f"svc.{slug}.discardable.{event_type}"


def arm_queue_name(slug: str, event_type: str) -> str:
    return f"svc.{slug}.armed.{event_type}"


def evidence_queue_names(slug: str, discardable_types: Iterable[str]) -> list[str]:
    """The queues whose depths tell whether a service has a message or a ticket anywhere (the
    recovery's and the drain repair's evidence): ``svc.<slug>`` first, ``events.discarded``,
    and each discardable type's queue and token queue."""
    names = [main_queue_name(slug), DISCARDED_QUEUE]
    for event_type in discardable_types:
        names += [discardable_queue_name(slug, event_type), arm_queue_name(slug, event_type)]
    return names


def arm_queue_arguments(tickets: int) -> dict[str, object]:
    """K tokens at most; the (K+1)th publish is nacked, which is how "already armed" is read."""
    return {"x-max-length": tickets, "x-overflow": "reject-publish"}


def discardable_policy_name(slug: str) -> str:
    return f"{POLICY_PREFIX}svc.{slug}.discardable"


def discardable_policy_pattern(slug: str) -> str:
    # Slugs cannot contain dots, so this never matches another service's queues.
    return rf"^svc\.{re.escape(slug)}\.discardable\."


def discardable_policy_definition(max_queue_size: int) -> dict[str, object]:
    return {
        "max-length": max_queue_size,
        # drop-head: the oldest waiting chat/like is dropped, fresh ones win.
        "overflow": "drop-head",
        "dead-letter-exchange": DISCARDED_EXCHANGE,
    }


def events_exchange() -> Exchange:
    return Exchange(EXCHANGE, type="direct", durable=True)


def main_queue(slug: str) -> Queue:
    """The kombu Queue a worker consumes; identical to what topology declares."""
    name = main_queue_name(slug)
    return Queue(
        name,
        exchange=events_exchange(),
        routing_key=name,
        durable=True,
        queue_arguments=dict(MAIN_QUEUE_ARGUMENTS),
    )


def worker_queues(slugs: str | list[str]) -> list[Queue]:
    """kombu Queues for a comma-separated list (or list) of service slugs."""
    if isinstance(slugs, str):
        slugs = [s.strip() for s in slugs.split(",")]
    return [main_queue(slug) for slug in slugs if slug]
