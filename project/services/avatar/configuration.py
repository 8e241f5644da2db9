"""What the avatar server and the avatar service need to know, read once from Config.

Each value comes from the admin's Config first, then the environment (the key
upper-cased, then the seed's older names), then the default. ``missing()``
names everything that must be set before the server can spend a HeyGen minute.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from project.integrations.heygen.client import DEFAULT_BASE_URL as HEYGEN_DEFAULT_BASE_URL

ELEVENLABS_DEFAULT_BASE_URL = "https://api.elevenlabs.io"

# key → (environment aliases, what it is): used for reading and for the messages of missing().
KEYS: dict[str, tuple[tuple[str, ...], str]] = {
    "heygen_api_key": (("HeyGen_API_KEY",), "HeyGen API key"),
    "heygen_avatar_id": ((), "HeyGen interactive avatar id"),
    "elevenlabs_api": (("ELEVENLABS_API_KEY", "ELEVEN_API_KEY"), "ElevenLabs API key"),
    "elevenlabs_agent_id": ((), "ElevenLabs Conversational AI agent id"),
    "avatar_access_token": ((), "access token a browser must present as ?token="),
}


@dataclass(frozen=True)
class AvatarSettings:
    heygen_api_key: str = field(default="", repr=False)
    heygen_avatar_id: str = ""
    heygen_base_url: str = HEYGEN_DEFAULT_BASE_URL
    heygen_quality: str = "medium"
    elevenlabs_api_key: str = field(default="", repr=False)
    elevenlabs_agent_id: str = ""
    elevenlabs_base_url: str = ELEVENLABS_DEFAULT_BASE_URL
    access_token: str = field(default="", repr=False)
    max_sessions: int = 1
    # Seconds between keep-alives of a browser's session (HeyGen closes a session idle for 120 s).
    keep_alive_seconds: float = 30.0
    # The avatar service closes a session it opened itself after this long without speaking.
    service_idle_seconds: float = 60.0

    def missing(self) -> list[str]:
        """One line per required value that is empty, naming where to set it."""
        values = {
            "heygen_api_key": self.heygen_api_key,
            "heygen_avatar_id": self.heygen_avatar_id,
            "elevenlabs_api": self.elevenlabs_api_key,
            "elevenlabs_agent_id": self.elevenlabs_agent_id,
            "avatar_access_token": self.access_token,
        }
        lines = []
        for key, value in values.items():
            if not value:
                aliases, what = KEYS[key]
                env = " or ".join((key.upper(), *aliases))
                lines.append(f"{what}: set Config '{key}' in the admin or the environment variable {env}")
        return lines

    def missing_for_service(self) -> list[str]:
        """The avatar service only drives HeyGen: no ElevenLabs or browser token needed."""
        return [line for line in self.missing() if line.startswith(("HeyGen",))]


def load_settings() -> AvatarSettings:
    """Read every value (needs Django set up; runs ORM queries, so call it from sync code)."""
    from project.app_config.config import get_config

    def read(key: str, default: str = "") -> str:
        aliases = KEYS.get(key, ((), ""))[0]
        return get_config(key, default, env_names=aliases).strip()

    return AvatarSettings(
        heygen_api_key=read("heygen_api_key"),
        heygen_avatar_id=read("heygen_avatar_id"),
        heygen_base_url=read("heygen_base_url", HEYGEN_DEFAULT_BASE_URL),
        heygen_quality=read("heygen_quality", "medium"),
        elevenlabs_api_key=read("elevenlabs_api"),
        elevenlabs_agent_id=read("elevenlabs_agent_id"),
        elevenlabs_base_url=read("elevenlabs_base_url", ELEVENLABS_DEFAULT_BASE_URL),
        access_token=read("avatar_access_token"),
        max_sessions=_positive_int("avatar_max_sessions", read("avatar_max_sessions", "1")),
        keep_alive_seconds=_positive_float("avatar_keep_alive_seconds", read("avatar_keep_alive_seconds", "30")),
        service_idle_seconds=_positive_float("avatar_idle_seconds", read("avatar_idle_seconds", "60")),
    )


class SettingsError(ValueError):
    pass


def _positive_int(key: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"Config '{key}' must be a whole number, got {raw!r}") from None
    if value < 1:
        raise SettingsError(f"Config '{key}' must be at least 1, got {value}")
    return value


def _positive_float(key: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"Config '{key}' must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"Config '{key}' must be more than 0, got {value}")
    return value
