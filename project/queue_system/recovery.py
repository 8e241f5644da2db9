# Design: docs/architecture.md#guarantees
"""Items whose message can no longer be in flight go back through their queue.

An item is ``pending`` (dispatched) or ``processing`` while its message waits
in the broker or is held by the service's worker. If the message is gone — the
worker's process died after the broker had its ack, an operator purged a queue,
a message was lost between a crash and its confirm — nothing would ever run
the item. Such an item is *orphaned*; this module finds orphans and publishes
them again, with their priority, through the dispatcher.

The evidence that no message exists is the drain watchdog's (workers/watchdog.py):

- at a worker's start, nobody else consumes ``svc.<slug>`` and it holds no
  ready message; in a running worker, the worker also ran and held no task for
  a whole check interval (a message in its queue would have been delivered);
- for a discardable type, its queue holds no ready message either, and neither
  does ``events.discarded`` (a dropped message not yet accounted as discarded).

Then every item of the service dispatched and last changed before the start of
that evidence, and still pending or processing, is an orphan. Items created
before then and never published at all (the broker was away, and the process
that created them stopped or gave up before it was back) are *stranded*; they
are published too, since no message of theirs can exist. A wrong guess
would only publish a duplicate message, which the claim rules make harmless
(a duplicate of a pending item runs it once; of anything else, it is skipped).
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import connection
from django.utils import timezone

from project.queue_system import queues
from project.queue_system.models import QueueItem
from project.queue_system.sql import array_literal

logger = logging.getLogger("queue.recovery")

Status = QueueItem.Status

# Orphans become undispatched pending items; redispatch_pending then publishes them.
RESET_SQL = f"""
UPDATE {QueueItem._meta.db_table}
SET status = %(pending)s, dispatched_at = NULL, updated_at = %(now)s,
    error = 'its message was lost (' || status || ' since ' || to_char(updated_at, 'HH24:MI:SS') || '): published again'
WHERE service_id = %(service_id)s
  AND status IN (%(pending)s, %(processing)s)
  AND dispatched_at < %(before)s AND updated_at < %(before)s
  AND (NOT discardable OR event_type = ANY(%(types)s::text[]))
RETURNING id
"""  # noqa: S608 - the table name comes from the model


def reset_orphans(service_id: int, *, before: datetime, discardable_types: list[str]) -> list[int]:
    """Make the orphans of one service undispatched again; their ids."""
    params = {
        "pending": Status.PENDING,
        "processing": Status.PROCESSING,
        "now": timezone.now(),
        "service_id": service_id,
        "before": before,
        "types": array_literal(discardable_types),
    }
    with connection.cursor() as cursor:
        cursor.execute(RESET_SQL, params)
        return [row[0] for row in cursor.fetchall()]


def recover(slug: str, *, before: datetime, discardable_types: list[str], dispatcher=None) -> int:
    """Publish again the orphans of a service (see the module doc for when it is safe), and publish its
    stranded items: pending since before ``before`` and never published (the broker was away when
    they were created, and the process that created them did not get to publish them later).
    Returns how many items it published or tried to."""
    from project.queue_system.dispatcher import redispatch_pending
    from project.queue_system.models import Service

    service_id = Service.objects.filter(slug=slug).values_list("pk", flat=True).first()
    if service_id is None:
        return 0
    stranded = QueueItem.objects.filter(
        service_id=service_id, status=Status.PENDING, dispatched_at__isnull=True, created_at__lt=before
    ).count()
    ids = reset_orphans(service_id, before=before, discardable_types=discardable_types)
    if not ids and not stranded:
        return 0
    if ids:
        logger.warning(
            f"♻️ {len(ids)} item(s) of {slug} had lost their message: publishing them again",
            extra={"service": slug, "items": ids[:20]},
        )
    if stranded:
        logger.warning(
            f"♻️ {stranded} item(s) of {slug} were never published (the broker was away): publishing them now",
            extra={"service": slug},
        )
    # Only what was reset or stranded: not the items a capture is publishing at this moment.
    result = redispatch_pending([slug], created_before=before, dispatcher=dispatcher)
    if result.error:
        # They stay undispatched: the next pass, or the worker's next start, publishes them.
        logger.warning(f"could not publish the recovered items of {slug}: {result.error}", extra={"service": slug})
    return len(ids) + stranded


def recover_idle(topology, counts: dict, *, before: datetime) -> int:
    """Recover a service whose main queue was found empty with nothing in flight since ``before``.

    ``counts``: passive (ready, consumers) of its discardable queues and of
    ``events.discarded``; a discardable type qualifies only while its queue and
    the discarded queue are empty (a dropped message may await its accounting).
    """
    discarded = counts.get(queues.DISCARDED_QUEUE)
    types = []
    if discarded is None or discarded[0] == 0:
        for event_type in topology.discardable_types:
            waiting = counts.get(queues.discardable_queue_name(topology.slug, event_type))
            if waiting is None or waiting[0] == 0:
                types.append(event_type)
    return recover(topology.slug, before=before, discardable_types=types)


def recover_at_start(service) -> int:
    """At a worker's start: recover when nobody consumes the service's queue and it is empty.

    The previous worker's unacked messages are back in the queue once its
    connection is gone, so an empty queue with no consumer holds no message of
    any pending or processing item, and no drain ticket either: the drain tokens
    left (a purge or a crash took their tickets) are stale. They are purged first,
    and each type with events waiting is armed again, so the discardable items
    recovered here are drained at once, not after the watchdog's next passes.
    """
    from project.queue_system.broker import passive_counts
    from project.queue_system.drain import BrokerLink, repair
    from project.queue_system.topology import service_topology

    topology = service_topology(service)
    before = timezone.now()
    current = BrokerLink()
    try:
        main = queues.main_queue_name(topology.slug)
        counts = passive_counts(
            current.connection, queues.evidence_queue_names(topology.slug, topology.discardable_types)
        )
        main_counts = counts.get(main)
        if main_counts is not None and (main_counts[0] or main_counts[1]):
            return 0  # messages or another consumer: the running worker's watchdog decides later
        for event_type in topology.discardable_types:
            repair(current, topology.slug, event_type, topology.tickets, counts, no_ticket_out=True)
    finally:
        current.close()
    return recover_idle(topology, counts, before=before)
