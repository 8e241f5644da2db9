from django.contrib import admin

from project.integrations.llm.models import LLMReply
from project.tiktok_events.models import LiveEvent

REPLY_FIELDS = [
    "live_event",
    "service",
    "session",
    "event_type",
    "viewer",
    "viewer_id",
    "status",
    "prompt",
    "reply",
    "error",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "latency_ms",
    "spoken",
    "audio_file",
    "tts_error",
    "created_at",
    "updated_at",
]


@admin.register(LLMReply)
class LLMReplyAdmin(admin.ModelAdmin):
    """Replies are a record of what was said: readable and deletable, not editable."""

    list_display = ["id", "created_at", "event_type", "viewer", "short_reply", "status", "total_tokens", "spoken"]
    list_filter = ["status", "event_type", "spoken", "service", "session"]
    search_fields = ["viewer", "viewer_id", "reply", "prompt"]
    list_select_related = ["service"]
    readonly_fields = REPLY_FIELDS
    fields = REPLY_FIELDS
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="reply")
    def short_reply(self, obj: LLMReply) -> str:
        text = obj.reply or obj.error
        return text if len(text) <= 90 else text[:89] + "…"


class LLMReplyInline(admin.TabularInline):
    model = LLMReply
    extra = 0
    can_delete = False
    fields = ["status", "reply", "error", "total_tokens", "spoken", "created_at"]
    readonly_fields = fields
    verbose_name_plural = "LLM replies"

    def has_add_permission(self, request, obj=None) -> bool:
        return False


# The replies are shown on the LiveEvent page without editing the tiktok_events app:
# its admin class is extended here (this app is installed after it) with one more inline.
_event_admin = type(admin.site._registry[LiveEvent])
admin.site.unregister(LiveEvent)
admin.site.register(
    LiveEvent, type("LiveEventAdmin", (_event_admin,), {"inlines": [*_event_admin.inlines, LLMReplyInline]})
)
