from django.contrib import admin

from project.tiktok_events.models import LiveEvent, LiveSession


@admin.register(LiveSession)
class LiveSessionAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "streamer", "room_id", "status", "started_at", "ended_at", "event_count"]
    list_filter = ["status", "streamer"]
    search_fields = ["name", "streamer", "room_id"]
    date_hierarchy = "started_at"

    @admin.display(description="events")
    def event_count(self, obj: LiveSession) -> int:
        return obj.events.count()


@admin.register(LiveEvent)
class LiveEventAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "event_type",
        "user_nickname",
        "user_unique_id",
        "repeat_count",
        "streak_status",
        "received_at",
        "session",
    ]
    list_filter = ["event_type", "streak_status", "session"]
    search_fields = ["user_unique_id", "user_nickname", "user_nickname_raw", "user_id"]
    list_select_related = ["session"]
    raw_id_fields = ["session"]
    date_hierarchy = "received_at"
