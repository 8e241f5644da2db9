"""The simulator's HTTP and WebSocket endpoints (aiohttp), one live room.

Routes, by the TikTokLive base URL that reaches them (all on one port):

- ``tiktok_app_url``      GET /@{user}/live             page with SIGI_STATE (room id, live status)
                          GET /api-live/user/room/      room API (fallback room id lookup, not-found)
- ``tiktok_webcast_url``  GET /webcast/room/check_alive/ live check
- ``tiktok_sign_url``     GET /webcast/fetch            first ProtoMessageFetchResult + push server (429s)
- push server (from the fetch result)
                          GET /webcast/im/push/v2/      WebSocket: WebcastPushFrame in and out
- for tests and benches   GET /simulator/status         counters as JSON
"""

from __future__ import annotations

import asyncio
import collections
import gzip
import json
import logging
import secrets
import time
from typing import Any, TextIO

from aiohttp import WSMsgType, web
from TikTokLive.proto import BaseProtoMessage, ProtoMessageFetchResult, PushHeader, WebcastPushFrame

from .messages import MessageFactory
from .replay import RecordedFrame, ReplayScenario, decode_recorded, end_message_needed, take_first_messages
from .scenarios import Action, Scenario

log = logging.getLogger("tiktok_sim")

# How many already-delivered (acknowledged) messages the first fetch of a reconnect
# carries again, as TikTok does with its recent history: the capture must not
# store them twice.
HISTORY_REPLAY = 5


