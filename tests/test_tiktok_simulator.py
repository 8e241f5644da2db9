"""The simulator speaks what the unmodified TikTokLive client expects."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys

import pytest
import requests
import websockets
from TikTokLive import TikTokLiveClient
from TikTokLive.client.web.web_settings import WebDefaults
from TikTokLive.events import CommentEvent, ConnectEvent, GiftEvent, LiveEndEvent

from tests.capture_helpers import ROOT

SIMULATOR = ROOT / "scripts" / "tiktok_simulator.py"


@contextlib.contextmanager
def simulator(*args: str):
    proc = subprocess.Popen(
        [sys.executable, str(SIMULATOR), "--port", "0", *args], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        ready = json.loads(proc.stdout.readline())
        yield ready
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()


@contextlib.contextmanager
def pointed_at(ready: dict):
    saved = (WebDefaults.tiktok_app_url, WebDefaults.tiktok_webcast_url)
    WebDefaults.tiktok_app_url, WebDefaults.tiktok_webcast_url = ready["app_url"], ready["webcast_url"]
    try:
        yield TikTokLiveClient("streamer", web_kwargs={"signer_kwargs": {"sign_api_base": ready["sign_url"]}})
    finally:
        WebDefaults.tiktok_app_url, WebDefaults.tiktok_webcast_url = saved


def test_it_serves_the_unmodified_client_room_lookup_live_check_fetch_socket_acks_and_heartbeats():
    seen: list[str] = []
    with simulator("--scenario", "live-end", "--ping-interval", "0.2") as ready, pointed_at(ready) as client:
        for event_class in (ConnectEvent, CommentEvent, GiftEvent, LiveEndEvent):
            client.add_listener(event_class, lambda event: seen.append(type(event).__name__))

        async def main():
            task = await client.start(fetch_live_check=True)
            await asyncio.wait_for(task, timeout=60)
            await client.web.close()

        asyncio.run(main())
        status = requests.get(ready["status_url"], timeout=10).json()
    assert seen == ["ConnectEvent", "CommentEvent", "GiftEvent", "LiveEndEvent"]
    assert client.room_id is None  # reset by the client's own disconnect at the live's end
    assert status["live_page_requests"] == 1  # room id from the page's SIGI_STATE
    assert status["check_alive_requests"] == 1
    assert status["sign_requests"] == 1
    assert status["enter_room"] == 1
    assert status["heartbeats"] >= 1
    assert status["acks"] == status["frames_sent"] >= 2
    assert status["ended"] and not status["live"]


def test_it_refuses_a_socket_without_the_signed_route_params():
    with simulator("--scenario", "live-end") as ready:
        url = ready["base_url"].replace("http", "ws") + f"/webcast/im/push/v2/?room_id={ready['room_id']}&wrss=forged"

        async def connect():
            async with websockets.connect(url, subprotocols=["echo-protocol"]):
                pass

        with pytest.raises(websockets.InvalidStatus) as refused:
            asyncio.run(connect())
    assert refused.value.response.status_code == 400
    assert refused.value.response.headers["Handshake-Msg"] == "invalid route params (simulated)"


def test_it_reports_a_bad_scenario_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"type": "comment", "user": "a", "text": "ok"}, {"type": "teleport"}]))
    result = subprocess.run(
        [sys.executable, str(SIMULATOR), "--scenario-file", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "bad scenario: step 2: unknown type 'teleport'" in result.stderr
