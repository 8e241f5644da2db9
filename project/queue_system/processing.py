"""Running one QueueItem through its service: claim, call ``process_event``, record the outcome.

Shared by the ``process_event`` task (non-discardable items) and the drain
ticket (discardable items), so both behave the same: status
``processing`` → ``completed`` | ``failed`` with timings and the error text, a
``TransientError`` retried a bounded number of times, and a redelivered or
duplicate message never runs a finished item again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db.models import F, Q
from django.utils import timezone

from project.queue_system import runtime
from project.queue_system.base_service import TransientError
from project.queue_system.models import QueueItem

logger = logging.getLogger("queue.events")

# Attempts (the first one included) before a transient error fails the item for good.
MAX_ATTEMPTS = 5
DEFAULT_RETRY_AFTER = 2.0

Status = QueueItem.Status


@dataclass
class Outcome:
    status: str  # a QueueItem status, or "skipped" / "retry"
    item: QueueItem | None = None
    retry_after: float | None = None
    detail: str = ""


def claim(queue_item_id: int, *, redelivered: bool) -> QueueItem | None:
    """Mark the item processing and return it, or None when it must not run.

    A pending item is claimed. An item already ``processing`` is taken over only
    by a *redelivered* message: the broker redelivers when the worker that held
    it died, whereas a fresh duplicate (a re-dispatch whose first confirm was
    lost) must not run it a second time beside the first.
    """
    allowed = Q(status=Status.PENDING) | Q(status=Status.PROCESSING) if redelivered else Q(status=Status.PENDING)
    now = timezone.now()
    claimed = QueueItem.objects.filter(allowed, pk=queue_item_id).update(
        status=Status.PROCESSING, started_at=now, finished_at=None, attempts=F("attempts") + 1, updated_at=now
    )
    if not claimed:
        return None
    return QueueItem.objects.select_related("live_event", "service").get(pk=queue_item_id)


def run_item(queue_item_id: int, *, redelivered: bool = False, queue: str = "") -> Outcome:
    item = claim(queue_item_id, redelivered=redelivered)
    if item is None:
        # Missing (deleted with its event) or already handled: a duplicate
        # delivery is acked as a no-op.
        current = QueueItem.objects.filter(pk=queue_item_id).values_list("status", flat=True).first()
        detail = f"item {queue_item_id} is {current or 'gone'}; delivery ignored"
        logger.info(detail, extra={"queue_item": queue_item_id, "queue": queue})
        return Outcome("skipped", detail=detail)

    extra = {"service": item.service.slug, "event_id": item.live_event_id, "queue_item": item.pk, "queue": queue}
    label = f"[{item.service.name}] {item.event_type} (P:{item.priority})"
    try:
        service = runtime.service_instance(item.service)
        result = service.process_event(item.live_event, item)
    except TransientError as exc:
        if item.attempts >= MAX_ATTEMPTS:
            return _finish(item, Status.FAILED, f"gave up after {item.attempts} attempts: {exc}", label, extra)
        retry_after = exc.retry_after if exc.retry_after is not None else DEFAULT_RETRY_AFTER * item.attempts
        QueueItem.objects.filter(pk=item.pk).update(
            status=Status.PENDING, error=f"attempt {item.attempts} failed, retrying: {exc}", updated_at=timezone.now()
        )
        logger.warning(f"🔁 {label} will be retried in {retry_after:.1f}s: {exc}", extra=extra)
        return Outcome("retry", item, retry_after=retry_after, detail=str(exc))
    except Exception as exc:
        logger.exception(f"❌ {label} raised", extra=extra)
        return _finish(item, Status.FAILED, f"{type(exc).__name__}: {exc}", label, extra)

    if result is True:
        return _finish(item, Status.COMPLETED, "", label, extra)
    reason = "process_event returned False" if result is False else f"process_event returned {result!r}, not True"
    return _finish(item, Status.FAILED, reason, label, extra)


def _finish(item: QueueItem, status: str, error: str, label: str, extra: dict) -> Outcome:
    now = timezone.now()
    QueueItem.objects.filter(pk=item.pk).update(status=status, error=error[:5000], finished_at=now, updated_at=now)
    item.status, item.error, item.finished_at = status, error, now
    if status == Status.COMPLETED:
        logger.info(f"✅ {label} completed", extra=extra)
    else:
        logger.warning(f"❌ {label} failed: {error}", extra=extra)
    return Outcome(status, item, detail=error)
