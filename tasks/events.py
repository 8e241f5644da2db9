"""The two tasks a service worker runs from ``svc.<slug>``.

Both are acks_late + reject_on_worker_lost (a killed worker's message is
redelivered) and retry only on ``TransientError`` raised by the service.
"""

from __future__ import annotations

from project.celery import app

TASK_OPTIONS = {"acks_late": True, "reject_on_worker_lost": True, "max_retries": None, "ignore_result": True}


@app.task(bind=True, name="tasks.process_event", **TASK_OPTIONS)
def process_event(self, queue_item_id: int) -> str:
    """Run one non-discardable QueueItem through its service."""
    from project.queue_system.processing import run_item

    delivery = self.request.delivery_info or {}
    outcome = run_item(
        int(queue_item_id), redelivered=bool(delivery.get("redelivered")), queue=delivery.get("routing_key", "")
    )
    if outcome.status == "retry":
        # Same queue and priority (Celery copies them from delivery_info); the
        # attempt count lives on the QueueItem, which bounds the retries.
        raise self.retry(countdown=outcome.retry_after)
    return outcome.status


@app.task(bind=True, name="tasks.drain", **TASK_OPTIONS)
def drain(self, service_slug: str, event_type: str) -> str:
    """A drain ticket: process the oldest waiting discardable event of the type, then pass the ticket on."""
    from project.queue_system.drain import drain_one

    result = drain_one(service_slug, event_type)
    if result.outcome is None:
        return "empty"
    if result.outcome.status == "retry":
        raise self.retry(countdown=result.outcome.retry_after)
    return result.outcome.status
