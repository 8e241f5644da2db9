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

from tests.support.capture import ROOT, simulator_scenarios

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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_it_reports_a_bad_scenario_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"type": "comment", "user": "a", "text": "ok"}, {"type": "teleport"}]))
    result = subprocess.run(
        [sys.executable, str(SIMULATOR), "--scenario-file", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "bad scenario: step 2: unknown type 'teleport'" in result.stderr


def test_it_plays_the_demo_mix_at_a_steady_rate_with_a_new_streak_group_for_every_gift():
    scenarios = simulator_scenarios()
    demo_types = {spec["type"] for action in scenarios.demo().actions for spec in action.specs}
    actions = scenarios.steady(300).actions
    one_second = [actions[index] for index in range(2 * scenarios.STEADY_FRAMES_PER_SECOND)]
    frames = [action for action in one_second if action.kind == "frame"]
    assert sum(action.seconds for action in one_second if action.kind == "wait") == pytest.approx(1.0)
    assert [len(frame.specs) for frame in frames] == [6] * 50
    # A quarter of an hour: the mix loops dozens of times; each gift keeps a group of its own,
    # except a streak's repeats, which share their first message's group.
    specs = [spec for index in range(0, 2 * 50 * 900, 2) for spec in actions[index].specs]
    gifts = [spec for spec in specs if spec["type"] == "gift"]
    firsts = [spec for spec in gifts if spec.get("repeat_count", 1) == 1]
    assert {spec["type"] for spec in specs} == demo_types
    assert len(specs) == 300 * 900
    assert len({spec["group_id"] for spec in firsts}) == len(firsts) > 900
    assert len({spec["group_id"] for spec in gifts}) == len(firsts)


@pytest.mark.slow
def test_it_logs_every_message_it_sends_with_its_type_and_send_time(tmp_path):
    sent_log = tmp_path / "sent.log"
    received: dict[int, str] = {}
    with (
        simulator("--scenario", "steady", "--steady-rate", "100", "--sent-log", str(sent_log)) as ready,
        pointed_at(ready) as client,
    ):
        for event_class in (CommentEvent, GiftEvent):
            client.add_listener(event_class, lambda event: received.setdefault(event.common.msg_id, event))

        async def main():
            await client.start(fetch_live_check=True)
            await asyncio.sleep(3)
            await client.disconnect()

        asyncio.run(main())
    lines = [line.split() for line in sent_log.read_text().splitlines()]
    logged = {int(msg_id): (kind, int(repeat), int(sent_ms)) for msg_id, kind, repeat, sent_ms in lines}
    assert len(logged) == len(lines) >= 100
    comments = {msg_id for msg_id, (kind, _, _) in logged.items() if kind == "comment"}
    gifts = {msg_id for msg_id, (kind, _, _) in logged.items() if kind == "gift"}
    assert comments and gifts
    # Whatever the client got was logged, as what it is; a message logged after the client
    # left is the only one it may have missed.
    assert {msg_id for msg_id, event in received.items() if isinstance(event, CommentEvent)} <= comments
    assert {msg_id for msg_id, event in received.items() if isinstance(event, GiftEvent)} <= gifts
    last_received = max(logged[msg_id][2] for msg_id in received)
    assert {msg_id for msg_id in comments | gifts if logged[msg_id][2] < last_received} <= set(received)


@pytest.mark.slow
def test_it_ends_a_steady_live_after_its_seconds():
    actions = simulator_scenarios().steady(300, seconds=2).actions
    played = list(actions)
    assert len(played) == 2 * 100 + 1
    assert played[-1].specs == [{"type": "end"}]
    assert sum(len(action.specs) for action in played[:-1]) == 600
