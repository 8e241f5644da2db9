"""Player choice and wait semantics, with real executables placed on PATH.

There is no sound device here, so each "player" is a small shell script named
paplay/ffplay/aplay that records how it was called and then blocks until the
test creates a release file: whether ``wait`` waited is then a fact, not a
timing guess.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from django.db import connection

from project.integrations.elevenlabs import playback
from project.integrations.elevenlabs.client import ElevenLabsClient

# transaction=True: the calls under test run in threads, which use their own database connections.
pytestmark = pytest.mark.django_db(transaction=True)

PLAYER_SCRIPT = """#!/bin/sh
echo "${{0##*/}} $*" >> {dir}/calls.log
: > {dir}/started
n=0
while [ ! -e {dir}/release ]; do
  /bin/sleep 0.05
  n=$((n + 1))
  [ $n -gt 1200 ] && exit 3
done
: > {dir}/ended
{stderr_line}
exit {code}
"""


class Players:
    """A PATH holding only the players a test installs."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def install(self, name: str, exit_code: int = 0, stderr: str = "") -> Path:
        stderr_line = f"echo '{stderr}' >&2" if stderr else ""
        script = PLAYER_SCRIPT.format(dir=self.dir, code=exit_code, stderr_line=stderr_line)
        path = self.dir / name
        path.write_text(script)
        path.chmod(0o755)
        return path

    def release(self) -> None:
        (self.dir / "release").touch()

    def calls(self) -> list[str]:
        log = self.dir / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def exists(self, name: str) -> bool:
        return (self.dir / name).exists()

    def wait_for(self, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.exists(name):
            assert time.monotonic() < deadline, f"{name} did not appear within {timeout} s"
            time.sleep(0.05)


@pytest.fixture
def players(tmp_path, monkeypatch) -> Players:
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", str(directory))
    return Players(directory)


@pytest.fixture
def phrase(elevenlabs_fake) -> str:
    """A phrase already synthesised (the fake's espeak-ng needs the real PATH)."""
    text = "Gracias por la rosa"
    ElevenLabsClient().text_to_speech_and_save(text)
    return text


def speak(text: str, wait: bool, returned: list[Path]) -> None:
    try:
        returned.append(ElevenLabsClient().text_to_speech_and_save(text, play_audio=True, wait=wait))
    finally:
        connection.close()


def test_it_prefers_paplay_then_ffplay_then_aplay(players, tmp_path):
    wav, mp3 = tmp_path / "a.wav", tmp_path / "a.mp3"
    assert playback.find_player(wav) is None
    players.install("aplay")
    assert playback.find_player(wav) == [str(players.dir / "aplay"), "-q", str(wav)]
    assert playback.find_player(mp3) is None  # aplay plays WAV only
    players.install("ffplay")
    assert playback.find_player(wav)[0] == str(players.dir / "ffplay")
    assert playback.find_player(mp3)[:4] == [str(players.dir / "ffplay"), "-nodisp", "-autoexit", "-loglevel"]
    players.install("paplay")
    assert playback.find_player(wav) == [str(players.dir / "paplay"), str(wav)]


@pytest.mark.slow
def test_wait_true_returns_only_after_playback_has_ended(phrase, players):
    players.install("paplay")
    returned: list[Path] = []
    call = threading.Thread(target=speak, args=(phrase, True, returned))
    call.start()
    players.wait_for("started")
    call.join(timeout=0.5)
    assert call.is_alive(), "returned while the player was still playing"
    players.release()
    call.join(timeout=60)
    assert not call.is_alive()
    assert players.exists("ended")
    assert players.calls() == [f"paplay {returned[0]}"]


def test_wait_false_returns_while_the_audio_is_still_playing(phrase, players):
    players.install("paplay")
    returned: list[Path] = []
    call = threading.Thread(target=speak, args=(phrase, False, returned))
    call.start()
    call.join(timeout=30)  # the player blocks for a minute unless released: waiting would show here
    assert not call.is_alive()
    assert not players.exists("ended")
    players.wait_for("started")
    players.release()
    players.wait_for("ended")
    assert players.calls() == [f"paplay {returned[0]}"]


def test_play_audio_false_plays_nothing(phrase, players):
    players.install("paplay")
    ElevenLabsClient().text_to_speech_and_save(phrase, wait=True)
    assert players.calls() == []


def test_without_any_player_the_phrase_is_saved_and_a_clear_warning_logged(phrase, players, caplog):
    caplog.set_level(logging.WARNING)
    path = ElevenLabsClient().text_to_speech_and_save(phrase, play_audio=True, wait=True)
    assert path.is_file()
    assert "no audio player found on PATH (paplay, ffplay or aplay)" in caplog.text
    assert "pulseaudio-utils" in caplog.text


def test_a_failing_player_is_logged_not_raised(phrase, players, caplog):
    caplog.set_level(logging.WARNING)
    players.install("paplay", exit_code=1, stderr="Connection failure: Connection refused")
    players.release()
    path = ElevenLabsClient().text_to_speech_and_save(phrase, play_audio=True, wait=True)
    assert path.is_file()
    assert "audio player paplay exited with code 1: Connection failure: Connection refused" in caplog.text
