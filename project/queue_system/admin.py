from django.contrib import admin

from project.queue_system.models import QueueItem, Service, ServiceEventConfig


class ServiceEventConfigInline(admin.TabularInline):
    model = ServiceEventConfig
    extra = 1
    fields = ["event_type", "enabled", "priority", "discardable"]


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "mode", "concurrency", "max_queue_size", "is_active", "event_config_count"]
    list_filter = ["mode", "is_active"]
    search_fields = ["name", "slug", "service_class"]
    inlines = [ServiceEventConfigInline]
    fieldsets = [
        (None, {"fields": ["name", "slug", "service_class", "is_active"]}),
        ("Processing", {"fields": ["mode", "concurrency", "max_queue_size"]}),
    ]

    @admin.display(description="event configs")
    def event_config_count(self, obj: Service) -> int:
        return obj.event_configs.count()


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
        "dispatched_at",
        "started_at",
        "finished_at",
    ]
    list_filter = ["service", "status", "event_type", "discardable"]
    search_fields = ["live_event__user_unique_id", "live_event__user_nickname", "live_event__user_nickname_raw"]
    list_select_related = ["service", "live_event"]
    raw_id_fields = ["live_event"]
    readonly_fields = ["created_at", "updated_at"]
    date_hierarchy = "created_at"

    @admin.display(description="user", ordering="live_event__user_unique_id")
    def user(self, obj: QueueItem) -> str:
        return obj.live_event.user_nickname or obj.live_event.user_unique_id
