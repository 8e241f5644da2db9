"""The avatar server (aiohttp): the two pages, livekit-client, and ``/hybrid``.

Routes:

- ``GET /``        the LiveKit page (``static_hybrid/index_livekit.html``)
- ``GET /public``  the public page (``static_hybrid/index_public.html``)
- ``GET /static/{file}``  the pages' scripts and styles
- ``GET /vendor/livekit-client.esm.mjs``  livekit-client, installed from npm by
  ``scripts/setup`` into ``node_modules`` (nothing comes from a CDN)
- ``GET /hybrid?token=…``  the WebSocket (:mod:`project.services.avatar.hybrid`)

Every WebSocket must present ``avatar_access_token`` as ``?token=``: a stranger
who finds the port cannot spend the streamer's HeyGen minutes. At most
``max_sessions`` conversations run at once; the next one is told so and closed.
Requests are logged by :class:`PathAccessLogger`, which leaves the query string
(and with it the token) out.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
import os
import socket
from pathlib import Path

from aiohttp import WSCloseCode, web
from aiohttp.abc import AbstractAccessLogger

from project.services.avatar.configuration import AvatarSettings
from project.services.avatar.hybrid import HybridConnection
from project.services.avatar.session_registry import SessionRegistry

logger = logging.getLogger("avatar.server")

PAGES_DIR = Path(__file__).resolve().parent / "static_hybrid"
REPO_ROOT = Path(__file__).resolve().parents[3]
LIVEKIT_CLIENT = REPO_ROOT / "node_modules" / "livekit-client" / "dist" / "livekit-client.esm.mjs"

SETTINGS: web.AppKey[AvatarSettings] = web.AppKey("settings", AvatarSettings)
CONNECTIONS: web.AppKey[set[HybridConnection]] = web.AppKey("connections", set)
REGISTRY: web.AppKey[SessionRegistry | None] = web.AppKey("registry", object)

_connection_numbers = itertools.count(1)


class PathAccessLogger(AbstractAccessLogger):
    """One access line per request, by path only.

    aiohttp's default line holds the request line, query string included: the pages
    and ``/hybrid`` carry the access token there, and that line is written at INFO.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status,
            extra={"remote": request.remote or "", "ms": round(time * 1000)},
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def create_runner(app: web.Application) -> web.AppRunner:
    """The runner ``run_avatar_server`` serves the app with (the access log without query strings)."""
    return web.AppRunner(app, shutdown_timeout=15, access_log_class=PathAccessLogger)


def create_app(settings: AvatarSettings, registry: SessionRegistry | None = None) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings
    app[CONNECTIONS] = set()
    app[REGISTRY] = registry
    app.router.add_get("/", _page("index_livekit.html"))
    app.router.add_get("/public", _page("index_public.html"))
    app.router.add_get("/hybrid", hybrid_handler)
    app.router.add_get("/vendor/livekit-client.esm.mjs", livekit_client)
    app.router.add_static("/static/", PAGES_DIR, follow_symlinks=False)
    app.on_shutdown.append(_close_connections)
    return app


def _page(name: str):
    async def handler(request: web.Request) -> web.FileResponse:
        return web.FileResponse(PAGES_DIR / name, headers={"Cache-Control": "no-store"})

    return handler


async def livekit_client(request: web.Request) -> web.StreamResponse:
    if not LIVEKIT_CLIENT.is_file():
        return web.Response(
            status=503,
            text="livekit-client is not installed: run ./scripts/setup (npm install) in the checkout.",
        )
    return web.FileResponse(LIVEKIT_CLIENT, headers={"Content-Type": "text/javascript"})


def token_ok(request: web.Request, expected: str) -> bool:
    given = request.query.get("token", "")
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


async def hybrid_handler(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    if not token_ok(request, settings.access_token):
        logger.warning("refused /hybrid: missing or wrong access token", extra={"remote": request.remote or ""})
        raise web.HTTPUnauthorized(
            text="missing or wrong access token: open the page with ?token=<avatar_access_token>"
        )
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=1 << 20)
    await ws.prepare(request)
    connections = request.app[CONNECTIONS]
    if len(connections) >= settings.max_sessions:
        await ws.send_json(
            {
                "type": "error",
                "message": (
                    f"The avatar is busy: {len(connections)} conversation(s) already running "
                    f"(limit avatar_max_sessions={settings.max_sessions}). Try again later."
                ),
            }
        )
        await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"busy")
        return ws
    owner = f"server:{socket.gethostname()}:{os.getpid()}:{next(_connection_numbers)}"
    connection = HybridConnection(ws, settings, owner=owner, registry=request.app[REGISTRY])
    connections.add(connection)
    try:
        await connection.run()
    finally:
        connections.discard(connection)
    return ws


async def _close_connections(app: web.Application) -> None:
    """On shutdown: end every conversation, which stops its HeyGen session."""
    for connection in list(app[CONNECTIONS]):
        with contextlib.suppress(Exception):
            await connection.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
    for _ in range(100):
        if not app[CONNECTIONS]:
            return
        await asyncio.sleep(0.1)
