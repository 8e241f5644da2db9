from django.contrib import admin

from project.integrations.elevenlabs.models import TTSUsage


@admin.register(TTSUsage)
class TTSUsageAdmin(admin.ModelAdmin):
    """Counters kept by the TTS client; read-only so the cap cannot be bypassed by editing them by accident."""

    list_display = ["session", "characters", "credits", "requests", "cache_hits", "refused", "updated_at"]
    list_select_related = ["session"]
    readonly_fields = [
        "session",
        "characters",
        "credits",
        "requests",
        "cache_hits",
        "refused",
        "created_at",
        "updated_at",
    ]

    def has_add_permission(self, request) -> bool:
        return False
