"""The two tasks a service worker runs from ``svc.<slug>``.

Both are acks_late + reject_on_worker_lost (a killed worker's message is
redelivered) and retry only on ``TransientError`` raised by the service. A
database or broker fault around an item is not its failure: the worker waits
for the database, then rejects the message with requeue, so it goes back to its
queue with its priority and is redelivered (``redelivered`` lets the claim take
over the item the failed attempt left ``processing``).
"""

from __future__ import annotations

import logging
import time

from celery.exceptions import Reject, Retry

from project.celery import app

TASK_OPTIONS = {"acks_late": True, "reject_on_worker_lost": True, "max_retries": None, "ignore_result": True}

logger = logging.getLogger("queue.events")
REQUEUE_PAUSE = 1.0


def _requeue(fault: Exception, what: str) -> Reject:
    from project.queue_system.infrastructure import wait_for_database

    logger.warning(f"⚠️ {what}: {fault}; its message goes back to the queue once the database answers")
    time.sleep(REQUEUE_PAUSE)  # a broker fault with the database up must not turn into a hot loop
    wait_for_database()
    return Reject(str(fault), requeue=True)


def _retry(task, countdown: float | None, what: str) -> None:
    """``task.retry``; when the retry cannot be published, this message goes back to the queue instead.

    (Celery rejects it *without* requeue then, which would leave the item pending for good.)
    """
    try:
        raise task.retry(countdown=countdown)
    except Retry:
        raise
    except Exception as exc:
        raise Reject(f"the retry of {what} was not published: {exc}", requeue=True) from exc


@app.task(bind=True, name="tasks.process_event", **TASK_OPTIONS)
def process_event(self, queue_item_id: int) -> str:
    """Run one non-discardable QueueItem through its service."""
    from project.queue_system.infrastructure import InfrastructureFault
    from project.queue_system.processing import run_item

    delivery = self.request.delivery_info or {}
    try:
        outcome = run_item(
            int(queue_item_id), redelivered=bool(delivery.get("redelivered")), queue=delivery.get("routing_key", "")
        )
    except InfrastructureFault as fault:
        raise _requeue(fault, f"item {queue_item_id}") from fault
    if outcome.status == "retry":
        # Same queue and priority (Celery copies them from delivery_info); the
        # attempt count lives on the QueueItem, which bounds the retries.
        _retry(self, outcome.retry_after, f"item {queue_item_id}")
    return outcome.status


@app.task(bind=True, name="tasks.drain", **TASK_OPTIONS)
def drain(self, service_slug: str, event_type: str) -> str:
    """A drain ticket: process the oldest waiting discardable event of the type, then pass the ticket on."""
    from project.queue_system.drain import drain_one
    from project.queue_system.infrastructure import InfrastructureFault

    try:
        outcome = drain_one(service_slug, event_type)
    except InfrastructureFault as fault:
        raise _requeue(fault, f"drain ticket {service_slug}/{event_type}") from fault
    if outcome is None:
        return "empty"
    if outcome.status == "retry":
        _retry(self, outcome.retry_after, f"drain ticket {service_slug}/{event_type}")
    return outcome.status
