"""Where the capture connects, and how it gives up: small types importable without TikTokLive.

(TikTokLive takes seconds to import; the commands import it only once the
simulator, when there is one, is already starting in parallel.)
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class TikTokEndpoints:
    """Base URLs for the TikTokLive client; empty ones keep the library's defaults (the real TikTok)."""

    app_url: str = ""
    webcast_url: str = ""
    sign_url: str = ""

    @classmethod
    def from_settings(cls) -> TikTokEndpoints:
        return cls(settings.TIKTOK_APP_URL, settings.TIKTOK_WEBCAST_URL, settings.TIKTOK_SIGN_URL)


class CaptureAborted(Exception):
    """The capture cannot start or go on; the message says what to do."""

    def __init__(self, message: str, kind: str = "other") -> None:
        super().__init__(message)
        self.kind = kind
