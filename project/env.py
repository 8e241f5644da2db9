"""Strict readers for settings that come from the environment.

Each helper rejects a value it cannot parse instead of guessing, so a typo in
``.env`` stops the process at start with the variable's name in the message.
A secret may also be given as ``<NAME>_FILE``: the path of a file holding it
(Docker secrets, systemd credentials).
"""

from __future__ import annotations

import os
from pathlib import Path

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class EnvError(ValueError):
    """A variable is set to something its reader cannot accept."""


def env_str(name: str, default: str = "") -> str:
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise EnvError(f"{name}_FILE={file_path!r} cannot be read: {exc.strerror}") from exc
    return os.environ.get(name, default)


def parse_bool(name: str, raw: str) -> bool:
    """true/false (1/0, yes/no, on/off) or EnvError naming the setting; also for Config values."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise EnvError(f"{name}={raw!r} is not a boolean: use true or false")


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return parse_bool(name, raw)


def _env_number(name: str, default, minimum, cast, kind: str):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = cast(raw)
    except ValueError as exc:
        raise EnvError(f"{name}={raw!r} is not {kind}") from exc
    if minimum is not None and value < minimum:
        raise EnvError(f"{name}={value:g} must be at least {minimum:g}")
    return value


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    return _env_number(name, default, minimum, int, "an integer")


def env_float(name: str, default: float, minimum: float | None = None) -> float:
    return _env_number(name, default, minimum, float, "a number")


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]
