# Design: docs/architecture.md#guarantees
"""After a broker restart: the discardable items whose transient message it dropped end discarded.

Discardable messages (likes, chat, joins, shares) are transient
(``task_messages.discardable_message``), so a RabbitMQ restart drops the ones
still queued. Their items must not stay ``pending`` for ever: they end
``discarded`` with the reason "broker restarted". Gifts, follows and
subscriptions are persistent tasks in durable queues and are not touched.

How a restart is seen: ``tte.broker-epoch`` is a queue that is not durable; a
restart removes it. Every process that publishes checks for it on each new
connection *before* its first publish (``EventDispatcher.connect``), and so do
``declare_all`` and the workers' watchdog. The first to find it missing marks
the items dispatched (confirmed) before the moment it looked, then declares the
queue again. No message published to the restarted broker can be older than
that moment: every publisher looks before it publishes, and the queue exists
once one of them has finished. An item confirmed by the old broker but marked
after that moment (its marking thread lagged) is an orphan the watchdog's
recovery publishes again (``recovery.py``): it is never left pending.
"""

from __future__ import annotations

import logging

import amqp
from django.db import DatabaseError
from django.utils import timezone

from project.queue_system import queues
from project.queue_system.models import QueueItem

logger = logging.getLogger("queue.restarts")

REASON = "broker restarted"


def reconcile(connection: amqp.Connection) -> int:
    """On a new connection: when the broker restarted since the last look, mark the discardable
    items it dropped discarded and declare the epoch queue again; how many were marked."""
    from project.queue_system.discards import discard

    looked_at = timezone.now()
    channel = connection.channel()
    try:
        channel.queue_declare(queues.EPOCH_QUEUE, passive=True)
        return 0
    except amqp.exceptions.NotFound:
        pass  # the channel is closed by the broker
    finally:
        if channel.is_open:
            channel.close()
    try:
        lost = QueueItem.objects.filter(status=QueueItem.Status.PENDING, discardable=True, dispatched_at__lt=looked_at)
        marked = discard(lost, REASON)
    except DatabaseError as exc:
        # Not reconciled now: those items are orphans the workers' watchdog publishes again.
        logger.warning("could not mark the discardable items a broker restart dropped", extra={"error": str(exc)})
        marked = 0
    channel = connection.channel()
    try:
        channel.queue_declare(queues.EPOCH_QUEUE, durable=False, auto_delete=False)
    finally:
        if channel.is_open:
            channel.close()
    if marked:
        logger.warning(
            f"the broker restarted: {marked} discardable item(s) it dropped are marked discarded",
            extra={"items": marked},
        )
    return marked
