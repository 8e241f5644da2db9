"""What the admin's queue actions do, kept out of the ModelAdmin so commands and tests can call them."""

from __future__ import annotations

from dataclasses import dataclass

import amqp
from django.db.models import QuerySet
from django.utils import timezone

from project.queue_system import queues
from project.queue_system.broker import CONNECTION_ERRORS, BrokerError, close_quietly, open_connection
from project.queue_system.discards import discard
from project.queue_system.models import QueueItem, Service

Status = QueueItem.Status


@dataclass
class PurgeResult:
    messages: int = 0  # messages removed from the broker
    items: int = 0  # QueueItems marked discarded


@dataclass
class RetryResult:
    reset: int = 0  # failed items set back to pending
    published: int = 0  # of those, confirmed by the broker
    error: str = ""


def purge_discardable(service: Service) -> PurgeResult:
    """Empty every discardable queue of ``service`` and mark what was waiting there discarded.

    A purge does not dead-letter, so the discard accounting never hears of these
    messages: the items are marked here. Only items published before the purge
    began are touched; one a drain took a moment earlier finds its item discarded
    and skips it (a claim needs ``pending``).
    """
    started = timezone.now()
    types = service.event_configs.filter(discardable=True).values_list("event_type", flat=True)
    names = [queues.discardable_queue_name(service.slug, t) for t in types]
    result = PurgeResult()
    connection = open_connection()
    try:
        channel = connection.channel()
        for name in names:
            if not channel.is_open:
                channel = connection.channel()
            try:
                result.messages += channel.queue_purge(name) or 0
            except amqp.exceptions.NotFound:
                continue  # never declared: nothing waits there
    except CONNECTION_ERRORS as exc:
        raise BrokerError(f"purge of {service.slug}'s discardable queues failed: {exc}") from exc
    finally:
        close_quietly(connection)
    result.items = discard(
        QueueItem.objects.filter(service=service, discardable=True, status=Status.PENDING, dispatched_at__lte=started),
        "purged from the admin",
    )
    return result


def retry_failed(queryset: QuerySet[QueueItem]) -> RetryResult:
    """Set the failed items of ``queryset`` back to pending (a fresh attempt budget) and publish them."""
    from project.queue_system.dispatcher import EventDispatcher

    ids = list(queryset.filter(status=Status.FAILED).values_list("pk", flat=True))
    result = RetryResult()
    if not ids:
        return result
    result.reset = QueueItem.objects.filter(pk__in=ids, status=Status.FAILED).update(
        status=Status.PENDING,
        error="",
        attempts=0,
        dispatched_at=None,
        started_at=None,
        finished_at=None,
        updated_at=timezone.now(),
    )
    dispatcher = EventDispatcher()
    try:
        published = dispatcher.publish_items(QueueItem.objects.filter(pk__in=ids).select_related("service"))
    finally:
        dispatcher.close()
    result.published, result.error = published.confirmed, published.error
    return result
