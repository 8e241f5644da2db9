"""The audio cache's size cap: least recently used phrases go first, a phrase in use never does."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from project.app_config.config import set_config
from project.integrations.config_values import ConfigValueError
from project.integrations.elevenlabs import cache
from project.integrations.elevenlabs.client import ElevenLabsClient

pytestmark = pytest.mark.django_db

MB = 1024 * 1024
FILLER = 300 * 1024


def old_file(directory: Path, name: str, hours_ago: float, size: int = FILLER) -> Path:
    """A cached phrase last used ``hours_ago`` (its mtime is what eviction orders by)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(b"\0" * size)
    used = time.time() - hours_ago * 3600
    os.utime(path, (used, used))
    return path


def names(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def test_it_evicts_the_least_recently_used_phrases_down_to_the_cap(elevenlabs_fake, media_root):
    cache_dir = media_root / "elevenlabs"
    fillers = [old_file(cache_dir, f"{n:032x}.wav", hours_ago=n) for n in (1, 2, 3, 4)]  # 1.2 MB
    set_config("elevenlabs_cache_max_mb", "1")

    new = ElevenLabsClient().text_to_speech_and_save("Gracias por la rosa, Ana")

    # 1.2 MB + the new phrase is over 1 MB: the phrase used 4 h ago goes, and only it.
    assert names(cache_dir) == {new.name, fillers[0].name, fillers[1].name, fillers[2].name}
    assert sum(p.stat().st_size for p in cache_dir.iterdir()) <= MB


def test_a_cache_hit_makes_a_phrase_recently_used(elevenlabs_fake, media_root):
    client = ElevenLabsClient()
    cache_dir = media_root / "elevenlabs"
    hit = client.text_to_speech_and_save("Bienvenida al directo")
    long_ago = time.time() - 5 * 3600
    os.utime(hit, (long_ago, long_ago))  # the oldest of all…
    fillers = [old_file(cache_dir, f"{n:032x}.wav", hours_ago=n, size=350 * 1024) for n in (2, 3, 4)]
    set_config("elevenlabs_cache_max_mb", "1")

    assert client.text_to_speech_and_save("Bienvenida al directo") == hit  # …until it is used again
    assert len(elevenlabs_fake.tts_requests()) == 1
    new = client.text_to_speech_and_save("Hola a todos")

    assert names(cache_dir) == {hit.name, new.name, fillers[0].name, fillers[1].name}


def test_nothing_is_evicted_under_the_cap(media_root):
    cache_dir = media_root / "elevenlabs"
    files = [old_file(cache_dir, f"{n:032x}.wav", hours_ago=n) for n in (1, 2, 3)]
    assert cache.evict_over_cap(cache_dir, MB) == []
    assert names(cache_dir) == {f.name for f in files}


def test_a_phrase_being_played_or_just_written_is_kept_even_if_oldest(media_root):
    cache_dir = media_root / "elevenlabs"
    playing, written, older, newer = (
        old_file(cache_dir, f"{n:032x}.wav", hours_ago=hours) for n, hours in enumerate((9, 8, 7, 1))
    )
    cache.hold(playing)  # what playback.play does while a player runs
    try:
        os.utime(playing, (time.time() - 9 * 3600,) * 2)  # hold touched it; make it the oldest again
        evicted = cache.evict_over_cap(cache_dir, 2 * FILLER, keep=(written,))
    finally:
        cache.release(playing)
    assert evicted == [older.name, newer.name]
    assert names(cache_dir) == {playing.name, written.name}


def test_a_dead_writers_partial_file_is_removed_and_a_live_one_left_alone(media_root):
    cache_dir = media_root / "elevenlabs"
    stale = old_file(cache_dir, ".dead.wav.1234abcd.part", hours_ago=2, size=10)
    live = old_file(cache_dir, ".live.wav.5678abcd.part", hours_ago=0, size=10)
    cache.evict_over_cap(cache_dir, MB)
    assert not stale.exists()
    assert live.exists()


def test_a_bad_cap_is_refused_with_its_name_before_any_call(elevenlabs_fake):
    set_config("elevenlabs_cache_max_mb", "lots")
    with pytest.raises(ConfigValueError, match="Config elevenlabs_cache_max_mb='lots' is not a whole number"):
        ElevenLabsClient().text_to_speech_and_save("hola")
    set_config("elevenlabs_cache_max_mb", "0")
    with pytest.raises(ConfigValueError, match="must be at least 1"):
        ElevenLabsClient().text_to_speech_and_save("hola")
    assert elevenlabs_fake.tts_requests() == []


def test_the_default_cap_is_500_mb(db):
    assert cache.cache_cap_bytes() == 500 * MB
