"""Who may open /overlays/ and its event stream (the overlay token, or a local client), how
many streams a process serves, and that they share one Redis connection: on the real Redis,
in-process and through a real gunicorn with HTTP clients."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import requests
from django.conf import settings as django_settings

from project.app_config.config import get_config, set_config
from project.services.overlays.stream import publish_card
from tests.support.waiting import wait_for
from tests.support.web_servers import close, gunicorn, status

TOKEN = "overlay-token-for-tests-4f9d2a"
ELSEWHERE = "203.0.113.7"  # a documentation address: only ever a REMOTE_ADDR value here, never contacted


def card(card_id: str) -> dict:
    return {"id": card_id, "type": "gift", "nickname": "Ana", "text": "sent Rose", "duration_ms": 5000}


# --- the token and the local rule, in-process ------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/overlays/", "/overlays/events/"])
def test_a_client_elsewhere_needs_the_token(client, overlay_stream, path):
    set_config("overlays_token", TOKEN)
    refused = client.get(path, REMOTE_ADDR=ELSEWHERE)
    assert refused.status_code == 403
    assert "needs its token" in refused.content.decode() and "OBS overlay URL" in refused.content.decode()
    wrong = client.get(f"{path}?token=not-the-token", REMOTE_ADDR=ELSEWHERE)
    assert wrong.status_code == 403 and "not the current one" in wrong.content.decode()
    assert status(client, f"{path}?token={TOKEN}", REMOTE_ADDR=ELSEWHERE) == 200


@pytest.mark.django_db
def test_without_a_configured_token_a_client_elsewhere_is_refused_whatever_it_sends(client, overlay_stream):
    assert get_config("overlays_token") == ""
    assert status(client, "/overlays/events/?token=", REMOTE_ADDR=ELSEWHERE) == 403
    assert status(client, "/overlays/events/?token=x", REMOTE_ADDR=ELSEWHERE) == 403


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header",
    ["HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP"],
    ids=["x-forwarded-for", "forwarded", "x-real-ip"],
)
def test_a_request_through_a_proxy_is_not_local_even_from_loopback(client, overlay_stream, header):
    set_config("overlays_token", TOKEN)
    assert status(client, "/overlays/events/", REMOTE_ADDR="127.0.0.1", **{header: "127.0.0.1"}) == 403
    assert status(client, f"/overlays/events/?token={TOKEN}", REMOTE_ADDR="127.0.0.1", **{header: ELSEWHERE}) == 200


@pytest.mark.django_db
def test_a_local_client_needs_no_token_unless_that_is_turned_off(client, overlay_stream, settings):
    assert status(client, "/overlays/", REMOTE_ADDR="::1") == 200
    assert status(client, "/overlays/events/", REMOTE_ADDR="127.0.0.1") == 200
    settings.OVERLAYS_LOCAL_WITHOUT_TOKEN = False
    assert status(client, "/overlays/events/", REMOTE_ADDR="127.0.0.1") == 403


@pytest.mark.django_db
def test_the_page_hands_its_token_to_the_event_stream(client):
    set_config("overlays_token", TOKEN)
    page = client.get(f"/overlays/?token={TOKEN}", REMOTE_ADDR=ELSEWHERE)
    assert page["Referrer-Policy"] == "no-referrer", "card images must not receive the token"
    script = page.content.decode()
    assert 'new URLSearchParams(window.location.search).get("token")' in script
    assert 'url.searchParams.set("token", TOKEN)' in script


# --- the admin: the OBS URL ------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_makes_a_token_on_first_view_and_shows_the_obs_url(admin_client_logged, client, overlay_stream):
    response = admin_client_logged.get("/admin/overlays/obsoverlayurl/")
    assert response.status_code == 200
    token = get_config("overlays_token")
    assert len(token) >= 32
    assert f'value="http://testserver/overlays/?token={token}"' in response.content.decode()
    again = admin_client_logged.get("/admin/overlays/obsoverlayurl/")
    assert f"?token={token}" in again.content.decode(), "a second view keeps the token"
    assert "Overlays" in admin_client_logged.get("/admin/").content.decode()

    regenerated = admin_client_logged.post("/admin/overlays/obsoverlayurl/")
    assert regenerated.status_code == 302
    new_token = get_config("overlays_token")
    assert new_token != token and len(new_token) >= 32
    client.logout()
    assert status(client, f"/overlays/events/?token={token}", REMOTE_ADDR=ELSEWHERE) == 403
    assert status(client, f"/overlays/events/?token={new_token}", REMOTE_ADDR=ELSEWHERE) == 200


@pytest.mark.django_db
def test_the_config_admin_masks_the_overlay_token(admin_client_logged):
    set_config("overlays_token", TOKEN)
    listing = admin_client_logged.get("/admin/app_config/config/").content.decode()
    assert TOKEN not in listing and "••••" + TOKEN[-4:] in listing


# --- the stream limit, in-process ------------------------------------------------------------


@pytest.mark.django_db
def test_past_the_stream_limit_the_endpoint_answers_503_with_retry_after(client, overlay_stream, settings):
    settings.OVERLAYS_MAX_STREAMS = 2
    settings.OVERLAYS_SSE_HEARTBEAT = 1
    first, second = client.get("/overlays/events/"), client.get("/overlays/events/")
    try:
        assert (first.status_code, second.status_code) == (200, 200)
        third = client.get("/overlays/events/")
        assert third.status_code == 503
        assert third["Retry-After"] == "10"
        assert "OVERLAYS_MAX_STREAMS" in third.content.decode()
    finally:
        close(first)
    # A closed stream gives its slot back, read or not.
    assert status(client, "/overlays/events/") == 200
    close(second)


# --- through gunicorn, with real HTTP clients ------------------------------------------------


def worker_pid(master: subprocess.Popen) -> int:
    children = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def redis_connections_of(pid: int) -> int:
    """Established TCP connections of process ``pid`` to the Redis port (from /proc)."""
    redis_port = urlsplit(django_settings.REDIS_URL).port or 6379
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == redis_port and fields[3] == "01" and fields[9] in inodes:  # 01: ESTABLISHED
                count += 1
    return count


def readers_named(key: str) -> list[dict]:
    clients = redis.Redis.from_url(django_settings.REDIS_URL).client_list()
    return [c for c in clients if c.get("name", "").startswith("overlays-reader:") and c["name"].endswith(f":{key}")]


def open_stream(url: str, **headers: str) -> tuple[requests.Response, Iterator[str]]:
    response = requests.get(url, stream=True, timeout=30, headers=headers)
    return response, response.iter_lines(chunk_size=1, decode_unicode=True)


def http_status(url: str) -> int:
    with requests.get(url, stream=True, timeout=30) as response:
        return response.status_code


def next_card(lines: Iterator[str]) -> str:
    for line in lines:
        if line.startswith('data: {"id"'):
            return line
    raise AssertionError("the stream ended without a card")


@pytest.mark.slow
@pytest.mark.django_db
def test_a_gunicorn_worker_serves_its_limit_of_streams_on_one_redis_connection(overlay_stream, tmp_path):
    env = {
        "OVERLAYS_STREAM": overlay_stream,
        "OVERLAYS_SSE_HEARTBEAT": "1",
        "OVERLAYS_MAX_STREAMS": "3",
        "OVERLAYS_TOKEN": TOKEN,
    }
    with gunicorn(tmp_path, **env) as (base, master):
        events = f"{base}/overlays/events/"
        pid = worker_pid(master)
        streams = []
        try:
            streams.append(open_stream(events))
            assert streams[0][0].status_code == 200
            wait_for(lambda: readers_named(overlay_stream), timeout=10, what="the reader to connect")
            alone = redis_connections_of(pid)
            streams += [open_stream(events), open_stream(f"{events}?token={TOKEN}", **{"X-Forwarded-For": ELSEWHERE})]
            assert [s[0].status_code for s in streams] == [200, 200, 200]

            # One more is refused, at once, while ordinary requests are still served.
            started = time.monotonic()
            refused = requests.get(events, timeout=30)
            assert (refused.status_code, refused.headers["Retry-After"]) == (503, "10")
            assert time.monotonic() - started < 5
            assert requests.get(f"{base}/healthz", timeout=30).json() == {"ok": True}

            # The three share the worker's one reader: one connection, one blocked XREAD.
            publish_card(card("to-all-three"))
            for _, lines in streams:
                assert '"id": "to-all-three"' in next_card(lines)
            [reader] = readers_named(overlay_stream)
            assert reader["name"] == f"overlays-reader:{pid}:{overlay_stream}"
            assert redis_connections_of(pid) == alone == 1

            # A closed stream frees its slot once the server notices (at its next ping).
            streams.pop()[0].close()
            wait_for(lambda: http_status(events) == 200, timeout=15, what="the freed slot")
        finally:
            for response, _ in streams:
                response.close()


@pytest.mark.slow
@pytest.mark.django_db
def test_gunicorn_refuses_a_proxied_client_without_the_token(overlay_stream, tmp_path):
    env = {"OVERLAYS_STREAM": overlay_stream, "OVERLAYS_SSE_HEARTBEAT": "1", "OVERLAYS_TOKEN": TOKEN}
    with gunicorn(tmp_path, **env) as (base, _):
        proxied = {"X-Forwarded-For": ELSEWHERE}
        assert requests.get(f"{base}/overlays/", headers=proxied, timeout=30).status_code == 403
        assert requests.get(f"{base}/overlays/events/?token=wrong", headers=proxied, timeout=30).status_code == 403
        response, lines = open_stream(f"{base}/overlays/events/?token={TOKEN}", **proxied)
        try:
            assert response.status_code == 200 and next(lines) == "retry: 1000"
        finally:
            response.close()
        page = requests.get(f"{base}/overlays/?token={TOKEN}", headers=proxied, timeout=30)
        assert page.status_code == 200 and "window.overlays" in page.text


@pytest.mark.django_db
def test_overlay_url_prints_the_obs_url_and_keeps_the_token(capsys):
    from django.core.management import call_command

    call_command("overlay_url", "--base", "http://192.0.2.10:8000/")
    first = capsys.readouterr().out.strip()
    assert first == f"http://192.0.2.10:8000/overlays/?token={get_config('overlays_token')}"
    call_command("overlay_url")
    assert capsys.readouterr().out.strip() == first.replace("192.0.2.10", "127.0.0.1")
    call_command("overlay_url", "--new")
    assert capsys.readouterr().out.strip() != first.replace("192.0.2.10", "127.0.0.1")
