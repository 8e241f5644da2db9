"""The overlay push channel on the real Redis: stream, resume, expiry, and the SSE endpoint."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from project.services.overlays.stream import id_millis, publish_card, sse_events, valid_id
from tests.support.web_servers import gunicorn, parse_sse


def card(card_id: str, duration_ms: int = 5000, **extra) -> dict:
    return {"id": card_id, "type": "gift", "nickname": "Ana", "text": "sent Rose", "duration_ms": duration_ms, **extra}


@pytest.fixture
def fast_heartbeat(settings):
    settings.OVERLAYS_SSE_HEARTBEAT = 1


def test_it_replays_a_fresh_card_to_a_page_that_opens_after_it(overlay_stream, fast_heartbeat):
    entry_id = publish_card(card("c1", 8000))
    events = sse_events(None)
    try:
        hello = parse_sse(next(events))
        assert hello["event"] == "hello" and hello["data"] == {"heartbeat_ms": 1000}
        assert hello["retry"] == "1000"
        got = parse_sse(next(events))
    finally:
        events.close()
    assert got["event"] == "card" and got["id"] == entry_id
    assert got["data"]["id"] == "c1" and got["data"]["nickname"] == "Ana"
    assert 0 < got["data"]["remaining_ms"] <= 8000


@pytest.mark.slow
def test_it_resumes_after_the_last_card_the_page_saw(overlay_stream, fast_heartbeat):
    first = publish_card(card("seen"))
    second = publish_card(card("missed"))
    events = sse_events(first)
    try:
        next(events)  # hello
        got = parse_sse(next(events))
        after = parse_sse(next(events))
    finally:
        events.close()
    assert (got["id"], got["data"]["id"]) == (second, "missed")
    assert after["event"] == "ping", "nothing else was published"


@pytest.mark.slow
def test_it_does_not_replay_a_card_whose_time_is_over(overlay_stream, fast_heartbeat):
    publish_card(card("gone", duration_ms=50))
    time.sleep(0.3)
    events = sse_events(None)
    try:
        next(events)
        assert parse_sse(next(events))["event"] == "ping"
    finally:
        events.close()


@pytest.mark.slow
def test_it_delivers_a_card_published_while_listening(overlay_stream, fast_heartbeat):
    events = sse_events(None)
    try:
        next(events)
        threading.Timer(0.3, publish_card, args=(card("live"),)).start()
        messages = [parse_sse(next(events)) for _ in range(3)]
    finally:
        events.close()
    cards = [m for m in messages if m["event"] == "card"]
    assert [c["data"]["id"] for c in cards] == ["live"]


@pytest.mark.slow
def test_it_ends_the_stream_so_the_browser_reconnects(overlay_stream, fast_heartbeat, settings):
    settings.OVERLAYS_SSE_MAX_SECONDS = 2
    started = time.monotonic()
    messages = list(sse_events(None))
    assert time.monotonic() - started < 10
    assert messages[0].startswith("retry: 1000\nevent: hello")
    assert all(parse_sse(m)["event"] == "ping" for m in messages[1:])


def test_it_keeps_the_stream_short(overlay_stream):
    from project.services.overlays.stream import KEEP_CARDS, publisher

    for i in range(KEEP_CARDS + 300):
        publish_card(card(f"c{i}"))
    assert publisher().xlen(overlay_stream) < KEEP_CARDS + 300


def test_it_refuses_a_card_without_a_display_time(overlay_stream):
    with pytest.raises(ValueError, match="needs a positive duration_ms"):
        publish_card({"id": "x", "type": "gift"})


def test_it_accepts_only_stream_ids_as_last_event_id():
    assert valid_id("1795460707495-0") == "1795460707495-0"
    for bad in ("", None, "$", "0", "abc-1", "1-0; FLUSHALL", "1-0\nid: 2-0"):
        assert valid_id(bad) is None
    assert id_millis("1795460707495-3") == 1795460707495


def test_it_serves_the_endpoint_as_server_sent_events(client, db, overlay_stream, fast_heartbeat):
    entry_id = publish_card(card("via-view"))
    response = client.get("/overlays/events/", HTTP_LAST_EVENT_ID="not-an-id")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    assert response["Cache-Control"] == "no-cache, no-store"
    stream = iter(response.streaming_content)
    try:
        assert b"event: hello" in next(stream)
        got = parse_sse(next(stream).decode())
    finally:
        response.close()
    # a malformed Last-Event-ID is ignored: the page starts afresh and still gets the fresh card
    assert got["id"] == entry_id and got["data"]["id"] == "via-view"


def test_it_refuses_anything_but_get_on_the_endpoint(client):
    assert client.post("/overlays/events/").status_code == 405


@pytest.mark.slow
@pytest.mark.django_db
def test_it_streams_to_several_pages_under_gunicorn_threads(overlay_stream, tmp_path):
    """Two open streams and a normal request at once: gthread serves them side by side."""
    with gunicorn(tmp_path, threads=4, OVERLAYS_STREAM=overlay_stream, OVERLAYS_SSE_HEARTBEAT="1") as (base, _):
        streams = [requests.get(f"{base}/overlays/events/", stream=True, timeout=30) for _ in range(2)]
        lines = [s.iter_lines(decode_unicode=True) for s in streams]
        for it in lines:
            assert next(it) == "retry: 1000"
        assert requests.get(f"{base}/healthz", timeout=30).json() == {"ok": True}
        publish_card(card("to-everyone"))
        for it in lines:
            data = None
            while data is None or data.get("id") != "to-everyone":
                line = next(it)
                data = json.loads(line[6:]) if line.startswith('data: {"') else data
        for s in streams:
            s.close()


def test_the_compose_web_server_runs_threaded_workers_for_the_streams():
    import yaml

    from tests.support.worker_processes import ROOT

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = compose["services"]["web"]["command"]
    assert command[command.index("--worker-class") + 1] == "gthread"
    assert int(command[command.index("--threads") + 1]) >= 8


@pytest.mark.slow
def test_a_page_that_opens_while_redis_is_away_gets_a_stream_not_an_error(overlay_stream, fast_heartbeat, settings):
    """Nothing listens on port 9: the stream says so, keeps pinging and ends on time."""
    settings.REDIS_URL = "redis://127.0.0.1:9/0"
    settings.OVERLAYS_SSE_MAX_SECONDS = 3
    started = time.monotonic()
    messages = [parse_sse(m) for m in sse_events(None)]
    assert time.monotonic() - started < 6
    assert [m["event"] for m in messages[:2]] == ["hello", "unavailable"]
    assert messages[1]["data"] == {"reason": "redis unavailable"}
    assert {m["event"] for m in messages[2:]} == {"ping"}, "one ping per heartbeat while waiting"
    assert len(messages) >= 3


@pytest.mark.slow
def test_the_endpoint_answers_200_while_redis_is_away(client, db, overlay_stream, fast_heartbeat, settings):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"
    settings.OVERLAYS_SSE_MAX_SECONDS = 2
    response = client.get("/overlays/events/", HTTP_LAST_EVENT_ID="1795460707495-0")
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    assert "event: hello" in body and "event: unavailable" in body
