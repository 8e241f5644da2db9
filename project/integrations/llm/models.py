from django.db import models

from project.base_models import BaseModel


class LLMReply(BaseModel):
    """What the LLM service answered to one event (or why it could not), with the tokens it cost."""

    class Status(models.TextChoices):
        REPLIED = "replied"
        FAILED = "failed"
        BLOCKED = "blocked", "blocked by moderation"

    live_event = models.ForeignKey("tiktok_events.LiveEvent", on_delete=models.CASCADE, related_name="llm_replies")
    service = models.ForeignKey(
        "queue_system.Service", null=True, blank=True, on_delete=models.SET_NULL, related_name="llm_replies"
    )
    session = models.ForeignKey("tiktok_events.LiveSession", on_delete=models.CASCADE, related_name="llm_replies")
    event_type = models.CharField(max_length=64, db_index=True)
    viewer = models.CharField(max_length=200, blank=True, default="", help_text="Cleaned nickname.")
    viewer_id = models.CharField(max_length=100, blank=True, default="", db_index=True)
    prompt = models.TextField(help_text="The user message sent to the model (the system prompt is in Config).")
    reply = models.TextField(blank=True, default="")
    status = models.CharField(max_length=8, choices=Status.choices, db_index=True)
    error = models.TextField(blank=True, default="")
    model = models.CharField(max_length=100, blank=True, default="")
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    spoken = models.BooleanField(default=False, help_text="Played through ElevenLabs TTS.")
    audio_file = models.CharField(max_length=255, blank=True, default="", help_text="File in media/elevenlabs/.")
    tts_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "LLM reply"
        verbose_name_plural = "LLM replies"
        constraints = [
            models.UniqueConstraint(
                fields=["live_event", "service"], name="llmreply_one_per_event_and_service", nulls_distinct=False
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type} reply to {self.viewer or self.viewer_id} [{self.status}]"
