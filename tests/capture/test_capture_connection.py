"""What real TikTok does to a capture, through the unmodified TikTokLive client: sign-server
rate limits, refused sockets, an offline streamer, drops; and the settings a real live needs
(sign-server key, session, proxies, room id). The simulator runs beside the capture, which is
pointed at it as at TikTok, so each test can read what the capture asked of it."""

from __future__ import annotations

import itertools
import re
import signal
import subprocess
import sys
import time

import pytest

from project.tiktok_events.capture.retry import RetryPolicy, backoff_delay, rate_limit_hint
from project.tiktok_events.models import LiveEvent, LiveSession
from tests.fakes.http_proxy import HttpProxy
from tests.support.capture import ROOT, comment, end, wait
from tests.support.servers import subprocess_env
from tests.support.simulated_tiktok import FAST_RETRIES, capture, simulator

NOW = 1_780_000_000.0


def chat(n: int) -> dict:
    return comment(f"viewer{n % 3}", f"message {n}")


def gaps(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(times)]


def comments_of(session_id: int) -> list[str]:
    return sorted(
        LiveEvent.objects.filter(session_id=session_id, event_type="CommentEvent").values_list(
            "event_data__comment", flat=True
        )
    )


# -- when to come back: the rules, on their own ------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "body", "seconds", "source"),
    [
        ({"Retry-After": "20", "RateLimit-Remaining": "0"}, b"", 20, "Retry-After"),
        # An HTTP date weeks away: capped at a day.
        ({"Retry-After": "Wed, 24 Jun 2026 10:00:00 GMT"}, b"", 86400, "Retry-After"),
        ({"RateLimit-Reset": "45"}, b"", 45, "RateLimit-Reset"),
        ({"X-RateLimit-Reset": str(int(NOW) + 300)}, b"", 300, "X-RateLimit-Reset"),
        ({"RateLimit-Reset": str(int(NOW * 1000) + 90_000)}, b"", 90, "RateLimit-Reset"),
        ({}, b'{"message": "Sign server rate limit reached. Try again in 03:02."}', 182, "body message"),
        ({}, b'{"message": "You have hit the rate limit. Try again in 1551 seconds."}', 1551, "body message"),
        ({}, b'{"reset_time": %d}' % (int(NOW) + 7200), 7200, "body reset_time"),
        # A minute limit and the day's limit both hit: the longer wait wins.
        ({"Retry-After": "60"}, b'{"message": "rate_limit_account_day: try again in 5 hours"}', 18000, "body message"),
    ],
)
def test_a_rate_limit_is_read_from_the_headers_and_the_body(headers, body, seconds, source):
    hint = rate_limit_hint(headers, body, NOW)
    assert hint is not None and hint.source == source
    assert hint.seconds == pytest.approx(seconds, abs=1)


def test_a_rate_limit_that_says_zero_or_nothing_gives_no_hint():
    # TikTokLive's own reading: RateLimit-Remaining (a count) — 0 when the limit is hit.
    assert rate_limit_hint({"RateLimit-Remaining": "0"}, b"", NOW) is None
    assert rate_limit_hint({"Retry-After": "0"}, b'{"message": "try again in 0 seconds"}', NOW) is None
    assert rate_limit_hint({}, b"<html>busy</html>", NOW) is None


def test_the_refusal_ladder_climbs_from_30_s_to_15_min_with_jitter():
    policy = RetryPolicy()
    delays = [backoff_delay(step, policy.refusal_base, policy.refusal_max) for step in range(8)]
    assert 15 <= delays[0] <= 30 and 30 <= delays[1] <= 60
    assert all(450 <= delay <= 900 for delay in delays[5:])
    assert len({round(delay, 3) for delay in delays}) == len(delays)  # jittered


