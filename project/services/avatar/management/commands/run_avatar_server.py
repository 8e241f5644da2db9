"""``manage.py run_avatar_server``: the HeyGen + ElevenLabs ConvAI hybrid server."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from project.services.avatar.configuration import SettingsError, load_settings
from project.services.avatar.server import LIVEKIT_CLIENT, create_app, create_runner
from project.services.avatar.session_registry import SessionRegistry


class Command(BaseCommand):
    help = "Run the avatar server: GET / and /public (pages), WebSocket /hybrid (HeyGen + ElevenLabs ConvAI)."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8001, help="TCP port (0 picks a free one). Default 8001.")
        parser.add_argument("--host", default="127.0.0.1", help="Interface to listen on. Default 127.0.0.1.")

    def handle(self, *args, **options):
        try:
            settings = load_settings()
        except SettingsError as exc:
            raise CommandError(str(exc)) from None
        except DatabaseError as exc:
            raise CommandError(
                f"Cannot read Config from the database ({type(exc).__name__}): run `python manage.py doctor`."
            ) from None
        missing = settings.missing()
        if missing:
            raise CommandError(
                "The avatar server cannot start, configuration is missing:\n  - " + "\n  - ".join(missing)
            )
        if not LIVEKIT_CLIENT.is_file():
            self.stderr.write(
                "warning: livekit-client is not installed (node_modules); the pages cannot show the avatar's "
                "video until ./scripts/setup runs npm install."
            )
        try:
            # A start-up check only: it must not wait out an outage as a read during a live does.
            SessionRegistry(outage_wait_seconds=0).current()
        except Exception as exc:
            self.stderr.write(
                f"warning: Redis is not reachable ({type(exc).__name__}); the avatar service will not find "
                "the sessions this server opens."
            )
        asyncio.run(self._serve(create_app(settings, SessionRegistry()), options["host"], options["port"]))

    async def _serve(self, app: web.Application, host: str, port: int) -> None:
        runner = create_runner(app)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]
        self.stdout.write(
            f"🤖 Avatar server listening on http://{host}:{bound}  "
            "(pages: /?token=… and /public?token=…, WebSocket: /hybrid?token=…)"
        )
        self.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        self.stdout.write("👋 Stopping: closing conversations and their HeyGen sessions…")
        self.stdout.flush()
        await runner.cleanup()
        self.stdout.write("✅ Avatar server stopped")
