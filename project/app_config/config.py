"""Reading settings that the streamer edits in the admin.

A ``Config`` row wins when it holds a non-empty value; otherwise the environment
variable of the same name, upper-cased, is the fallback (``elevenlabs_api`` →
``ELEVENLABS_API``), so secrets can live outside the database.
"""

from __future__ import annotations

from project.env import env_str
from project.logging import remember_secret

# Config keys whose whole value is a credential. The proxy URLs, secret too, are left
# out: their password is masked by shape, and the rest of the URL helps a reader.
CREDENTIAL_KEYS = frozenset(
    {"elevenlabs_api", "llm_key", "heygen_api_key", "api_token", "avatar_access_token", "sign_api_key"}
    | {"tiktok_session_id", "overlays_token"}
)


def get_config(key: str, default: str = "", env_names: tuple[str, ...] = ()) -> str:
    """Return the value for ``key``: database first, then environment, then ``default``.

    ``env_names`` adds further environment names to try after ``KEY`` (aliases the
    seeds used, such as ``ELEVEN_API_KEY``).
    """
    from project.app_config.models import Config

    value = Config.objects.filter(key=key).values_list("value", flat=True).first()
    if not value:
        value = next((found for name in (key.upper(), *env_names) if (found := env_str(name, ""))), default)
    if key in CREDENTIAL_KEYS:
        remember_secret(value)  # from now on its text is masked in every log line of this process
    return value


def set_config(key: str, value: str) -> None:
    from project.app_config.models import Config

    Config.objects.update_or_create(key=key, defaults={"value": value})