# -- the live, through the real client --------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_it_waits_for_the_streamer_to_go_live_without_spending_sign_requests(vhost, seeded):
    with simulator("offline-then-live") as tiktok:
        started = time.monotonic()
        run = capture(vhost, tiktok, args=["--duration", "25"])
        status = tiktok.status()
    assert run.returncode == 0, run.output
    assert "⏳ Waiting for @simulated_streamer to go live" in run.output
    waiting, connected = run.output.index("⏳ Waiting"), run.output.index("✅ Connected")
    assert waiting < connected
    assert time.monotonic() - started >= 10
    assert status["sign_requests"] == 1  # an offline live costs room checks, not sign requests
    assert status["check_alive_requests"] + status["live_page_requests"] >= 4
    session = LiveSession.objects.get(pk=run.session_id)
    assert session.status == LiveSession.Status.ENDED and session.end_reason == "the LIVE ended"
    assert LiveEvent.objects.filter(session=session, event_type="CommentEvent").count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_ctrl_c_while_waiting_for_the_live_stops_cleanly(vhost, seeded):
    with simulator("offline") as tiktok:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "capture_tiktok_live", "--username", "someone"],
            cwd=ROOT,
            env=subprocess_env(vhost, **{**FAST_RETRIES, **tiktok.env}),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            lines = []
            for line in proc.stdout:
                lines.append(line)
                if "Waiting for @someone to go live" in line:
                    break
            proc.send_signal(signal.SIGINT)
            output = "".join(lines) + proc.communicate(timeout=30)[0]
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, output
    assert "Stopped before the LIVE started (stopped with Ctrl+C)" in output
    assert not LiveSession.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_no_wait_keeps_the_old_behaviour_for_an_offline_streamer(vhost, seeded):
    with simulator("offline") as tiktok:
        run = capture(vhost, tiktok, args=["--no-wait"])
    assert run.returncode == 1
    assert "@simulated_streamer is not live right now" in run.output
    assert not LiveSession.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_it_waits_as_long_as_the_sign_server_says_one_request_per_step(vhost, seeded):
    # Retry-After 6 s: longer than the 1-2 s it would wait on its own after a 429 with no hint
    # it could use, shorter than the no-hint ladder's 30 s.
    scenario = {"steps": [comment("early", "hola"), end()], "rate_limited_fetches": 2, "retry_after": 6}
    with simulator(scenario) as tiktok:
        run = capture(vhost, tiktok)
        status = tiktok.status()
    assert run.returncode == 0, run.output
    assert status["sign_requests"] == 3 and status["rate_limited"] == 2
    assert all(gap >= 6 for gap in gaps(status["sign_request_times"])), status["sign_request_times"]
    waits = re.findall(
        r"rate-limiting new connections \(sim\)\. Next try at \d\d:\d\d:\d\d \(in (\d+) s, Retry-After\)", run.output
    )
    # Retry-After plus a jitter of up to a tenth of it, so 6.0-6.6 s, printed rounded
    assert len(waits) == 2 and all(6 <= int(seconds) <= 7 for seconds in waits), run.output
    # where to put a key: at the start and with the first rate limit, not with every one
    assert run.output.count("Config → sign_api_key") == 2, run.output
    assert run.events().filter(event_type="CommentEvent").count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_without_a_hint_it_backs_off_exponentially_not_every_second(vhost, seeded):
    scenario = {"steps": [comment("early", "hola"), end()], "rate_limited_fetches": 3, "retry_after": 0}
    with simulator(scenario) as tiktok:
        run = capture(vhost, tiktok, env={"TTE_CAPTURE_REFUSAL_BACKOFF_SECONDS": "2"})
        status = tiktok.status()
    assert run.returncode == 0, run.output
    assert status["sign_requests"] == 4
    first, second, third = gaps(status["sign_request_times"])
    # 2 s, 4 s, 8 s ladders, each at least half fixed: never TikTokLive's "try again in 0 seconds".
    assert first >= 1.0 and second >= 2.0 and third >= 4.0, (first, second, third)
    assert "(in" in run.output and "back-off)" in run.output


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_refused_socket_is_not_a_connection_and_it_gives_up_with_an_error(vhost, seeded):
    with simulator("blocked") as tiktok:
        run = capture(vhost, tiktok, args=["--give-up-after", "3"])
        status = tiktok.status()
    assert run.returncode == 1, run.output
    assert "TikTok refused the WebSocket connection (DEVICE_BLOCKED, HTTP 200)" in run.output
    assert "3 refusals in a row: giving up" in run.output
    assert "sign_api_key" in run.output and "tiktok_session_id" in run.output and "tiktok_http_proxy" in run.output
    assert "✅ Connected" not in run.output
    assert status["blocked_sockets"] == 3 and status["sign_requests"] == 3
    assert not LiveSession.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
