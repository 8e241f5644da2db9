"""A small HTTP proxy for tests: forwards absolute-form requests and tunnels CONNECT.

What the capture's proxy settings must go through: httpx sends TikTok's web
requests to an ``http://`` proxy in absolute form (``GET http://host/path``),
and the WebSocket goes through ``CONNECT host:port`` (websockets_proxy). Each
request line is recorded in ``seen``. Runs on its own event loop in a thread::

    with HttpProxy() as proxy:
        env = {"TIKTOK_HTTP_PROXY": proxy.url}
        ...
        assert any(line.startswith("CONNECT") for line in proxy.seen)
"""

from __future__ import annotations

import asyncio
import threading
from urllib.parse import urlsplit


class HttpProxy:
    def __init__(self, *, require_auth: str | None = None) -> None:
        self.seen: list[str] = []
        self.require_auth = require_auth  # "user:password": answer 407 without it
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.base_events.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> HttpProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        self.seen.append(f"{method} {target}")
        if self.require_auth and not any(line.lower().startswith("proxy-authorization:") for line in lines[1:]):
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        try:
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                parts = urlsplit(target)
                up_reader, up_writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
                path = parts.path + (f"?{parts.query}" if parts.query else "")
                # One request per connection: the origin closes after answering, so does the client side.
                headers = [
                    line for line in lines[1:] if line and not line.lower().startswith(("connection:", "proxy-"))
                ]
                up_writer.write(
                    "\r\n".join([f"{method} {path} {version}", *headers, "Connection: close", "", ""]).encode("latin-1")
                )
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()
