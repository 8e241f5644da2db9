"""capture_tiktok_live end to end: the real TikTokLive client against the simulator,
PostgreSQL and RabbitMQ (a fresh vhost per test). No workers run here: a
dispatched item is one the broker confirmed (``dispatched_at`` set)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count

from project.queue_system.models import QueueItem, ServiceEventConfig
from project.tiktok_events.models import LiveEvent, LiveSession
from tests.support.broker import depth, publishing_blocked
from tests.support.capture import ROOT, CaptureRun, comment, gift, messages_by_type, run_capture, simulator_scenarios
from tests.support.queueing import make_service
from tests.support.servers import child_pids, subprocess_env
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# simulator step type → the LiveEvent type the capture stores it as
STORED_AS = {
    "comment": "CommentEvent",
    "gift": "GiftEvent",
    "like": "LikeEvent",
    "follow": "FollowEvent",
    "share": "ShareEvent",
    "join": "JoinEvent",
    "subscribe": "SubscribeEvent",
    "viewers": "RoomUserSeqEvent",
    "end": "LiveEndEvent",
}


def subscribed_types() -> set[str]:
    return set(
        ServiceEventConfig.objects.filter(enabled=True, service__is_active=True).values_list("event_type", flat=True)
    )


def assert_every_event_confirmed(run) -> None:
    """Each stored event of a subscribed type has one confirmed QueueItem per subscribed service."""
    active = {}
    for config in ServiceEventConfig.objects.filter(enabled=True, service__is_active=True):
        active.setdefault(config.event_type, set()).add(config.service_id)
    for event in run.events().exclude(streak_status=LiveEvent.Streak.OPEN):
        items = QueueItem.objects.filter(live_event=event)
        assert {i.service_id for i in items} == active.get(event.event_type, set()), event
        assert all(i.dispatched_at is not None for i in items), event


def test_it_captures_the_demo_live_and_dispatches_what_services_subscribe_to(vhost, seeded):
    run = run_capture(vhost, "demo", args=["--duration", "8"])
    assert run.returncode == 0, run.output
    assert "✅ Connected to @simulated_streamer - Room ID:" in run.output
    assert f"📝 Session created: #{run.session_id}" in run.output
    session = LiveSession.objects.get(pk=run.session_id)
    assert session.status == LiveSession.Status.ENDED and session.ended_at is not None
    types = set(run.events().values_list("event_type", flat=True))
    assert {"CommentEvent", "LikeEvent", "JoinEvent", "GiftEvent", "RoomUserSeqEvent"} <= types
    rose = run.events().filter(event_type="GiftEvent").first()
    assert rose.event_data["gift"]["name"] == "Rose"
    assert f"🎁 {rose.user_nickname} sent Rose x{rose.repeat_count}" in run.output
    assert_every_event_confirmed(run)
    # Viewer counts are stored, but no service subscribes to them: nothing is queued.
    assert "RoomUserSeqEvent" not in subscribed_types()
    assert not QueueItem.objects.filter(live_event__session_id=run.session_id, event_type="RoomUserSeqEvent").exists()


def test_it_stores_and_dispatches_a_whole_flood(vhost, seeded):
    seconds = 2
    expected = messages_by_type(simulator_scenarios().flood(seconds))
    assert expected["like"] >= 1000 * seconds
    run = run_capture(vhost, "flood", args=["--quiet", f"--simulator-arg=--flood-seconds={seconds}"], timeout=300)
    assert run.returncode == 0, run.output
    stored = dict(run.events().values_list("event_type").annotate(n=Count("id")))
    assert stored == {STORED_AS[kind]: count for kind, count in expected.items()}
    assert run.summary["queue_items_unconfirmed"] == 0
    assert_every_event_confirmed(run)
    # Where each batch's time went: one transaction and one confirmed publish per batch with items.
    store, confirm = run.summary["store_ms"], run.summary["confirm_ms"]
    assert store["count"] == confirm["count"] >= 10, run.summary
    assert 0 < store["p50"] <= store["max"] and 0 < confirm["p50"] <= confirm["max"]


def test_it_dispatches_each_streak_once_with_its_final_count(vhost, seeded):
    # A service that only takes gifts and has no worker: its queue counts every gift published.
    make_service("giftcounter", table=[("GiftEvent", 10, False)])
    run = run_capture(vhost, "streaks", args=["--streak-timeout", "1"])
    assert run.returncode == 0, run.output
    gifts = {e.user_unique_id: e for e in run.events().filter(event_type="GiftEvent")}
    assert set(gifts) == {"rosa_fan", "big_spender", "heart_girl", "lost_end"}
    assert (gifts["rosa_fan"].repeat_count, gifts["rosa_fan"].streak_status) == (5, LiveEvent.Streak.ENDED)
    assert gifts["rosa_fan"].event_data["diamonds_total"] == 5
    assert (gifts["heart_girl"].repeat_count, gifts["heart_girl"].streak_status) == (3, LiveEvent.Streak.ENDED)
    assert (gifts["big_spender"].repeat_count, gifts["big_spender"].streak_status) == (1, LiveEvent.Streak.NONE)
    # Its end never came: closed by the timeout, with the last count seen.
    assert (gifts["lost_end"].repeat_count, gifts["lost_end"].streak_status) == (4, LiveEvent.Streak.TIMED_OUT)
    assert depth(vhost, "svc.giftcounter") == 4
    assert_every_event_confirmed(run)
    likes = list(run.events().filter(event_type="LikeEvent").order_by("id"))
    assert [(e.event_data["user_total"], e.event_data["session_total"]) for e in likes] == [(10, 10), (15, 15)]


def test_it_closes_a_streak_left_open_by_a_dropped_connection(vhost, seeded):
    steps = [
        gift("tapper", "Rose", repeat=3, lose_end=True),
        {"type": "drop"},
        comment("after", "the socket came back"),
        {"type": "wait", "seconds": 2.0},
    ]
    make_service("giftcounter", table=[("GiftEvent", 10, False)])
    run = run_capture(vhost, steps, args=["--streak-timeout", "1"])
    assert run.returncode == 0, run.output
    rose = run.events().get(event_type="GiftEvent")
    assert (rose.repeat_count, rose.streak_status) == (3, LiveEvent.Streak.TIMED_OUT)
    assert depth(vhost, "svc.giftcounter") == 1
    assert run.summary["reconnects"] >= 1


def test_it_reconnects_into_the_same_session_saying_why_meanwhile_and_stores_nothing_twice(vhost, seeded, tmp_path):
    """One run of the disconnect live (a dropped socket, then a silent one): what the control room
    shows as "reconnecting" and its reason, from the session row, while it reconnects; and
    afterwards one session with every message once."""
    summary = tmp_path / "summary.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "capture_tiktok_live",
            "--simulate",
            "disconnect",
            "--silence-timeout",
            "3",
            "--summary-json",
            str(summary),
        ],
        cwd=ROOT,
        env=subprocess_env(vhost, TTE_CAPTURE_DROP_BACKOFF_SECONDS="2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        notes = LiveSession.objects.exclude(connection_note="").values_list("connection_note", flat=True)
        note = wait_for(lambda: notes.first(), timeout=90, interval=0.05, what="a connection note")
        output, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert re.fullmatch(r"connection lost \(.+\); reconnect attempt \d+ in [12] s", note), note
    assert LiveSession.objects.get().connection_note == ""

    run = CaptureRun(proc.returncode, output, json.loads(summary.read_text()))
    comments = list(run.events().filter(event_type="CommentEvent").values_list("event_data__comment", flat=True))
    assert sorted(comments) == sorted(f"message {n}" for n in range(1, 31))
    assert run.events().filter(event_type="LiveEndEvent").count() == 1
    # One reconnect after the dropped socket, one after the watchdog found it silent.
    assert run.summary["reconnects"] >= 2
    # ... and the session keeps the count for its report.
    assert LiveSession.objects.get(pk=run.session_id).reconnects == run.summary["reconnects"]
    assert "socket silent; reconnecting" in run.output
    # The simulator replayed recent messages on reconnect: they were recognised, not stored again.
    assert run.summary["duplicates_skipped"] > 1
    assert LiveSession.objects.filter(pk__gte=run.session_id).count() == 1
    assert_every_event_confirmed(run)


def test_it_cleans_weird_names_and_keeps_the_raw_ones(vhost, seeded):
    run = run_capture(vhost, "weird-names")
    assert run.returncode == 0, run.output
    names = {e.user_unique_id: e for e in run.events().filter(event_type="CommentEvent")}
    assert names["fancy_user"].user_nickname == "Fancy User"
    assert "".join(c for c in names["zalgo"].user_nickname if c.isalpha() or c == " ") == "Zalgo text"
    assert names["rtl_user"].user_nickname == "evil مرحبا"
    assert names["control_chars"].user_nickname == "badname[31m red"
    assert names["zero_width"].user_nickname == "invisible"
    assert names["emoji_lover"].user_nickname == "🌸 Flor 🌸👩\u200d👩\u200d👧\u200d👦"
    assert names["fullwidth"].user_nickname == "FULL WIDTH"
    assert len(names["long_name"].user_nickname) == 64
    assert names["only_marks"].user_nickname == "only_marks"  # nothing left: the @handle
    raw = dict(simulator_scenarios().WEIRD_NAMES)
    for handle, event in names.items():
        assert event.user_nickname_raw == raw[handle].replace("\x00", "\ufffd")
    assert names["control_chars"].event_data["comment"] == "hola desde badname[31m red"
    # Follows arrive as WebcastSocialMessage: stored once each, under the seeds' name.
    assert run.events().filter(event_type="FollowEvent").count() == len(raw)
    assert not run.events().filter(event_type="SocialEvent").exists()


def test_it_skips_malformed_frames_and_keeps_capturing(vhost, seeded):
    run = run_capture(vhost, "malformed")
    assert run.returncode == 0, run.output
    comments = sorted(run.events().filter(event_type="CommentEvent").values_list("user_unique_id", flat=True))
    assert comments == ["ok1", "ok2", "ok3", "ok4", "ok5"]
    assert run.events().filter(event_type="LiveEndEvent").count() == 1
    assert "Failed to parse WebcastChatMessage payload" in run.output  # the truncated message, logged
    assert run.summary["unknown_messages"] >= 1
    assert run.summary["reconnects"] >= 1  # the corrupt gzip frame cost the socket, not the capture
    assert_every_event_confirmed(run)


def test_it_ends_the_session_when_the_live_ends(vhost, seeded):
    run = run_capture(vhost, "live-end")
    assert run.returncode == 0, run.output
    session = LiveSession.objects.get(pk=run.session_id)
    assert session.status == LiveSession.Status.ENDED
    assert session.end_reason == "the LIVE ended"
    assert session.room_id and session.streamer == "simulated_streamer"
    assert "🔚 The LIVE has ended" in run.output


def test_it_says_when_it_falls_behind_the_live_and_when_it_catches_up(vhost, seeded):
    wait = {"type": "wait", "seconds": 0.6}
    steps = [
        *[comment(f"early{n}", "on time") for n in range(8)],
        wait,
        # Two comments TikTok sent 6 s before they reached us (held up on the way).
        {"type": "frame", "late": 6, "events": [comment("late1", "late"), comment("late2", "late")]},
        wait,
        *[comment(f"after{n}", "on time again") for n in range(3)],
        wait,
    ]
    run = run_capture(vhost, steps)
    assert run.returncode == 0, run.output
    assert run.events().filter(event_type="CommentEvent").count() == 13
    lines = run.output.splitlines()
    behind = [n for n, line in enumerate(lines) if "behind the live: events arrive faster" in line]
    caught_up = [n for n, line in enumerate(lines) if "The capture caught up with the live" in line]
    assert len(behind) == 1 and len(caught_up) == 1, run.output
    assert behind[0] < caught_up[0]
    assert "The capture is 6." in lines[behind[0]] or "The capture is 5.9" in lines[behind[0]], lines[behind[0]]
    assert run.summary["behind_warnings"] == 1
    assert 5_500 <= run.summary["behind_max_ms"] < 9_000, run.summary
    assert LiveSession.objects.get(pk=run.session_id).behind_max_seconds == pytest.approx(
        run.summary["behind_max_ms"] / 1000, abs=0.002
    )


def test_a_streak_closed_by_its_timeout_is_not_taken_for_lag(vhost, seeded):
    # Its dispatch waits out the 4 s timeout after its last repeat, on purpose.
    steps = [
        comment("first", "hola"),
        {"type": "wait", "seconds": 0.5},
        gift("tapper", "Rose", repeat=3, lose_end=True),
        {"type": "wait", "seconds": 5.5},
        comment("after", "still here"),
        {"type": "wait", "seconds": 0.5},
    ]
    run = run_capture(vhost, steps, args=["--streak-timeout", "4"])
    assert run.returncode == 0, run.output
    assert run.events().get(event_type="GiftEvent").streak_status == LiveEvent.Streak.TIMED_OUT
    assert "behind the live" not in run.output
    assert run.summary["behind_warnings"] == 0
    assert run.summary["frame_to_confirm_ms"]["max"] >= 4_000  # the streak's own wait, still measured


def test_on_time_frames_raise_no_behind_warning(vhost, seeded):
    run = run_capture(vhost, [comment(f"u{n}", "hola") for n in range(24)])
    assert run.returncode == 0, run.output
    assert "behind the live" not in run.output
    assert run.summary["behind_warnings"] == 0
    assert run.summary["behind_max_ms"] < 3_000


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        ("offline", "@simulated_streamer is not live right now. Start the LIVE in TikTok"),
        ("not-found", "TikTok does not know @simulated_streamer, or that account cannot go LIVE"),
    ],
)
def test_it_explains_why_it_cannot_connect(vhost, seeded, scenario, message):
    run = run_capture(vhost, scenario, args=["--no-wait"])
    assert run.returncode == 1
    assert message in run.output
    assert not LiveSession.objects.exists()


def test_it_waits_out_a_sign_server_rate_limit(vhost, seeded):
    run = run_capture(vhost, "rate-limit")
    assert run.returncode == 0, run.output
    # RateLimit-Reset one second ahead: honoured (TikTokLive's retry_after, from RateLimit-Remaining, says 0).
    assert re.search(
        r"rate-limiting new connections \(sim\)\. Next try at [\d:]+ \(in [12] s, RateLimit-Reset\)", run.output
    )
    assert run.events().filter(event_type="CommentEvent").count() == 1


def test_it_stops_on_sigterm_with_everything_written(vhost, seeded, tmp_path):
    summary = tmp_path / "summary.json"
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "capture_tiktok_live", "--simulate", "demo", "--summary-json", str(summary)],
        cwd=ROOT,
        env=subprocess_env(vhost),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and LiveEvent.objects.filter(event_type="CommentEvent").count() < 3:
            time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    session = LiveSession.objects.get()
    assert session.status == LiveSession.Status.ENDED and session.end_reason == "stopped (SIGTERM)"
    assert session.events.count() >= 3
    for event in session.events.exclude(event_type="RoomUserSeqEvent"):
        assert event.queue_items.count() == 2
        assert not event.queue_items.filter(dispatched_at__isnull=True).exists()


def test_it_keeps_events_whose_dispatch_failed_for_redispatch_pending(vhost, seeded):
    # RabbitMQ unreachable: the events and their QueueItems are stored, the items stay pending.
    broken = {"CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:1/nowhere"}
    run = run_capture(vhost, [comment("maria", "hola"), gift("juan", "Galaxy")], env=broken)
    assert run.returncode == 0, run.output
    assert "they stay pending and are published again by: python manage.py redispatch_pending" in run.output
    items = QueueItem.objects.filter(live_event__session_id=run.session_id)
    assert items.count() == 4 and not items.filter(dispatched_at__isnull=False).exists()
    call_command("redispatch_pending", stdout=open(os.devnull, "w"))
    assert not items.filter(dispatched_at__isnull=True).exists()
    assert depth(vhost, "svc.dinochrome") >= 1  # the gift, now in its queue


def test_it_needs_a_username(monkeypatch):
    monkeypatch.delenv("TIKTOK_USER", raising=False)
    with pytest.raises(CommandError, match="No TikTok username: pass --username NAME"):
        call_command("capture_tiktok_live")


def writer_processes(parent: int) -> list[int]:
    """The capture's writer processes (multiprocessing spawn children of ``parent``)."""
    found = []
    for pid in child_pids(parent):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if b"spawn_main" in cmdline.read():
                    found.append(pid)
        except OSError:
            continue
    return found


