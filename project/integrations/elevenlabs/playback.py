"""Playing a saved phrase on the machine's speakers.

PulseAudio's ``paplay`` first (the seeds' Docker set-up shares the host's
PulseAudio socket), then ``ffplay``, then ALSA's ``aplay`` (WAV only). Players
are looked up on PATH at each call, so installing one needs no restart. With
``wait`` the call returns once the player has exited — a SYNC service uses it
so two phrases never talk over each other; without it the call returns at once
and a background thread reaps the player and logs how it ended.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import wave
from pathlib import Path

from project.integrations.elevenlabs import cache

logger = logging.getLogger("integrations.elevenlabs")

# (binary, arguments before the file, suffixes it can play or None for any)
PLAYERS: list[tuple[str, list[str], set[str] | None]] = [
    ("paplay", [], None),
    ("ffplay", ["-nodisp", "-autoexit", "-loglevel", "error"], None),
    ("aplay", ["-q"], {".wav"}),
]
NO_PLAYER_HINT = (
    "no audio player found on PATH (paplay, ffplay or aplay): the phrase was saved but not played. "
    "Install pulseaudio-utils (paplay), ffmpeg (ffplay) or alsa-utils (aplay)."
)
# A player that outlives its audio by this much is stuck (e.g. waiting for a sound server).
PLAYBACK_GRACE_SECONDS = 30.0
UNKNOWN_LENGTH_TIMEOUT = 300.0


def find_player(path: Path) -> list[str] | None:
    """The command line that plays ``path``, or None when no suitable player is installed."""
    for binary, args, suffixes in PLAYERS:
        if suffixes is not None and path.suffix.lower() not in suffixes:
            continue
        found = shutil.which(binary)
        if found:
            return [found, *args, str(path)]
    return None


def audio_seconds(path: Path) -> float | None:
    if path.suffix.lower() != ".wav":
        return None
    try:
        with wave.open(str(path), "rb") as audio:
            return audio.getnframes() / float(audio.getframerate())
    except (wave.Error, OSError, ZeroDivisionError):
        return None


def play(path: Path, wait: bool, timeout: float | None = None) -> bool:
    """Start playing ``path``; with ``wait``, return when it has finished. False if nothing could play it.

    ``timeout`` (the caller's time budget) stops a player earlier than its audio's length plus grace would.
    """
    command = find_player(path)
    if command is None:
        logger.warning(NO_PLAYER_HINT, extra={"audio": path.name})
        return False
    seconds = audio_seconds(path)
    limit = UNKNOWN_LENGTH_TIMEOUT if seconds is None else seconds + PLAYBACK_GRACE_SECONDS
    if timeout is not None:
        limit = min(limit, timeout)
    player = Path(command[0]).name
    cache.hold(path)  # the cache's eviction leaves it alone until the player has exited
    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except OSError as exc:
        cache.release(path)
        logger.warning("audio player %s cannot start: %s", player, exc, extra={"audio": path.name})
        return False
    if not wait:
        threading.Thread(
            target=_reap, args=(process, player, path, limit), name=f"play-{path.stem[:8]}", daemon=True
        ).start()
        return True
    return _reap(process, player, path, limit)


def _reap(process: subprocess.Popen, player: str, path: Path, timeout: float) -> bool:
    try:
        return _wait_for_player(process, player, path, timeout)
    finally:
        cache.release(path)


def _wait_for_player(process: subprocess.Popen, player: str, path: Path, timeout: float) -> bool:
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        logger.warning(
            "audio player %s still running after %.0f s; stopped it", player, timeout, extra={"audio": path.name}
        )
        return False
    if process.returncode != 0:
        tail = (stderr or b"").decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        logger.warning(
            "audio player %s exited with code %s: %s", player, process.returncode, tail[0], extra={"audio": path.name}
        )
        return False
    logger.info("played %s with %s", path.name, player, extra={"audio": path.name})
    return True