@pytest.mark.parametrize(
    ("status", "reason"), [(200, "DEVICE_BLOCKED"), (200, "illegal secret key"), (403, "Forbidden")]
)
def test_refusals_are_retried_on_the_slow_ladder_until_tiktok_lets_it_in(vhost, seeded, status, reason):
    scenario = {
        "steps": [comment("first", "hola"), end()],
        "blocked_sockets": 2,
        "blocked_status": status,
        "blocked_reason": reason,
    }
    with simulator(scenario) as tiktok:
        run = capture(vhost, tiktok, env={"TTE_CAPTURE_REFUSAL_BACKOFF_SECONDS": "1"})
        status = tiktok.status()
    assert run.returncode == 0, run.output
    assert f"TikTok refused the WebSocket connection ({reason}, HTTP {scenario['blocked_status']})" in run.output
    assert "Refusal 1 of 5" in run.output and "Refusal 2 of 5" in run.output
    assert run.output.index("Refusal 2 of 5") < run.output.index("✅ Connected")
    first, second = gaps(status["sign_request_times"])
    assert first >= 0.5 and second >= 1.0
    assert LiveSession.objects.count() == 1
    assert comments_of(run.session_id) == ["hola"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_an_offline_reading_during_a_reconnect_gets_a_grace_period(vhost, seeded):
    steps = [chat(1), chat(2), wait(0.3), {"type": "offline", "seconds": 4}, chat(3), chat(4), wait(0.3), end()]
    with simulator({"steps": steps}) as tiktok:
        run = capture(vhost, tiktok, args=["--offline-grace", "60"])
    assert run.returncode == 0, run.output
    assert "reads offline; waiting up to" in run.output
    assert LiveSession.objects.count() == 1
    assert comments_of(run.session_id) == [f"message {n}" for n in range(1, 5)]
    assert LiveSession.objects.get().end_reason == "the LIVE ended"


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_live_offline_past_the_grace_period_ends_the_session(vhost, seeded):
    steps = [chat(1), wait(0.3), {"type": "offline", "seconds": 60}, chat(2), end()]
    with simulator({"steps": steps}) as tiktok:
        started = time.monotonic()
        run = capture(vhost, tiktok, args=["--offline-grace", "3"])
    assert run.returncode == 0, run.output
    assert time.monotonic() - started < 40
    session = LiveSession.objects.get()
    assert (session.status, session.end_reason) == (LiveSession.Status.ENDED, "the streamer is no longer live")
    assert comments_of(session.pk) == ["message 1"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_the_drop_ladder_starts_again_after_a_healthy_connection(vhost, seeded):
    healthy = [step for n in range(10, 16) for step in (chat(n), wait(0.5))]  # 3 s of events
    steps = [
        chat(1),
        wait(0.3),
        {"type": "drop"},
        chat(2),
        {"type": "drop"},
        *healthy,
        {"type": "drop"},
        chat(3),
        end(),
    ]
    with simulator({"steps": steps}) as tiktok:
        run = capture(vhost, tiktok, env={"TTE_CAPTURE_HEALTHY_SECONDS": "2"})
    assert run.returncode == 0, run.output
    attempts = [int(n) for n in re.findall(r"Reconnect attempt (\d+) in", run.output)]
    # The second drop came right after a reconnect: attempt 2. The third, after a healthy stretch: 1 again.
    assert attempts == [1, 2, 1], run.output
    assert LiveSession.objects.count() == 1


# -- settings a real live needs ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_the_sign_server_key_comes_from_a_file_and_never_shows(vhost, seeded, tmp_path):
    key = "euler-secret-key-4f2a"
    (tmp_path / "sign_key").write_text(key + "\n")
    with simulator("live-end") as tiktok:
        run = capture(vhost, tiktok, env={"SIGN_API_KEY_FILE": str(tmp_path / "sign_key")})
        status = tiktok.status()
    assert run.returncode == 0, run.output
    assert status["sign_api_keys"] == ["4f2a"]
    assert key not in run.output
    assert "No sign-server API key" not in run.output


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_without_a_key_the_start_says_where_to_set_one(vhost, seeded):
    with simulator("live-end") as tiktok:
        run = capture(vhost, tiktok)
        status = tiktok.status()
    assert run.returncode == 0, run.output
    assert "No sign-server API key" in run.output and "Config → sign_api_key" in run.output
    assert status["sign_api_keys"] == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_session_id_reaches_tiktok_only_when_its_sign_host_is_trusted(vhost, seeded):
    session = {"TIKTOK_SESSION_ID": "0123456789abcdef5e55", "TIKTOK_TARGET_IDC": "useast2a"}
    with simulator("live-end") as tiktok:
        untrusted = capture(vhost, tiktok, env=session)
        host = tiktok.ready["sign_url"].split("://", 1)[1]
        trusted = capture(vhost, tiktok, env={**session, "WHITELIST_AUTHENTICATED_SESSION_ID_HOST": host})
        status = tiktok.status()
    assert untrusted.returncode == 1
    assert f"WHITELIST_AUTHENTICATED_SESSION_ID_HOST={host}" in untrusted.output
    assert trusted.returncode == 0, trusted.output
    assert "logged-in TikTok session (data centre useast2a)" in trusted.output
    assert status["session_ids"] == ["5e55"]  # on the sign request and the WebSocket's cookie
    for run in (untrusted, trusted):
        assert "0123456789abcdef5e55" not in run.output


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_session_id_without_its_data_centre_is_refused_with_the_fix(vhost, seeded):
    with simulator("live-end") as tiktok:
        run = capture(vhost, tiktok, env={"TIKTOK_SESSION_ID": "0123456789abcdef5e55"})
    assert run.returncode == 1
    assert "tiktok_target_idc" in run.output and "tt-target-idc" in run.output
    assert "0123456789abcdef5e55" not in run.output


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_room_id_override_skips_the_streamers_page(vhost, seeded):
    with simulator("live-end") as tiktok:
        run = capture(vhost, tiktok, env={"TIKTOK_ROOM_ID": tiktok.ready["room_id"]})
        status = tiktok.status()
    assert run.returncode == 0, run.output
    assert status.get("live_page_requests", 0) == 0 and status.get("room_api_requests", 0) == 0
    assert LiveSession.objects.get().room_id == tiktok.ready["room_id"]
    assert f"room id {tiktok.ready['room_id']}" in run.output


@pytest.mark.slow
def test_a_room_id_that_is_not_a_number_is_refused(vhost, seeded):
    with simulator("live-end") as tiktok:
        run = capture(vhost, tiktok, env={"TIKTOK_ROOM_ID": "@maria/live"})
    assert run.returncode == 1
    assert "Config tiktok_room_id='@maria/live' is not a room id" in run.output


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_web_requests_and_the_websocket_go_through_the_proxy(vhost, seeded):
    with simulator("live-end") as tiktok, HttpProxy() as proxy:
        run = capture(vhost, tiktok, env={"TIKTOK_HTTP_PROXY": f"http://user:hunter2@127.0.0.1:{proxy.port}"})
    assert run.returncode == 0, run.output
    port = tiktok.ready["app_url"].rsplit(":", 1)[1]
    assert any(line.startswith("GET ") and "/@simulated_streamer/live" in line for line in proxy.seen), proxy.seen
    assert f"CONNECT 127.0.0.1:{port}" in proxy.seen  # the WebSocket, tunnelled
    assert "hunter2" not in run.output
    assert "WebSocket through http://user:***@127.0.0.1" in run.output
    assert run.events().filter(event_type="CommentEvent").count() == 1


@pytest.mark.slow
def test_a_proxy_setting_that_is_not_a_url_is_refused(vhost, seeded):
    with simulator("live-end") as tiktok:
        run = capture(vhost, tiktok, env={"TIKTOK_HTTP_PROXY": "proxy.example:8080"})
    assert run.returncode == 1
    assert "is not a proxy URL" in run.output


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_recording_that_cannot_be_written_is_refused_before_connecting(vhost, seeded, tmp_path):
    target = tmp_path / "no such folder" / "live.ttlive"
    with simulator("live-end") as tiktok:
        run = capture(vhost, tiktok, args=["--record", str(target)])
        status = tiktok.status()
    assert run.returncode == 1
    assert f"Cannot write the recording {target}: No such file or directory" in run.output
    assert "Traceback" not in run.output
    assert status.get("sign_requests", 0) == 0 and not LiveSession.objects.exists()
