"""``capture_tiktok_live --record FILE`` and ``--simulate FILE``: a live recorded by the real
capture plays back through the simulator to the same stored events, with its spacing, and
a cut-short or bogus file is handled. The file format itself is tested first, without a live."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from project.tiktok_events.capture import recording
from project.tiktok_events.models import LiveEvent
from tests.support.capture import ROOT, comment, end, follow, gift, join, like, run_capture, share, subscribe, wait
from tests.support.servers import child_pids, subprocess_env
from tests.support.waiting import wait_for

SIMULATOR = ROOT / "scripts" / "tiktok_simulator.py"

# Everything the capture stores, and a message it stores nothing for.
A_LIVE = [
    {"type": "viewers", "total": 37},
    join("ana_b"),
    comment("maria", "hola 👋", nickname="María 🌸"),
    gift("rosa_fan", "Rose", repeat=5),
    gift("big_spender", "Galaxy"),
    like("liker", 15),
    follow("leo"),
    share("pedro"),
    subscribe("sofi"),
    {"type": "unknown", "method": "WebcastBrandNewFeatureMessage"},
    comment("maria", "¿otra?"),
    end(),
]
TIMING_FIELDS: set[str] = set()  # event_data keys that depend on when it ran (none today)


def stored(run) -> list[tuple]:
    """A run's events as a replay must give them again, in msg_id order."""
    return [
        (
            event.event_type,
            event.msg_id,
            event.user_id,
            event.user_unique_id,
            event.user_nickname,
            event.user_nickname_raw,
            {key: value for key, value in event.event_data.items() if key not in TIMING_FIELDS},
            event.streak_status,
            event.repeat_count,
        )
        for event in run.events().order_by("msg_id")
    ]


def records(path) -> list:
    return list(recording.read_recording(path))[1:]


# -- the file format -------------------------------------------------------------------------------


class FakeFetchResult:
    def __bytes__(self) -> bytes:
        return b"first fetch"


def test_it_reads_back_the_header_and_every_record_in_order(tmp_path):
    path = tmp_path / "live.ttlive"
    recorder = recording.Recorder(path, username="maria")
    recorder.first_fetch(FakeFetchResult())
    frames = [bytes([n]) * n for n in range(1, 200)]
    for number, data in enumerate(frames):
        recorder.frame(data, 1_700_000_000.0 + number / 10)
    recorder.close()
    recorder.close()
    header, *items = recording.read_recording(path)
    assert (header.format, header.version, header.username) == ("ttlive", 1, "maria")
    assert header.tiktoklive == "7.0.1" and header.started_at.startswith("20")
    assert items[0].kind == "first_fetch" and items[0].data == b"first fetch"
    assert [item.data for item in items[1:]] == frames
    assert [item.arrival for item in items[1:]] == [1_700_000_000.0 + n / 10 for n in range(199)]
    assert recorder.frames == 199
    assert recording.is_recording(path) and path.read_bytes().startswith(recording.MAGIC)


def test_every_record_is_readable_while_the_recorder_still_writes(tmp_path):
    # What a SIGKILL leaves: no end of the gzip stream, every record written so far.
    path = tmp_path / "live.ttlive"
    recorder = recording.Recorder(path, username="maria")
    for number in range(50):
        recorder.frame(os.urandom(300), float(number))
    truncated: list = []
    assert [item.arrival for item in records_of(path, truncated)] == [float(n) for n in range(50)]
    assert truncated == []
    recorder.close()


def test_a_cut_record_is_skipped_and_reported(tmp_path):
    path = tmp_path / "live.ttlive"
    recorder = recording.Recorder(path, username="maria")
    for number in range(20):
        recorder.frame(os.urandom(2000), float(number))
    recorder.close()
    data = path.read_bytes()
    whole, cut = cut_inside_a_record(data)
    path.write_bytes(data[:cut])
    tails: list[recording.TruncatedTail] = []
    items = records_of(path, tails)
    assert len(items) == whole < 20
    assert len(tails) == 1 and tails[0].records_read == whole and tails[0].bytes_skipped > 0


def records_of(path, tails: list) -> list:
    return list(recording.read_recording(path, tails.append))[1:]


