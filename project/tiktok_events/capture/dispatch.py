"""The one door from the capture to the queue system.

``write_and_dispatch`` stores a batch and creates its QueueItems in the *same
transaction*, then publishes them once it has committed. So a crash can never
leave an event stored without its QueueItems, and anything stored but not
confirmed by the broker stays ``pending`` with no ``dispatched_at`` — exactly
what ``manage.py redispatch_pending`` publishes again.

(``EventDispatcher.dispatch_many`` called inside a transaction would defer the
publishing to the commit too, but it then reloads the items without their
services, one query per item; creating and publishing separately keeps a
batch at a handful of queries.)
"""

from __future__ import annotations

import threading
import time

from django.db import transaction

from project.tiktok_events.capture.batches import WriteBatch, WriteResult
from project.tiktok_events.capture.store import write_batch

_local = threading.local()


def _dispatcher():
    # One dispatcher (one publishing connection) per writer thread or process.
    dispatcher = getattr(_local, "dispatcher", None)
    if dispatcher is None:
        from project.queue_system.dispatcher import EventDispatcher

        dispatcher = _local.dispatcher = EventDispatcher()
    return dispatcher


def _create_items(dispatcher, events: list) -> list:
    # The dispatcher's routing (active services, enabled configs, priority and
    # discardable copied onto each item); its public name first if it has one.
    create = getattr(dispatcher, "create_items", None) or dispatcher._create_items
    return create(events)


def write_and_dispatch(batch: WriteBatch) -> WriteResult:
    """Store the batch with its QueueItems (one transaction), then publish the items."""
    dispatcher = _dispatcher()
    with transaction.atomic():
        ids, events = write_batch(batch)
        items = _create_items(dispatcher, events) if events else []
    result = WriteResult(ids=ids, dispatched_events=len(events), items_created=len(items))
    if items:
        outcome = dispatcher.publish_items(items)
        result.items_unconfirmed = outcome.pending
        result.error = outcome.error
    result.confirmed_at = time.time()
    return result


def close() -> None:
    dispatcher = getattr(_local, "dispatcher", None)
    if dispatcher is not None:
        dispatcher.close()
        _local.dispatcher = None