class LiveRoom:
    """The state of the simulated live, shared by every connection to it."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        room_id: int,
        ping_interval: float,
        sent_log: TextIO | None = None,
    ):
        self.scenario = scenario
        self.sent_log = sent_log
        self.room_id = room_id
        self.ping_interval = ping_interval
        self.factory = MessageFactory(room_id, first_msg_id=7_400_000_000_000_000_000 + secrets.randbelow(10**12))
        self.position = 0
        self.ended = False
        self.finished = False  # every action played (and not looping)
        self.history: collections.deque[BaseProtoMessage] = collections.deque(maxlen=HISTORY_REPLAY)
        self.sent_ids: set[int] = set()
        self.sent_by_method: collections.Counter[str] = collections.Counter()
        self.counters: collections.Counter[str] = collections.Counter()
        self.rate_limited_left = scenario.rate_limited_fetches
        self.blocked_left = scenario.blocked_sockets
        self.live_at = time.monotonic() + scenario.offline_for  # offline-then-live: the live starts then
        self.offline_until = 0.0  # an "offline" step: the live reads offline until then
        self.sign_request_times: list[float] = []
        self.sign_api_keys: set[str] = set()  # the last 4 characters of each X-Api-Key seen
        self.session_ids: set[str] = set()  # the last 4 characters of each session id seen
        self.route_token = ""
        self.log_ids = iter(range(1, 1 << 62))
        self.prebuilt: dict[int, tuple[list[BaseProtoMessage], bytes]] = {}
        # Frames sent but not acknowledged, by push-frame log id. When a connection
        # dies, their messages are sent again first on the next one (at-least-once,
        # so the capture's de-duplication is exercised).
        self.unacked: dict[int, list[BaseProtoMessage]] = {}
        self.redeliver: list[BaseProtoMessage] = []
        self.active: web.WebSocketResponse | None = None
        self.clock = 0.0  # time.monotonic() the next action is due at (see _perform)

    @property
    def is_live(self) -> bool:
        if self.scenario.mode in ("offline", "not-found") or self.ended:
            return False
        return time.monotonic() >= max(self.live_at, self.offline_until)

    def prebuild(self) -> None:
        """Serialize every frame up front, so sending a flood costs no serialization."""
        for index, action in enumerate(self.scenario.actions):
            if action.kind == "frame":
                messages = [self.factory.build(spec) for spec in action.specs]
                self.prebuilt[index] = (messages, bytes(self._fetch_result(messages)))

    def _fetch_result(self, messages: list[BaseProtoMessage]) -> ProtoMessageFetchResult:
        return ProtoMessageFetchResult(
            messages=messages,
            cursor=f"t-{int(time.time() * 1000)}_r-1_d-1_u-1_h-1",
            fetch_interval=1000,
            internal_ext=f"internal_src:pushserver|wss_push_room_id:{self.room_id}",
            need_ack=True,
        )

    def status(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.name,
            "room_id": str(self.room_id),
            "live": self.is_live,
            "ended": self.ended,
            "finished": self.finished,
            "position": self.position,
            "actions": len(self.scenario.actions),
            "unique_messages_sent": len(self.sent_ids),
            "sent_by_method": dict(self.sent_by_method),
            "sign_request_times": self.sign_request_times,
            "sign_api_keys": sorted(self.sign_api_keys),
            "session_ids": sorted(self.session_ids),
            **dict(self.counters),
        }


def build_app(room: LiveRoom, host: str) -> web.Application:
    app = web.Application()
    app["room"] = room
    app["host"] = host
    app.router.add_get("/@{user}/live", live_page)
    app.router.add_get("/api-live/user/room/", user_room_api)
    app.router.add_get("/webcast/room/check_alive/", check_alive)
    app.router.add_get("/webcast/fetch", sign_fetch)
    app.router.add_get("/webcast/im/push/v2/", push_socket)
    app.router.add_get("/simulator/status", status)
    return app


async def status(request: web.Request) -> web.Response:
    return web.json_response(request.app["room"].status())


async def live_page(request: web.Request) -> web.Response:
    room: LiveRoom = request.app["room"]
    user = request.match_info["user"]
    room.counters["live_page_requests"] += 1
    state: dict[str, Any] = {"AppContext": {}, "CurrentRoom": {}}
    if room.scenario.mode != "not-found":
        state["LiveRoom"] = {
            "liveRoomUserInfo": {
                "user": {"uniqueId": user, "roomId": str(room.room_id), "status": 2 if room.is_live else 4}
            }
        }
    body = f'<html><head></head><body><script id="SIGI_STATE" type="application/json">{json.dumps(state)}</script>'
    return web.Response(text=body + "</body></html>", content_type="text/html")


async def user_room_api(request: web.Request) -> web.Response:
    room: LiveRoom = request.app["room"]
    room.counters["room_api_requests"] += 1
    if room.scenario.mode == "not-found":
        return web.json_response({"message": "user_not_found", "statusCode": 19881007, "data": {}})
    status_code = 2 if room.is_live else 4
    user = request.query.get("uniqueId", "")
    return web.json_response(
        {
            "message": "",
            "statusCode": 0,
            "data": {
                "user": {"uniqueId": user, "roomId": str(room.room_id), "status": status_code},
                "liveRoom": {"status": status_code},
            },
        }
    )


async def check_alive(request: web.Request) -> web.Response:
    room: LiveRoom = request.app["room"]
    room.counters["check_alive_requests"] += 1
    ids = [i for i in request.query.get("room_ids", "").split(",") if i]
    data = [{"alive": room.is_live and i == str(room.room_id), "room_id": int(i), "room_id_str": i} for i in ids]
    return web.json_response({"data": data, "extra": {"now": int(time.time() * 1000)}, "status_code": 0})


async def sign_fetch(request: web.Request) -> web.Response:
    room: LiveRoom = request.app["room"]
    room.counters["sign_requests"] += 1
    room.sign_request_times.append(time.time())
    if request.headers.get("X-Api-Key"):
        room.sign_api_keys.add(request.headers["X-Api-Key"][-4:])
    if request.query.get("session_id"):
        room.session_ids.add(request.query["session_id"][-4:])
    if room.rate_limited_left > 0:
        room.rate_limited_left -= 1
        room.counters["rate_limited"] += 1
        return _rate_limited(room)
    if request.query.get("room_id") != str(room.room_id):
        return web.json_response({"code": 400, "message": "unknown room_id"}, status=400)
    room.route_token = secrets.token_hex(8)
    # A reconnect starts with recent history again, as TikTok's first fetch does (the first
    # connection: the scenario's "history" steps).
    first_fetch, room.scenario.first_fetch = room.scenario.first_fetch, []
    replay = [
        BaseProtoMessage(method=m.method, payload=m.payload, msg_id=m.msg_id, is_history=True)
        for m in [*(room.factory.build(spec) for spec in first_fetch), *room.history]
    ]
    room.counters["history_replayed"] += len(replay)
    first = ProtoMessageFetchResult(
        messages=take_first_messages(room.scenario) or replay,
        cursor=f"t-{int(time.time() * 1000)}_r-1_d-1_u-1_h-1",
        fetch_interval=1000,
        now=int(time.time() * 1000),
        internal_ext=f"internal_src:dim|wss_push_room_id:{room.room_id}",
        route_params={"wrss": room.route_token, "im_resp_cursor": "sim"},
        heartbeat_duration=int(room.ping_interval * 1000),
        push_server=f"ws://{request.app['host']}:{request.url.port}/webcast/im/push/v2/",
        is_first=True,
        need_ack=False,
    )
    return web.Response(
        body=bytes(first),
        content_type="application/protobuf",
        headers={"X-Set-TT-Cookie": "ttwid=simulated-ttwid; tt_csrf_token=simulated"},
    )


def _rate_limited(room: LiveRoom) -> web.Response:
    """A 429 as the sign server sends it: RateLimit-Remaining is a count (0 once the limit is hit)."""
    headers = {"RateLimit-Limit": "5", "RateLimit-Remaining": "0"}
    if room.scenario.retry_after:
        headers["Retry-After"] = str(room.scenario.retry_after)
    elif room.scenario.retry_after is None:
        headers["RateLimit-Reset"] = str(int(time.time()) + 1)
    # retry_after 0: no hint at all (TikTokLive then says "try again in 0 seconds")
    body = {"code": 429, "message": "Too many connections (simulated sign-server limit)", "limit_label": "sim"}
    return web.json_response(body, status=429, headers=headers)


async def push_socket(request: web.Request) -> web.StreamResponse:
    room: LiveRoom = request.app["room"]
    if room.blocked_left != 0:
        # TikTok's refusal: no upgrade, a 200 with the reason in its headers.
        room.blocked_left -= 1 if room.blocked_left > 0 else 0
        room.counters["blocked_sockets"] += 1
        reason = room.scenario.blocked_reason
        return web.Response(
            status=room.scenario.blocked_status, headers={"Handshake-Msg": reason, "Handshake-Status": "415"}
        )
    if request.cookies.get("sessionid"):
        room.session_ids.add(request.cookies["sessionid"][-4:])
    if request.query.get("wrss") != room.route_token or request.query.get("room_id") != str(room.room_id):
        room.counters["rejected_sockets"] += 1
        return web.Response(status=400, headers={"Handshake-Msg": "invalid route params (simulated)"})
    ws = web.WebSocketResponse(protocols=("echo-protocol",), compress=False, max_msg_size=0)
    ws.headers["Handshake-Options"] = f"ping-interval={room.ping_interval}; ping-timeout=0"
    await ws.prepare(request)
    if room.active is not None and not room.active.closed:
        await room.active.close()
    room.active = ws
    room.counters["connections"] += 1
    entered = asyncio.Event()
    gzip_frames = request.query.get("compress") == "gzip"
    reader = asyncio.create_task(_read_client_frames(ws, room, entered))
    player = asyncio.create_task(_play(ws, request, room, entered, gzip_frames))
    try:
        await asyncio.wait({reader, player}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (reader, player):
            task.cancel()
        await asyncio.gather(reader, player, return_exceptions=True)
        if not ws.closed:
            await ws.close()
        if room.active is ws:
            room.active = None
        for messages in room.unacked.values():
            room.redeliver.extend(messages)
        room.unacked.clear()
    return ws


async def _read_client_frames(ws: web.WebSocketResponse, room: LiveRoom, entered: asyncio.Event) -> None:
    async for message in ws:
        if message.type != WSMsgType.BINARY:
            continue
        frame = WebcastPushFrame().parse(message.data)
        if frame.payload_type == "im_enter_room":
            room.counters["enter_room"] += 1
            entered.set()
        elif frame.payload_type == "hb":
            room.counters["heartbeats"] += 1
            await ws.send_bytes(bytes(WebcastPushFrame(payload_type="hb", payload_encoding="pb")))
        elif frame.payload_type == "ack":
            room.counters["acks"] += 1
            acked = room.unacked.pop(frame.log_id, [])
            room.history.extend(acked)
            # The live is over once the client has the end message; an end lost with a
            # dead socket is sent again on the next connection, like any unacked frame.
            if any(message.method == "WebcastControlMessage" for message in acked):
                room.ended = True


async def _play(
    ws: web.WebSocketResponse, request: web.Request, room: LiveRoom, entered: asyncio.Event, gzip_frames: bool
) -> None:
    try:
        await asyncio.wait_for(entered.wait(), timeout=10)
    except TimeoutError:
        log.warning("client never sent im_enter_room; playing anyway")
    if room.redeliver:
        messages, room.redeliver = room.redeliver, []
        room.counters["redelivered"] += len(messages)
        await _send_messages(messages, bytes(room._fetch_result(messages)), ws, room, gzip_frames)
    room.clock = time.monotonic()
    while not ws.closed:
        if room.position >= len(room.scenario.actions):
            if room.scenario.loop and room.scenario.actions:
                room.position = 0
                room.counters["loops"] += 1
                continue
            room.finished = True
            await asyncio.sleep(3600)  # a quiet live: the socket stays open
            continue
        index = room.position
        action = room.scenario.actions[index]
        # Advance first: a connection that dies during this action resumes after it.
        room.position += 1
        await _perform(action, index, ws, request, room, gzip_frames)


async def _perform(
    action: Action, index: int, ws: web.WebSocketResponse, request: web.Request, room: LiveRoom, gzip_frames: bool
) -> None:
    if action.kind == "wait":
        # Waits keep to a clock, not to the time each send took: a flood of 50
        # frames/s must offer its stated rate (sleeping 20 ms after every send
        # offered 10 % less). Far behind (after a stall), the clock starts again.
        room.clock += action.seconds
        delay = room.clock - time.monotonic()
        if delay < -1.0:
            room.clock, delay = time.monotonic(), 0.0
        await asyncio.sleep(max(0.0, delay))
    elif action.kind == "frame":
        await _send_frame(action, index, ws, room, gzip_frames)
    elif action.kind == "stall":
        room.counters["stalls"] += 1
        await asyncio.sleep(action.seconds)
    elif action.kind == "drop":
        room.counters["drops"] += 1
        # An abrupt loss (no close frame), like a dropped mobile connection.
        if request.transport is not None:
            request.transport.abort()
        await asyncio.sleep(3600)
    elif action.kind == "offline":
        room.counters["offline_steps"] += 1
        room.offline_until = time.monotonic() + action.seconds
        if request.transport is not None:
            request.transport.abort()
        await asyncio.sleep(3600)
    elif action.kind == "recorded":
        await _send_recorded(action, ws, room, gzip_frames)
    elif action.kind == "replay_end":
        if end_message_needed(room.scenario):
            await _send_frame(Action("frame", specs=[{"type": "end"}]), -1, ws, room, gzip_frames)
    elif action.kind == "garbage":
        room.counters["garbage_sent"] += 1
        await ws.send_bytes(b"\xff\xfe\x00garbage, not a WebcastPushFrame\x0a\x05abc")
    elif action.kind == "bad_payload":
        room.counters["bad_payloads_sent"] += 1
        frame = WebcastPushFrame(
            log_id=next(room.log_ids),
            payload_type="msg",
            payload_encoding="pb",
            headers=[PushHeader(key="compress_type", value="gzip")],
            payload=b"\x1f\x8b\x08\x00 this is not gzip data",
        )
        await ws.send_bytes(bytes(frame))


async def _send_frame(action: Action, index: int, ws: web.WebSocketResponse, room: LiveRoom, gzip_frames: bool) -> None:
    if index in room.prebuilt:
        messages, body = room.prebuilt[index]
    else:
        messages = [room.factory.build(spec) for spec in action.specs]
        body = bytes(room._fetch_result(messages))
    await _send_messages(messages, body, ws, room, gzip_frames, late=action.late)
    if room.sent_log is not None:
        # A bench's record of what TikTok sent: which messages must be stored (a streak's
        # repeats after the first are not rows of their own) and when each left.
        sent_ms = int(time.time() * 1000)
        room.sent_log.write(
            "".join(
                f"{message.msg_id} {spec['type']} {spec.get('repeat_count', 1)} {sent_ms}\n"
                for message, spec in zip(messages, action.specs, strict=True)
            )
        )


async def _send_recorded(action: Action, ws: web.WebSocketResponse, room: LiveRoom, gzip_frames: bool) -> None:
    """A frame of a recording (``--replay``): its messages again, or its bytes as they were."""
    assert isinstance(action, RecordedFrame) and isinstance(room.scenario, ReplayScenario)
    decoded = decode_recorded(room.scenario, action)
    if decoded is None:
        room.counters["heartbeats_not_replayed"] += 1
    elif isinstance(decoded, bytes):
        room.counters["replayed_as_recorded"] += 1
        await ws.send_bytes(decoded)
    else:
        await _send_messages(*decoded, ws, room, gzip_frames)


async def _send_messages(
    messages: list[BaseProtoMessage],
    body: bytes,
    ws: web.WebSocketResponse,
    room: LiveRoom,
    gzip_frames: bool,
    *,
    late: float = 0.0,
) -> None:
    # ``now`` is stamped at send time (appending a field merges it into the encoded
    # message), ``late`` seconds earlier for a frame that was held up on the way: the
    # capture measures frame-to-confirmation latency, and how far behind it is, from it.
    payload = body + bytes(ProtoMessageFetchResult(now=int((time.time() - late) * 1000)))
    headers = []
    if gzip_frames:
        payload = gzip.compress(payload, compresslevel=1)
        headers = [PushHeader(key="compress_type", value="gzip")]
    log_id = next(room.log_ids)
    frame = WebcastPushFrame(log_id=log_id, payload_type="msg", payload_encoding="pb", headers=headers, payload=payload)
    room.unacked[log_id] = messages
    await ws.send_bytes(bytes(frame))
    room.counters["frames_sent"] += 1
    for message in messages:
        room.sent_ids.add(message.msg_id)
        room.sent_by_method[message.method] += 1
