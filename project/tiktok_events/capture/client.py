"""The TikTokLive client, configured (never patched) to reach TikTok or the simulator.

TikTokLive reads its base URLs from ``WebDefaults`` (its documented global
settings object: ``tiktok_app_url`` for the live page and room API,
``tiktok_webcast_url`` for the live check) and the sign server's from the
signer's ``sign_api_base`` (given per client through ``web_kwargs``). The
WebSocket address is not configured at all: TikTok's first fetch (from the
sign server) names the push server. Empty settings keep the library defaults,
i.e. the real TikTok and Euler Stream.

Building a client also makes betterproto2's per-message validation build its
pydantic validator once per class (``proto_validation``): the same check,
without the cost that made parsing the capture's bottleneck.
"""

from __future__ import annotations

from TikTokLive import TikTokLiveClient
from TikTokLive.client.errors import (
    SignAPIError,
    SignatureRateLimitError,
    UserNotFoundError,
    UserOfflineError,
    WebcastBlockedError,
)
from TikTokLive.client.web.web_settings import WebDefaults
from TikTokLive.events import EVENT_MAPPINGS
from TikTokLive.events.custom_events import (
    ConnectEvent,
    DisconnectEvent,
    FollowEvent,
    LiveEndEvent,
    LivePauseEvent,
    LiveUnpauseEvent,
    ShareEvent,
    SuperFanBoxEvent,
    SuperFanEvent,
    SuperFanJoinEvent,
    UnknownEvent,
    WebsocketResponseEvent,
)
from TikTokLive.proto import ProtoMessageFetchResult, WebcastPushFrame

from project.tiktok_events.capture import proto_validation
from project.tiktok_events.capture.endpoints import TikTokEndpoints

# Every event class TikTokLive can emit about the live (its proto events plus the
# custom ones it derives from them).
LIVE_EVENT_CLASSES = [
    *dict.fromkeys(EVENT_MAPPINGS.values()),
    FollowEvent,
    ShareEvent,
    LiveEndEvent,
    LivePauseEvent,
    LiveUnpauseEvent,
    SuperFanEvent,
    SuperFanJoinEvent,
    SuperFanBoxEvent,
]


# What a live sends most (and every flood): prepared before connecting (see proto_validation).
COMMON_MESSAGES = (
    "WebcastChatMessage",
    "WebcastGiftMessage",
    "WebcastLikeMessage",
    "WebcastMemberMessage",
    "WebcastSocialMessage",
    "WebcastRoomUserSeqMessage",
    "WebcastControlMessage",
)


def prepare_parsing() -> int:
    """Cheaper validation, and the common message classes ready before the first frame (≈ 0.5 s)."""
    proto_validation.install()
    return proto_validation.warm_up(
        [ProtoMessageFetchResult, WebcastPushFrame, *(EVENT_MAPPINGS[name] for name in COMMON_MESSAGES)]
    )


def build_client(username: str, endpoints: TikTokEndpoints, pipeline, on_connect=None) -> TikTokLiveClient:
    """A client for ``username`` whose every live event goes to ``pipeline.on_event``."""
    proto_validation.install()
    if endpoints.app_url:
        WebDefaults.tiktok_app_url = endpoints.app_url.rstrip("/")
    if endpoints.webcast_url:
        WebDefaults.tiktok_webcast_url = endpoints.webcast_url.rstrip("/")
    signer_kwargs = {"sign_api_base": endpoints.sign_url.rstrip("/")} if endpoints.sign_url else {}
    client = TikTokLiveClient(
        unique_id=username,
        web_kwargs={"signer_kwargs": signer_kwargs},
        # A short close handshake: a silent socket is closed by the watchdog, and
        # the default 10 s wait for a close frame would only delay the reconnect.
        ws_kwargs={"close_timeout": 3},
    )
    for event_class in LIVE_EVENT_CLASSES:
        client.add_listener(event_class, pipeline.on_event)
    client.add_listener(WebsocketResponseEvent, pipeline.on_frame)
    client.add_listener(UnknownEvent, pipeline.on_unknown)
    if on_connect is not None:
        client.add_listener(ConnectEvent, on_connect)
    client.add_listener(DisconnectEvent, lambda event: None)
    return client


def explain(exc: BaseException, username: str) -> tuple[str, str]:
    """(kind, message for the streamer) for an error raised while connecting.

    kind: offline | not_found | rate_limited | blocked | other.
    """
    if isinstance(exc, UserOfflineError):
        return "offline", (
            f"@{username} is not live right now. Start the LIVE in TikTok (or check the username in "
            "Config → tiktok_user / --username), then run the command again."
        )
    if isinstance(exc, UserNotFoundError):
        return "not_found", (
            f"TikTok does not know @{username}, or that account cannot go LIVE. Check the handle "
            "(without @) in Config → tiktok_user or --username."
        )
    if isinstance(exc, SignatureRateLimitError):
        return "rate_limited", (
            f"The sign server is rate-limiting new connections: retrying in {retry_after(exc)} s. "
            "For a higher limit, put your Euler Stream API key in the SIGN_API_KEY environment variable."
        )
    if isinstance(exc, WebcastBlockedError):
        return "blocked", f"TikTok refused the WebSocket connection ({exc}); retrying."
    if isinstance(exc, SignAPIError):
        return "other", f"Sign server error: {exc}"
    return "other", f"{type(exc).__name__}: {exc}"


def retry_after(exc: SignatureRateLimitError) -> int:
    try:
        return max(1, int(exc.retry_after))
    except (TypeError, ValueError, AssertionError):
        return 30
