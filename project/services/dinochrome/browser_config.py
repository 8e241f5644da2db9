"""Where the DinoChrome browser comes from: Config keys, environment and service options.

Config keys (admin, else the upper-cased environment variable): ``dino_url`` (the game
page the browser opens), ``dino_headless`` (false on stream), ``dino_window_size``
(``1280x720``), ``dino_kiosk`` (true: full screen, no browser UI) and
``dino_remote_debugging_port`` (empty: off). Machine paths come from the environment
only: ``CHROME_BINARY`` and ``CHROMEDRIVER``. Service options of the same names win.
"""

from __future__ import annotations

import re
from typing import Any

from project.app_config.config import get_config
from project.env import EnvError, env_str, parse_bool
from project.services.dinochrome.chrome import (
    DEFAULT_CHROME_BINARY,
    DEFAULT_CHROMEDRIVER,
    DEFAULT_GAME_URL,
    ChromeService,
)


class BrowserConfigError(ValueError):
    pass


def _setting(key: str, options: dict[str, Any], default: str) -> str:
    if key in options and options[key] not in (None, ""):
        return str(options[key])
    return get_config(key, default) or default


def _bool(key: str, value: str) -> bool:
    try:
        return parse_bool(key, value)
    except EnvError as exc:
        raise BrowserConfigError(str(exc)) from None


def _window_size(value: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d{3,5})\s*[x,]\s*(\d{3,5})\s*", value)
    if not match:
        raise BrowserConfigError(f"dino_window_size={value!r} must look like 1280x720")
    return int(match.group(1)), int(match.group(2))


def _port(value: str) -> int | None:
    if not value.strip():
        return None
    if not value.strip().isdigit() or not 1 <= int(value) <= 65535:
        raise BrowserConfigError(f"dino_remote_debugging_port={value!r} must be a TCP port number")
    return int(value)


def chrome_service_from_config(options: dict[str, Any] | None = None) -> tuple[ChromeService, bool]:
    """A ChromeService set up from the configuration, and whether to run it headless."""
    options = options or {}
    chrome = ChromeService(
        _setting("dino_url", options, DEFAULT_GAME_URL),
        chrome_binary=str(options.get("chrome_binary") or env_str("CHROME_BINARY", DEFAULT_CHROME_BINARY)),
        chromedriver=str(options.get("chromedriver") or env_str("CHROMEDRIVER", DEFAULT_CHROMEDRIVER)),
        window_size=_window_size(_setting("dino_window_size", options, "1280x720")),
        kiosk=_bool("dino_kiosk", _setting("dino_kiosk", options, "true")),
        remote_debugging_port=_port(_setting("dino_remote_debugging_port", options, "")),
    )
    return chrome, _bool("dino_headless", _setting("dino_headless", options, "false"))
