"""Real-browser plumbing for the tests: headless Chromium, screenshots, polling.

Chromium starts slowly on a loaded machine, so modules share one browser and every wait
polls with a generous deadline instead of sleeping for a guessed time.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, TypeVar

import requests
from websocket import create_connection

from project.services.dinochrome.chrome import Browser, start_chromium
from tests.support import ROOT

ARTIFACTS = ROOT / "test-artifacts"
T = TypeVar("T")


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name


def page_browser(width: int = 1920, height: int = 1080) -> Browser:
    """A headless Chromium whose viewport is exactly ``width`` x ``height`` CSS pixels."""
    browser = start_chromium(headless=True, window_size=(width, height), page_timeout=90)
    browser.driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    return browser


def transparent_screenshot(browser: Browser, name: str) -> Path:
    """A PNG that keeps the page's transparency (what OBS composites over the stream)."""
    path = artifact(name)
    driver = browser.driver
    driver.execute_cdp_cmd("Emulation.setDefaultBackgroundColorOverride", {"color": {"r": 0, "g": 0, "b": 0, "a": 0}})
    driver.save_screenshot(str(path))
    return path


class DevToolsPage:
    """Evaluates JavaScript in a page of a Chromium that another process drives.

    The DinoChrome worker owns its browser; the test looks into the same browser through
    Chrome's remote debugging port (the DevTools protocol), independently of the
    service's own code.
    """

    def __init__(self, port: int, url_part: str = "/dino/") -> None:
        self.port = port
        self.url_part = url_part

    def _ws_url(self) -> str:
        targets = requests.get(f"http://127.0.0.1:{self.port}/json/list", timeout=10).json()
        for target in targets:
            if target.get("type") == "page" and self.url_part in target.get("url", ""):
                return target["webSocketDebuggerUrl"]
        raise LookupError(f"no page with {self.url_part!r} among {[t.get('url') for t in targets]}")

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        ws = create_connection(self._ws_url(), timeout=30, suppress_origin=True)
        try:
            ws.send(json.dumps({"id": 1, "method": method, "params": params or {}}))
            while True:
                message = json.loads(ws.recv())
                if message.get("id") == 1:
                    break
        finally:
            ws.close()
        if "error" in message:
            raise RuntimeError(f"{method} failed: {message['error']}")
        return message["result"]

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} raised: {result['exceptionDetails']}")
        return result["result"].get("value")

    def stats(self) -> dict[str, Any]:
        return self.evaluate("window.dino.stats()")

    def screenshot(self, name: str) -> Path:
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        path = artifact(name)
        path.write_bytes(base64.b64decode(data))
        return path


def dino_worker_env(live_server, port: int, query: str = "") -> dict[str, str]:
    """The worker's browser: headless, on the test server's game, with DevTools open to the test."""
    return {
        "DINO_URL": f"{live_server.url}/dino/{query}",
        "DINO_HEADLESS": "true",
        "DINO_KIOSK": "false",
        "DINO_REMOTE_DEBUGGING_PORT": str(port),
    }
