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

import functools
import json
import logging
import time
import typing
from collections.abc import Callable
from typing import Any

import httpx
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
    DisconnectEvent,
    FollowEvent,
    LiveEndEvent,
    LivePauseEvent,
    LiveUnpauseEvent,
    ShareEvent,
    SuperFanBoxEvent,
    SuperFanEvent,
    SuperFanJoinEvent,
    WebsocketResponseEvent,
)
from TikTokLive.events.proto_events import ProtoEvent
from TikTokLive.proto import ProtoMessageFetchResult, WebcastPushFrame
from websockets.exceptions import InvalidHandshake, InvalidStatusCode
from websockets.legacy.client import WebSocketClientProtocol

from project.tiktok_events.capture import proto_validation
from project.tiktok_events.capture.access import TikTokAccess
from project.tiktok_events.capture.endpoints import TikTokEndpoints
from project.tiktok_events.capture.retry import RateLimitHint, rate_limit_hint

log = logging.getLogger("capture")
# ProtoEvent is a typing Union of ABC classes: isinstance against it, or even against its
# classes, went through ABCMeta's checks for every event (7-10 % of the capture's samples in
# a flood); the answer is a property of the event's class, found once per class.
PROTO_EVENT_CLASSES = typing.get_args(ProtoEvent)
_is_proto_event: dict[type, bool] = {}


def is_proto_event(event: object) -> bool:
    cls = type(event)
    known = _is_proto_event.get(cls)
    if known is None:
        known = _is_proto_event[cls] = issubclass(cls, PROTO_EVENT_CLASSES)
    return known


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


class CaptureClient(TikTokLiveClient):
    """TikTokLiveClient with the listeners the capture needs beside its events.

    Each is an attribute, None when unused:

    - ``message_listener(message)``: every ``BaseProtoMessage`` of a fetch result, before
      the events parsed from it are emitted (its ``is_history`` flag, its method);
    - ``raw_listener(message, reason)``: a message no event comes out of, ``reason``
      ``"unknown"`` (a method TikTokLive has no class for) or ``"unparsed"`` (its payload
      could not be parsed; the library logs the error and emits nothing else);
    - ``first_fetch_listener(result)``: the sign server's first ``ProtoMessageFetchResult``,
      once the WebSocket to the push server is open;
    - ``frame_listener(data, arrival)``: every WebSocket message exactly as received
      (``arrival``: ``time.time()``), push frames and heartbeats alike.

    Only TikTokLive's own extension points are used: the per-message parse step is
    wrapped (same arguments, same result), and the WebSocket protocol class is chosen
    through ``ws_kwargs["create_protocol"]``, which the library hands to ``websockets``.
    """

    def __init__(self, *args: Any, ws_kwargs: dict | None = None, **kwargs: Any) -> None:
        ws_kwargs = {**(ws_kwargs or {}), "create_protocol": functools.partial(_TappedProtocol, tap=self._tap)}
        super().__init__(*args, ws_kwargs=ws_kwargs, **kwargs)
        self.message_listener: Callable[[Any], None] | None = None
        self.raw_listener: Callable[[Any, str], None] | None = None
        self.first_fetch_listener: Callable[[ProtoMessageFetchResult], None] | None = None
        self.frame_listener: Callable[[bytes, float], None] | None = None

    def _tap(self, data: bytes | str) -> None:
        if self.frame_listener is not None:
            self.frame_listener(data if isinstance(data, bytes) else data.encode(), time.time())

    async def _ws_client_loop(self, initial_webcast_response: ProtoMessageFetchResult, *args: Any, **kwargs: Any):
        if self.first_fetch_listener is not None:
            self.first_fetch_listener(initial_webcast_response)
        return await super()._ws_client_loop(initial_webcast_response, *args, **kwargs)

    async def _parse_webcast_response_message(self, webcast_response, webcast_response_message):
        message = webcast_response_message
        if message is not None and self.message_listener is not None:
            self.message_listener(message)
        events = await super()._parse_webcast_response_message(webcast_response, webcast_response_message)
        if message is not None and self.raw_listener is not None:
            if message.method not in EVENT_MAPPINGS:
                self.raw_listener(message, "unknown")
            elif not any(is_proto_event(event) for event in events):
                self.raw_listener(message, "unparsed")
        return events


