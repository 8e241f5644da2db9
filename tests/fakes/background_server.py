"""Run an aiohttp application on 127.0.0.1 (ephemeral port) in a thread of its own.

The fakes are driven from synchronous pytest code and from other processes, so
each one gets its own event loop; tests read what it recorded under ``lock``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web


class BackgroundServer:
    def __init__(self, build_app: Callable[[], web.Application]) -> None:
        self._build_app = build_app
        self.lock = threading.RLock()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=type(self).__name__, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> BackgroundServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=30)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(self._build_app(), shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    def call(self, coro: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the server's loop from test code."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout)

    def stop(self) -> None:
        if self._runner is not None:
            try:
                self.call(self._runner.cleanup(), timeout=30)
            finally:
                self._runner = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
