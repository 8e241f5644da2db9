from django.db import models

from project.base_models import BaseModel

# Keys whose values are credentials: masked in the admin, never logged.
SECRET_KEYS = frozenset(
    {
        "elevenlabs_api",
        "llm_key",
        "heygen_api_key",
        "api_token",
        "avatar_access_token",
        "overlays_token",
        "sign_api_key",
        "tiktok_session_id",
        # Proxy URLs often carry a password.
        "tiktok_http_proxy",
        "tiktok_ws_proxy",
    }
)


class Config(BaseModel):
    """A key/value setting editable in the admin (the seeds' ``meta_key``)."""

    key = models.SlugField(max_length=100, unique=True, help_text="Lower-case name, e.g. tiktok_user.")
    value = models.TextField(blank=True, default="")
    description = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        ordering = ["key"]
        verbose_name = "config"

    def __str__(self) -> str:
        return self.key

    @property
    def is_secret(self) -> bool:
        return self.key in SECRET_KEYS

    def masked_value(self) -> str:
        if not self.is_secret:
            return self.value
        if not self.value:
            return "(not set)"
        return "••••" + self.value[-4:] if len(self.value) > 8 else "••••"
