"""Reading settings that the streamer edits in the admin.

A ``Config`` row wins when it holds a non-empty value; otherwise the environment
variable of the same name, upper-cased, is the fallback (``elevenlabs_api`` →
``ELEVENLABS_API``), so secrets can live outside the database.
"""

from __future__ import annotations

from project.env import env_str


def get_config(key: str, default: str = "", env_names: tuple[str, ...] = ()) -> str:
    """Return the value for ``key``: database first, then environment, then ``default``.

    ``env_names`` adds further environment names to try after ``KEY`` (aliases the
    seeds used, such as ``ELEVEN_API_KEY``).
    """
    from project.app_config.models import Config

    value = Config.objects.filter(key=key).values_list("value", flat=True).first()
    if value:
        return value
    for name in (key.upper(), *env_names):
        from_env = env_str(name, "")
        if from_env:
            return from_env
    return default


def set_config(key: str, value: str) -> None:
    from project.app_config.models import Config

    Config.objects.update_or_create(key=key, defaults={"value": value})