def cut_inside_a_record(data: bytes) -> tuple[int, int]:
    """(whole records before the cut, the cut): halfway through the largest record in the second half.

    Each record ends with a zlib sync flush; the header's is the first.
    """
    marks = [i for i in range(len(data)) if data.startswith(recording.SYNC_MARKER, i)]
    later = [n for n in range(1, len(marks)) if marks[n] > len(data) // 2]
    n = max(later, key=lambda n: marks[n] - marks[n - 1])
    return n - 1, (marks[n - 1] + marks[n]) // 2


def test_a_file_that_is_not_a_recording_is_refused_clearly(tmp_path):
    path = tmp_path / "notes.ttlive"
    path.write_text("not a live")
    with pytest.raises(recording.RecordingError, match="is not a TikTok LIVE recording"):
        list(recording.read_recording(path))
    assert not recording.is_recording(path)


# -- through the simulator and the capture -----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_recorded_live_replays_to_the_same_stored_events(vhost, seeded, tmp_path):
    path = tmp_path / "live.ttlive"
    live = run_capture(vhost, A_LIVE, args=["--record", str(path)])
    assert live.returncode == 0, live.output
    assert f"Recorded {len(records(path)) - 1} frames to {path}" in live.output
    replay = run_capture(vhost, str(path))
    assert replay.returncode == 0, replay.output
    assert replay.session_id != live.session_id
    assert "the recording ends before the live did" not in replay.output  # its own end ended it
    expected = stored(live)
    assert {row[0] for row in expected} >= {
        "CommentEvent", "GiftEvent", "LikeEvent", "FollowEvent", "ShareEvent", "JoinEvent",
        "SubscribeEvent", "RoomUserSeqEvent", "LiveEndEvent",
    }  # fmt: skip
    assert stored(replay) == expected
    assert replay.summary["unknown_messages"] == live.summary["unknown_messages"] == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_replay_keeps_the_recorded_spacing_divided_by_its_speed(vhost, seeded, tmp_path):
    path = tmp_path / "gap.ttlive"
    live = run_capture(
        vhost, [comment("ana", "before"), wait(2), comment("ana", "after")], args=["--record", str(path)]
    )
    assert live.returncode == 0, live.output
    assert gap(live) >= 1.9
    normal = run_capture(vhost, str(path))
    fast = run_capture(vhost, str(path), args=["--simulator-arg=--speed=10"])
    assert normal.returncode == fast.returncode == 0, normal.output + fast.output
    assert gap(normal) >= 1.5
    assert gap(fast) < 0.5
    assert stored(normal) == stored(fast) == stored(live)


def gap(run) -> float:
    before, after = run.events().filter(event_type="CommentEvent").order_by("msg_id")
    return (after.received_at - before.received_at).total_seconds()


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_cut_recording_replays_what_is_whole_and_the_simulator_ends_the_live(vhost, seeded, tmp_path):
    path = tmp_path / "cut.ttlive"
    steps = [comment(f"fan{n}", f"message {n} " + "x" * 200) for n in range(40)]
    live = run_capture(vhost, [*steps, wait(0.2), *steps[:10]], args=["--record", str(path)])
    assert live.returncode == 0, live.output
    data = path.read_bytes()
    whole, cut = cut_inside_a_record(data)
    path.write_bytes(data[:cut])
    replay = run_capture(vhost, str(path), args=["--simulator-arg=--speed=0"])
    assert replay.returncode == 0, replay.output
    assert "simulator: skipped a truncated tail" in replay.output
    assert f"replaying the {whole} whole records before it" in replay.output
    assert "the recording ends before the live did; the simulator ends the live now" in replay.output
    original = {row[1]: row for row in stored(live)}
    replayed = stored(replay)
    comments = [row for row in replayed if row[0] == "CommentEvent"]
    assert 0 < len(comments) < 50
    assert all(original[row[1]] == row for row in comments)
    assert [row[0] for row in replayed if row[1] not in original] == ["LiveEndEvent"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_file_that_is_not_a_recording_stops_the_capture_with_a_clear_error(vhost, tmp_path):
    bogus = tmp_path / "bogus.ttlive"
    bogus.write_text("these are my notes, not a live")
    run = run_capture(vhost, str(bogus), timeout=120)
    assert run.returncode != 0
    assert f"{bogus} is not a TikTok LIVE recording" in run.output
    assert "Could not start the TikTok simulator" in run.output
    assert not LiveEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_the_recording_of_a_killed_capture_replays(vhost, seeded, tmp_path):
    path = tmp_path / "killed.ttlive"
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "capture_tiktok_live", "--simulate", "demo", "--record", str(path), "--quiet"],
        cwd=ROOT,
        env=subprocess_env(vhost),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    children: list[int] = []
    try:

        def storing() -> bool:
            children[:] = child_pids(proc.pid)
            return LiveEvent.objects.filter(event_type="CommentEvent").count() >= 5

        wait_for(storing, timeout=60, what="the capture never stored 5 comments")
        assert proc.poll() is None, "the capture ended before it could be killed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stop_orphans(children)
    killed = {event.msg_id: event for event in LiveEvent.objects.all()}
    replay = run_capture(vhost, str(path), args=["--simulator-arg=--speed=0"])
    assert replay.returncode == 0, replay.output
    assert "the simulator ends the live now" in replay.output
    replayed = {event.msg_id: event for event in replay.events()}
    assert set(killed) <= set(replayed)
    for msg_id, event in killed.items():
        if event.streak_status == LiveEvent.Streak.NONE:
            assert (replayed[msg_id].event_type, replayed[msg_id].event_data) == (event.event_type, event.event_data)


def stop_orphans(pids: list[int]) -> None:
    """The killed capture's simulator and writer end by themselves; wait for them, kill a straggler."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{pid}") for pid in pids):
        time.sleep(0.1)
    for pid in pids:
        if os.path.exists(f"/proc/{pid}"):
            os.kill(pid, signal.SIGKILL)


# -- the simulator alone ---------------------------------------------------------------------------


@pytest.mark.slow
def test_the_ready_line_names_the_replay_and_a_bogus_file_exits_with_an_error(tmp_path):
    path = tmp_path / "tiny.ttlive"
    recorder = recording.Recorder(path, username="maria")
    recorder.close()
    proc = subprocess.Popen(
        [sys.executable, str(SIMULATOR), "--replay", str(path), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = json.loads(proc.stdout.readline())
    finally:
        proc.terminate()
        _, errors = proc.communicate(timeout=10)
    assert ready["scenario"] == "replay:tiny.ttlive"
    assert "replaying tiny.ttlive: 0 WebSocket messages recorded from @maria" in errors
    (tmp_path / "bogus.ttlive").write_bytes(b"\x1f\x8b not mine")
    refused = subprocess.run(
        [sys.executable, str(SIMULATOR), "--replay", str(tmp_path / "bogus.ttlive")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "bogus.ttlive is not a TikTok LIVE recording" in refused.stderr
