"""Admin of the queue system: services with their event table, queue items, live broker depths.

Saving a service (or its inline event configurations) re-declares its queues and
re-puts its max-length policy at once, so a new ``max_queue_size`` bounds the live
discardable queues without restarting anything. Deleting a service keeps its
queues: only ``manage.py delete_service_queues`` removes them.
"""

from __future__ import annotations

import time

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from project.queue_system import admin_actions, topology
from project.queue_system.broker import BrokerError, Management, QueueDepth
from project.queue_system.models import QueueItem, Service, ServiceEventConfig
from project.queue_system.queues import discardable_queue_name, main_queue_name

# The management API refreshes its counters every ~5 s: one call serves a whole page.
DEPTH_CACHE_SECONDS = 2.0
_depth_cache: tuple[float, str, dict[str, QueueDepth] | str] | None = None


def broker_depths() -> dict[str, QueueDepth] | str:
    """Depths of every ``svc.*`` queue, or the reason they cannot be read."""
    global _depth_cache
    management = Management()
    now = time.monotonic()
    if _depth_cache and _depth_cache[1] == management.vhost and now - _depth_cache[0] < DEPTH_CACHE_SECONDS:
        return _depth_cache[2]
    try:
        result: dict[str, QueueDepth] | str = management.queue_depths(prefix="svc.")
    except BrokerError as exc:
        result = str(exc)
    _depth_cache = (now, management.vhost, result)
    return result


def service_queue_depths(service: Service) -> list[tuple[str, str]]:
    """(queue, depth text) for the main queue and each discardable queue of a service."""
    depths = broker_depths()
    if isinstance(depths, str):
        return [("broker", f"unavailable: {depths}")]
    main = main_queue_name(service.slug)
    rows = [(main, str(depths[main].ready) if main in depths else "not declared yet")]
    for event_type in (
        service.event_configs.filter(discardable=True).order_by("-priority").values_list("event_type", flat=True)
    ):
        name = discardable_queue_name(service.slug, event_type)
        depth = f"{depths[name].ready}/{service.max_queue_size}" if name in depths else "not declared yet"
        rows.append((name, depth))
    return rows


class ServiceEventConfigInline(admin.TabularInline):
    model = ServiceEventConfig
    extra = 1
    fields = ["event_type", "enabled", "priority", "discardable", "guest_gifts"]


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "slug",
        "mode",
        "concurrency",
        "max_queue_size",
        "is_active",
        "event_config_count",
        "queue_depths",
    ]
    list_filter = ["mode", "is_active"]
    search_fields = ["name", "slug", "service_class"]
    inlines = [ServiceEventConfigInline]
    readonly_fields = ["broker_queues"]
    actions = ["purge_discardable_queues"]
    fieldsets = [
        (None, {"fields": ["name", "slug", "service_class", "is_active"]}),
        ("Processing", {"fields": ["mode", "concurrency", "max_queue_size", "time_budget_seconds"]}),
        ("Broker (live)", {"fields": ["broker_queues"]}),
    ]

    @admin.display(description="event configs")
    def event_config_count(self, obj: Service) -> int:
        return obj.event_configs.count()

    @admin.display(description="waiting in the broker")
    def queue_depths(self, obj: Service) -> str:
        rows = service_queue_depths(obj)
        return format_html_join(mark_safe("<br>"), "{}: {}", ((name.rsplit(".", 1)[-1], d) for name, d in rows))

    @admin.display(description="queues")
    def broker_queues(self, obj: Service) -> str:
        if obj.pk is None:
            return "declared when the service is saved"
        return format_html(
            "<table>{}</table>",
            format_html_join("", "<tr><td><code>{}</code></td><td>{}</td></tr>", service_queue_depths(obj)),
        )

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        service = form.instance
        try:
            topology.apply_service(service)
        except (BrokerError, topology.TopologyError) as exc:
            self.message_user(
                request,
                f"{service.name} was saved, but its queues could not be updated on RabbitMQ: {exc}. "
                "They are declared again when its worker or the capture starts.",
                messages.WARNING,
            )
        else:
            self.message_user(
                request,
                f"Queues of {service.name} updated on RabbitMQ "
                f"(discardable queues hold at most {service.max_queue_size} events each).",
                messages.INFO,
            )

    def delete_model(self, request, obj: Service) -> None:
        slug = obj.slug
        super().delete_model(request, obj)
        self.message_user(
            request,
            f"The queues of {slug} stay on RabbitMQ: python manage.py delete_service_queues {slug} --yes removes them.",
            messages.INFO,
        )

    @admin.action(description="Purge the discardable queues (waiting likes, comments...) of the selected services")
    def purge_discardable_queues(self, request, queryset: QuerySet[Service]) -> None:
        for service in queryset:
            try:
                purged = admin_actions.purge_discardable(service)
            except BrokerError as exc:
                self.message_user(request, f"{service.name}: not purged: {exc}", messages.ERROR)
                continue
            self.message_user(
                request,
                f"{service.name}: {purged.messages} waiting message(s) purged, "
                f"{purged.items} queue item(s) marked discarded.",
                messages.SUCCESS,
            )


class ModeratedFilter(admin.SimpleListFilter):
    title = "moderation"
    parameter_name = "moderated"

    def lookups(self, request, model_admin):
        return [("yes", "Filtered"), ("no", "Not filtered")]

    def queryset(self, request, queryset: QuerySet[QueueItem]) -> QuerySet[QueueItem]:
        if self.value() == "yes":
            return queryset.exclude(moderation="")
        if self.value() == "no":
            return queryset.filter(moderation="")
        return queryset


@admin.register(QueueItem)
class QueueItemAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "service",
        "event_type",
        "priority",
        "status",
        "user",
        "attempts",
        "moderation",
        "dispatched_at",
        "started_at",
        "finished_at",
    ]
    list_filter = ["service", "status", "event_type", "discardable", ModeratedFilter]
    search_fields = ["live_event__user_unique_id", "live_event__user_nickname", "live_event__user_nickname_raw"]
    list_select_related = ["service", "live_event"]
    raw_id_fields = ["live_event"]
    readonly_fields = ["moderation", "created_at", "updated_at"]
    date_hierarchy = "created_at"
    actions = ["retry_failed"]

    @admin.display(description="user", ordering="live_event__user_unique_id")
    def user(self, obj: QueueItem) -> str:
        return obj.live_event.user_nickname or obj.live_event.user_unique_id

    @admin.action(description="Retry the selected failed items")
    def retry_failed(self, request, queryset: QuerySet[QueueItem]) -> None:
        result = admin_actions.retry_failed(queryset)
        if result.error:
            self.message_user(
                request,
                f"{result.reset} item(s) set back to pending, but the broker is unreachable ({result.error}): "
                "they are published by redispatch_pending when it is back.",
                messages.WARNING,
            )
        else:
            self.message_user(request, f"{result.published} failed item(s) queued again.", messages.SUCCESS)
