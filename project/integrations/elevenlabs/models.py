from django.db import models

from project.base_models import BaseModel


class TTSUsage(BaseModel):
    """ElevenLabs characters spent during one live session (the row with no session: outside any live).

    ``characters`` is what the per-session cap is checked against: a request
    reserves its characters with a conditional UPDATE before calling the API
    and gives them back if the call fails, so concurrent requests can never
    overshoot the cap; once audio has arrived (ElevenLabs has charged it) they
    stay, even if the disk then refuses the file. Cached phrases cost nothing
    and only count as hits.
    """

    session = models.ForeignKey(
        "tiktok_events.LiveSession", null=True, blank=True, on_delete=models.CASCADE, related_name="tts_usage"
    )
    characters = models.PositiveIntegerField(default=0, help_text="Characters sent to ElevenLabs.")
    credits = models.PositiveIntegerField(
        default=0, help_text="Credits ElevenLabs reported (character-cost header; 0.5 per character on Flash/Turbo)."
    )
    requests = models.PositiveIntegerField(default=0, help_text="Successful text-to-speech calls.")
    cache_hits = models.PositiveIntegerField(default=0, help_text="Phrases served from media/elevenlabs/ for free.")
    refused = models.PositiveIntegerField(default=0, help_text="Phrases not spoken because the cap was reached.")

    class Meta:
        verbose_name = "TTS usage"
        verbose_name_plural = "TTS usage"
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(fields=["session"], name="ttsusage_one_row_per_session", nulls_distinct=False)
        ]

    def __str__(self) -> str:
        where = f"session #{self.session_id}" if self.session_id else "outside any session"
        return f"{self.characters} characters, {where}"
