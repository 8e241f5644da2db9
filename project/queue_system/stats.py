"""Per-service statistics: QueueItem counts, broker depths, busy ASYNC threads.

``service_stats()`` is what ``run_queue_workers`` and ``start_event_system``
print every 30 s (``format_stats``) and what the admin shows. Counts come from
PostgreSQL in one query; depths from the RabbitMQ management API (refreshed by
the broker every few seconds), or from exact AMQP passive declares when the API
is unreachable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Q

from project.queue_system import queues
from project.queue_system.broker import (
    CONNECTION_ERRORS,
    BrokerError,
    Management,
    QueueDepth,
    close_quietly,
    open_connection,
    passive_counts,
)
from project.queue_system.models import QueueItem, Service

Status = QueueItem.Status


@dataclass
class ServiceStats:
    slug: str
    name: str
    mode: str
    concurrency: int
    max_queue_size: int
    is_active: bool
    pending: int = 0
    processing: int = 0
    completed: int = 0
    failed: int = 0
    discarded: int = 0
    # Queue name → depth: svc.<slug> first, then each svc.<slug>.discardable.<T>.
    queues: dict[str, QueueDepth] = field(default_factory=dict)
    broker_error: str = ""

    @property
    def busy_threads(self) -> int | None:
        """ASYNC only: items being processed right now, i.e. pool threads in use."""
        return self.processing if self.mode == Service.Mode.ASYNC else None

    @property
    def main_depth(self) -> int | None:
        depth = self.queues.get(queues.main_queue_name(self.slug))
        return depth.ready if depth else None

    @property
    def discardable_depths(self) -> dict[str, int]:
        prefix = queues.discardable_queue_name(self.slug, "")
        return {name[len(prefix) :]: d.ready for name, d in self.queues.items() if name.startswith(prefix)}


def service_stats(
    slugs: list[str] | None = None, *, since: datetime | None = None, broker: bool = True
) -> list[ServiceStats]:
    """Statistics of every service (or ``slugs``); completed/failed/discarded count the items
    that ended since ``since`` (a backlog older than the workers counts once it is done)."""
    services = list(Service.objects.order_by("name").filter(**({"slug__in": slugs} if slugs else {})))
    recent = Q(finished_at__gte=since) if since else Q()
    counts = {
        row["service_id"]: row
        for row in QueueItem.objects.filter(service__in=services)
        .values("service_id")
        .annotate(
            pending=Count("id", filter=Q(status=Status.PENDING)),
            processing=Count("id", filter=Q(status=Status.PROCESSING)),
            completed=Count("id", filter=Q(status=Status.COMPLETED) & recent),
            failed=Count("id", filter=Q(status=Status.FAILED) & recent),
            discarded=Count("id", filter=Q(status=Status.DISCARDED) & recent),
        )
    }
    result = []
    for service in services:
        row = counts.get(service.pk, {})
        result.append(
            ServiceStats(
                slug=service.slug,
                name=service.name,
                mode=service.mode,
                concurrency=service.worker_concurrency,
                max_queue_size=service.max_queue_size,
                is_active=service.is_active,
                **{k: row.get(k, 0) for k in ("pending", "processing", "completed", "failed", "discarded")},
            )
        )
    if broker and result:
        _add_depths(result)
    return result


def _add_depths(stats: list[ServiceStats]) -> None:
    try:
        depths = Management().queue_depths(prefix="svc.")
    except BrokerError as exc:
        depths = _passive_depths(stats, exc)
        if depths is None:
            return
    for entry in stats:
        main = queues.main_queue_name(entry.slug)
        discardable = queues.discardable_queue_name(entry.slug, "")
        names = sorted(n for n in depths if n == main or n.startswith(discardable))
        entry.queues = {n: depths[n] for n in sorted(names, key=lambda n: (n != main, n))}


def _passive_depths(stats: list[ServiceStats], cause: Exception) -> dict[str, QueueDepth] | None:
    from project.queue_system.models import ServiceEventConfig

    names = [queues.main_queue_name(s.slug) for s in stats]
    for slug, event_type in ServiceEventConfig.objects.filter(
        service__slug__in=[s.slug for s in stats], discardable=True
    ).values_list("service__slug", "event_type"):
        names.append(queues.discardable_queue_name(slug, event_type))
    try:
        connection = open_connection()
    except BrokerError as exc:
        for entry in stats:
            entry.broker_error = str(exc)
        return None
    try:
        counts = passive_counts(connection, names)
    except CONNECTION_ERRORS as exc:
        for entry in stats:
            entry.broker_error = f"{cause}; {exc}"
        return None
    finally:
        close_quietly(connection)
    return {name: QueueDepth(name, c[0], 0, c[1]) for name, c in counts.items() if c is not None}


def format_stats(stats: list[ServiceStats]) -> str:
    """The seeds' statistics block, one paragraph per service."""
    lines = []
    for entry in stats:
        mark = "🟢" if entry.is_active else "⚪"
        lines.append(f"{mark} {entry.name} ({entry.mode}{f' ×{entry.concurrency}' if entry.mode == 'ASYNC' else ''})")
        lines.append(f"  • Pending: {entry.pending}")
        lines.append(f"  • Processing: {entry.processing}")
        if entry.busy_threads is not None:
            lines.append(f"  • Async threads busy: {entry.busy_threads}/{entry.concurrency}")
        lines.append(f"  • Completed: {entry.completed} · Failed: {entry.failed} · Discarded: {entry.discarded}")
        if entry.broker_error:
            lines.append(f"  • Broker: unavailable ({entry.broker_error})")
        elif entry.queues:
            main = entry.main_depth
            lines.append(f"  • Queue {queues.main_queue_name(entry.slug)}: {main if main is not None else '-'}")
            for event_type, depth in entry.discardable_depths.items():
                lines.append(f"  • Discardable {event_type}: {depth}/{entry.max_queue_size}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
