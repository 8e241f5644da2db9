"""How the capture gets into a real live: sign-server key, TikTok session, proxies, room id.

Each is a Config key (editable in the admin, masked there when secret) with an
environment fallback of the same name upper-cased, which may also be given as
``<NAME>_FILE`` (see ``project.env``):

=====================  ===========================  ==============================================
Config key             environment                  what for
=====================  ===========================  ==============================================
sign_api_key           SIGN_API_KEY                 the sign server's API key (Euler Stream): a
                                                    higher rate limit than anonymous connections
tiktok_session_id      TIKTOK_SESSION_ID            a logged-in TikTok session (age-restricted or
tiktok_target_idc      TIKTOK_TARGET_IDC            private lives); the idc is the account's data
                                                    centre (cookie ``tt-target-idc``)
tiktok_http_proxy      TIKTOK_HTTP_PROXY            proxy for TikTok's web requests (blocked IPs,
tiktok_ws_proxy        TIKTOK_WS_PROXY              regions); the WebSocket one defaults to it
tiktok_room_id         TIKTOK_ROOM_ID               connect to this room id without reading the
                                                    streamer's page (when the page is blocked)
=====================  ===========================  ==============================================

Importable without TikTokLive (the commands check the settings before the slow import).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from project.app_config.config import get_config
from project.logging import redact
from project.tiktok_events.capture.endpoints import CaptureAborted

PROXY_SCHEMES = ("http", "https", "socks4", "socks5")
# TikTokLive sends a session id to the sign server only when this names that server's host.
SESSION_HOST_VARIABLE = "WHITELIST_AUTHENTICATED_SESSION_ID_HOST"
EULER_SIGN_HOST = "api.eulerstream.com"


class AccessError(CaptureAborted):
    """A setting of the capture's access to TikTok cannot be used; the message says which and how to fix it."""


@dataclass(frozen=True)
class TikTokAccess:
    sign_api_key: str = ""
    session_id: str = ""
    target_idc: str = ""
    http_proxy: str = ""
    ws_proxy: str = ""
    room_id: int | None = None

    @classmethod
    def from_config(cls) -> TikTokAccess:
        """The settings as configured, checked (AccessError names the key that is wrong)."""
        http_proxy = _proxy("tiktok_http_proxy")
        access = cls(
            sign_api_key=get_config("sign_api_key").strip(),
            session_id=get_config("tiktok_session_id").strip(),
            target_idc=get_config("tiktok_target_idc").strip(),
            http_proxy=http_proxy,
            ws_proxy=_proxy("tiktok_ws_proxy") or http_proxy,
            room_id=_room_id(),
        )
        if access.session_id and not access.target_idc:
            raise AccessError(
                "tiktok_session_id is set but tiktok_target_idc is not: TikTok needs both. Copy the "
                "tt-target-idc cookie (e.g. useast2a) from the browser where you are logged in into "
                "Config → tiktok_target_idc (or TIKTOK_TARGET_IDC)."
            )
        return access

    def check_session_host(self, sign_url: str) -> None:
        """A session id is handed to the sign server: only to one the operator named (TikTokLive's own rule)."""
        if not self.session_id:
            return
        host = urlsplit(sign_url).netloc if sign_url else EULER_SIGN_HOST
        if os.environ.get(SESSION_HOST_VARIABLE, "") != host:
            raise AccessError(
                f"A TikTok session id is configured: TikTokLive sends it to the sign server ({host}) to "
                f"connect, which gives that server access to your account. If you trust it, set the "
                f"environment variable {SESSION_HOST_VARIABLE}={host} and start again; otherwise remove "
                "tiktok_session_id."
            )

    def summary(self) -> list[str]:
        """What the start banner says about these settings (nothing secret)."""
        lines = []
        if self.session_id:
            lines.append(f"logged-in TikTok session (data centre {self.target_idc})")
        if self.http_proxy:
            lines.append(f"web requests through {redact(self.http_proxy)}")
        if self.ws_proxy:
            lines.append(f"WebSocket through {redact(self.ws_proxy)}")
        if self.room_id:
            lines.append(f"room id {self.room_id} (the streamer's page is not read)")
        return lines


NO_KEY_WARNING = (
    "No sign-server API key: connections use the anonymous rate limit (a few per minute, and a daily cap). "
    "Put your Euler Stream key in Config → sign_api_key, or in SIGN_API_KEY / SIGN_API_KEY_FILE."
)


def _proxy(key: str) -> str:
    value = get_config(key).strip()
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in PROXY_SCHEMES or not parts.hostname:
        raise AccessError(
            f"Config {key}={redact(value)!r} is not a proxy URL: use scheme://[user:password@]host:port "
            f"with a scheme of {', '.join(PROXY_SCHEMES)}."
        )
    try:
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        raise AccessError(f"Config {key}={redact(value)!r} has a port that is not a number.") from None
    return value


def _room_id() -> int | None:
    value = get_config("tiktok_room_id").strip()
    if not value:
        return None
    if not value.isdigit():
        raise AccessError(
            f"Config tiktok_room_id={value!r} is not a room id: TikTok's room ids are numbers "
            "(the roomId in the live page's address or source)."
        )
    return int(value)