class _TappedProtocol(WebSocketClientProtocol):
    """The WebSocket protocol of ``websockets``, handing every received message to ``tap`` too."""

    def __init__(self, *args: Any, tap: Callable[[bytes | str], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._capture_tap = tap

    async def recv(self) -> bytes | str:
        data = await super().recv()
        try:
            self._capture_tap(data)
        except Exception:  # a listener's bug must not close the live's socket
            log.exception("a frame listener failed")
        return data


class SignWatch:
    """What the sign server answered to the WebSocket fetch, read from its own HTTP client.

    TikTokLive turns a 429 into ``SignatureRateLimitError`` with a ``retry_after`` read
    from ``RateLimit-Remaining`` (a count: 0 when the limit is hit), and fails with a
    TypeError when that header is missing; the response itself says when to come back.
    Installed as a response hook of the signer's ``httpx.AsyncClient`` (httpx's own
    extension point).
    """

    def __init__(self) -> None:
        self.refusal: tuple[dict[str, str], bytes, float] | None = None  # the last 429: headers, body, time

    def attach(self, client: TikTokLiveClient) -> None:
        http = client.web.signer.client
        hooks = http.event_hooks
        http.event_hooks = {**hooks, "response": [*hooks.get("response", []), self._on_response]}

    def reset(self) -> None:
        self.refusal = None

    async def _on_response(self, response: httpx.Response) -> None:
        if response.status_code == 429 and response.request.url.path.endswith("/webcast/fetch"):
            await response.aread()
            self.refusal = (dict(response.headers), response.content, time.time())

    def hint(self) -> RateLimitHint | None:
        if self.refusal is None:
            return None
        return rate_limit_hint(*self.refusal)


def build_client(
    username: str, endpoints: TikTokEndpoints, pipeline, access: TikTokAccess | None = None
) -> CaptureClient:
    """A client for ``username`` whose every live event goes to ``pipeline.on_event``."""
    access = access or TikTokAccess()
    proto_validation.install()
    if endpoints.app_url:
        WebDefaults.tiktok_app_url = endpoints.app_url.rstrip("/")
    if endpoints.webcast_url:
        WebDefaults.tiktok_webcast_url = endpoints.webcast_url.rstrip("/")
    signer_kwargs: dict[str, str] = {}
    if endpoints.sign_url:
        # TikTokLive checks a session id's sign host against WebDefaults (access.check_session_host).
        WebDefaults.tiktok_sign_url = signer_kwargs["sign_api_base"] = endpoints.sign_url.rstrip("/")
    if access.sign_api_key:
        signer_kwargs["sign_api_key"] = access.sign_api_key
    client = CaptureClient(
        unique_id=username,
        web_proxy=httpx.Proxy(access.http_proxy) if access.http_proxy else None,
        ws_proxy=httpx.Proxy(access.ws_proxy) if access.ws_proxy else None,
        web_kwargs={"signer_kwargs": signer_kwargs},
        # A short close handshake: a silent socket is closed by the watchdog, and
        # the default 10 s wait for a close frame would only delay the reconnect.
        ws_kwargs={"close_timeout": 3},
    )
    if access.session_id:
        client.web.set_session(access.session_id, access.target_idc)
    for event_class in LIVE_EVENT_CLASSES:
        client.add_listener(event_class, pipeline.on_event)
    client.add_listener(WebsocketResponseEvent, pipeline.on_frame)
    client.message_listener = pipeline.on_message
    client.raw_listener = pipeline.on_raw
    client.add_listener(DisconnectEvent, lambda event: None)
    return client


# What helps when TikTok refuses this machine's connection.
BLOCKED_ADVICE = (
    "What helps: a sign-server API key (Config → sign_api_key), a logged-in TikTok session "
    "(tiktok_session_id and tiktok_target_idc), or a proxy in another network "
    "(tiktok_http_proxy and tiktok_ws_proxy)."
)


def explain(exc: BaseException | None, username: str, watch: SignWatch | None = None) -> tuple[str, str]:
    """(kind, message for the streamer) for what stopped a connection attempt.

    kind: offline | not_found | rate_limited | blocked | other.
    """
    if (watch is not None and watch.refusal is not None) or isinstance(exc, SignatureRateLimitError):
        label = _limit_label(watch)
        return "rate_limited", f"The sign server is rate-limiting new connections{label}."
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
    reason = refusal_reason(exc)
    if reason is not None:
        return "blocked", f"TikTok refused the WebSocket connection ({reason})."
    if exc is None:
        return "other", "the socket closed before TikTok sent anything"
    if isinstance(exc, SignAPIError):
        return "other", f"Sign server error: {exc}"
    return "other", f"{type(exc).__name__}: {exc}"


def refusal_reason(exc: BaseException | None) -> str | None:
    """TikTok's reason when it refused the WebSocket upgrade (``Handshake-Msg``), else None."""
    for error in (exc, getattr(exc, "__cause__", None)):
        if isinstance(error, InvalidStatusCode):
            message = error.headers.get("Handshake-Msg", "") if error.headers else ""
            return f"{message or 'no reason given'}, HTTP {error.status_code}"
        if isinstance(error, InvalidHandshake):
            return str(error)
    if isinstance(exc, WebcastBlockedError):
        return str(exc).split("->", 1)[-1].strip()
    return None


def _limit_label(watch: SignWatch | None) -> str:
    if watch is None or watch.refusal is None:
        return ""
    try:
        label = json.loads(watch.refusal[1] or b"{}").get("limit_label", "")
    except (ValueError, AttributeError):
        label = ""
    return f" ({label})" if label else ""