def items_held_unconfirmed(items, count: int, *, hold: float, timeout: float) -> set[int]:
    """Ids of at least ``count`` of ``items`` that stayed without ``dispatched_at`` for ``hold``
    seconds (or what was held when ``timeout`` ran out)."""
    unconfirmed = items.filter(dispatched_at__isnull=True)
    held: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = set(unconfirmed.values_list("pk", flat=True))
        if len(seen) >= count:
            time.sleep(hold)
            held = set(unconfirmed.filter(pk__in=seen).values_list("pk", flat=True))
            if len(held) >= count:
                return held
        time.sleep(0.05)
    return held


def test_a_killed_writer_process_is_replaced_and_nothing_is_lost(vhost, seeded):
    """The writers killed with batches stored but never confirmed (RabbitMQ blocked, as in a
    memory alarm): the next writers publish them, and the rest of the live goes on."""
    seconds = 8  # long enough that the live is still on when the writer dies, even on a busy machine
    expected = messages_by_type(simulator_scenarios().flood(seconds))
    proc = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "capture_tiktok_live",
            "--simulate",
            "flood",
            f"--simulator-arg=--flood-seconds={seconds}",
            "--quiet",
        ],
        cwd=ROOT,
        env=subprocess_env(vhost),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    items = QueueItem.objects.filter(live_event__event_type="LikeEvent")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and items.count() < 1000:
            time.sleep(0.05)
        with publishing_blocked(vhost):
            # Batches go on being stored while none is confirmed; then the writer dies.
            # Items merely in flight when the block began are confirmed within moments
            # (a busy machine's CI once killed the writer just after those, leaving
            # nothing to republish): wait for 100 that stay unconfirmed for a second.
            held = items_held_unconfirmed(items, 100, hold=1.0, timeout=30)
            assert len(held) >= 100, "the capture stored nothing that stayed unconfirmed while the broker was blocked"
            writers = writer_processes(proc.pid)
            assert len(writers) == 2, writers  # the main writer and the priority lane's: both die
            for pid in writers:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
        output, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "the writer process died; starting a new one" in output
    assert "deliveries unconfirmed; a new writer publishes them again before going on." in output
    assert "republished the items a dead writer left pending" in output
    session = LiveSession.objects.get()
    stored = dict(session.events.values_list("event_type").annotate(n=Count("id")))
    # Every message once (rows of the retried batch that had committed are skipped as duplicates)...
    assert stored == {STORED_AS[kind]: count for kind, count in expected.items()}
    # ...and every item confirmed, those the dead writer left unpublished included.
    assert_every_event_confirmed(SimpleNamespace(events=session.events.all))


def test_a_killed_capture_does_not_leave_its_writer_process_behind(vhost, seeded):
    # 5 s of flood: the capture is killed at its first stored event, well before the live ends;
    # the simulator serializes the whole flood before it is ready (10 s of it took 13 s).
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "capture_tiktok_live", "--simulate", "flood",
         "--simulator-arg=--flood-seconds=5", "--quiet"],
        cwd=ROOT,
        env=subprocess_env(vhost),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        writers: list[int] = []

        def writer_started() -> bool:
            writers[:] = writer_processes(proc.pid)
            return bool(writers) and LiveEvent.objects.exists()

        wait_for(writer_started, timeout=60, what="the capture never started storing")
        assert proc.poll() is None, "the capture ended before it could be killed"
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and os.path.exists(f"/proc/{writers[0]}"):
        time.sleep(0.1)
    alive = os.path.exists(f"/proc/{writers[0]}") and "Z" not in _state(writers[0])
    if alive:
        os.kill(writers[0], signal.SIGKILL)
    assert not alive, "the writer process outlived its killed capture"


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
