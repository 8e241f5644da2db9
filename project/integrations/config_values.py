"""Typed reads of the Config keys the integrations use.

``get_config`` returns text; these turn it into an int or a bool and refuse a
value they cannot parse with a message naming the key, instead of guessing
(an empty value means "use the default").
"""

from __future__ import annotations

from project.app_config.config import get_config
from project.env import EnvError, parse_bool
from project.integrations.errors import IntegrationError


class ConfigValueError(IntegrationError):
    """A Config value (or its environment fallback) cannot be used as it is."""


def config_int(key: str, default: int, minimum: int = 0) -> int:
    raw = get_config(key).strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigValueError(f"Config {key}={raw!r} is not a whole number; fix it in the admin (Config).") from None
    if value < minimum:
        raise ConfigValueError(f"Config {key}={value} must be at least {minimum}; fix it in the admin (Config).")
    return value


def config_bool(key: str, default: bool) -> bool:
    raw = get_config(key).strip()
    if not raw:
        return default
    try:
        return parse_bool(key, raw)
    except EnvError:
        raise ConfigValueError(f"Config {key}={raw!r} is not true or false; fix it in the admin (Config).") from None
