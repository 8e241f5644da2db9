"""The audio cache under ``MEDIA_ROOT/elevenlabs/``: whole files only, a size cap, nothing paid twice.

- A phrase is written to a hidden partial file in the same directory, fsynced and
  renamed over its name: a reader (a player, the audio view, the next cache
  lookup) sees the whole file or none, even after a full disk or a crash.
- Config ``elevenlabs_cache_max_mb`` (default 500) caps the directory. After each
  write, when the directory is over the cap, the least recently used phrases go
  first; "used" is the file's mtime, which a cache hit and a playback refresh
  (``touch``), because atime is not updated on most mounts (relatime/noatime).
  The file just written and files being played by this process are never
  evicted; a player in another process that already opened its file keeps
  reading it after an unlink (POSIX), and its file was touched just before.
- Audio ElevenLabs has already been paid for, but that could not be written
  (disk full), is kept in this process's memory and in Redis for an hour
  (:class:`ReceivedAudio`), so the retry of the item writes it without a second
  API call.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import logging
import os
import threading
import time
import uuid
from collections import Counter, OrderedDict
from pathlib import Path

from project.integrations.config_values import config_int

logger = logging.getLogger("integrations.elevenlabs")

CACHE_CAP_KEY = "elevenlabs_cache_max_mb"
DEFAULT_CACHE_CAP_MB = 500
# A partial file this old belongs to a writer that died (a write takes milliseconds).
STALE_PARTIAL_SECONDS = 3600.0
PARTIAL_SUFFIX = ".part"
# "The disk cannot take this file now": no space, the user's quota, or a file-size limit.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

_playing: Counter[str] = Counter()
_playing_lock = threading.Lock()


def cache_cap_bytes() -> int:
    return config_int(CACHE_CAP_KEY, DEFAULT_CACHE_CAP_MB, minimum=1) * 1024 * 1024


def is_disk_full(exc: OSError) -> bool:
    return exc.errno in DISK_FULL_ERRNOS


def write_atomically(path: Path, data: bytes) -> None:
    """``path`` holds ``data`` entirely, or keeps what it held before; raises OSError (disk full…)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}")
    try:
        with partial.open("wb") as out:
            out.write(data)
            out.flush()
            # Without it a power cut after the rename can leave a named but empty file.
            os.fsync(out.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)  # gone already after a successful rename
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; not every filesystem allows it, and losing it only costs a re-download."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def touch(path: Path) -> None:
    """Mark ``path`` as just used (its mtime is what eviction orders by)."""
    with contextlib.suppress(FileNotFoundError):
        os.utime(path)


def hold(path: Path) -> None:
    """``path`` is being played: touched now, and left alone by eviction in this process until :func:`release`."""
    touch(path)
    with _playing_lock:
        _playing[path.name] += 1


def release(path: Path) -> None:
    with _playing_lock:
        _playing[path.name] -= 1
        if _playing[path.name] <= 0:
            del _playing[path.name]


def evict_over_cap(directory: Path, cap_bytes: int, keep: tuple[Path, ...] = ()) -> list[str]:
    """Delete the least recently used phrases until ``directory`` holds at most ``cap_bytes``.

    One ``scandir`` when under the cap; over it, a heap of the files, so a
    write pays O(files) and only the evicted ones cost more. Returns the names
    deleted.
    """
    now = time.time()
    total = 0
    candidates: list[tuple[float, str, int]] = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    for entry in entries:
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            stat = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # evicted or renamed by another process meanwhile
        if entry.name.startswith(".") and entry.name.endswith(PARTIAL_SUFFIX):
            if now - stat.st_mtime > STALE_PARTIAL_SECONDS:
                Path(entry.path).unlink(missing_ok=True)
                continue
            total += stat.st_size  # a write in progress: it counts, but it is not ours to delete
            continue
        total += stat.st_size
        candidates.append((stat.st_mtime, entry.name, stat.st_size))
    if total <= cap_bytes:
        return []
    with _playing_lock:
        protected = {p.name for p in keep} | set(_playing)
    heapq.heapify(candidates)
    evicted: list[str] = []
    while total > cap_bytes and candidates:
        _, name, size = heapq.heappop(candidates)
        if name in protected:
            continue
        (directory / name).unlink(missing_ok=True)
        total -= size
        evicted.append(name)
    logger.info(
        "audio cache over its cap: %s least recently used phrase(s) deleted",
        len(evicted),
        extra={"evicted": len(evicted), "cache_bytes": total, "cap_bytes": cap_bytes},
    )
    return evicted


class ReceivedAudio:
    """Audio paid for but not yet saved, by file name: this process's memory first, then Redis.

    Memory covers the common case (the item's retry runs in the same worker
    process); Redis covers a retry in another process. Both are best-effort:
    without them the retry calls the API again, as before.
    """

    MEMORY_LIMIT_BYTES = 64 * 1024 * 1024
    REDIS_TTL_SECONDS = 3600
    REDIS_PREFIX = "elevenlabs:received:"

    _memory: OrderedDict[str, bytes] = OrderedDict()
    _lock = threading.Lock()

    @classmethod
    def put(cls, name: str, audio: bytes) -> None:
        with cls._lock:
            cls._memory[name] = audio
            cls._memory.move_to_end(name)
            while sum(len(v) for v in cls._memory.values()) > cls.MEMORY_LIMIT_BYTES and len(cls._memory) > 1:
                cls._memory.popitem(last=False)
        try:
            _redis().set(cls.REDIS_PREFIX + name, audio, ex=cls.REDIS_TTL_SECONDS)
        except Exception as exc:  # Redis is only the second copy
            logger.warning("could not keep the received audio in Redis: %s", exc, extra={"audio": name})

    @classmethod
    def get(cls, name: str) -> bytes | None:
        with cls._lock:
            audio = cls._memory.get(name)
        if audio is not None:
            return audio
        try:
            return _redis().get(cls.REDIS_PREFIX + name)
        except Exception as exc:
            logger.warning("could not read received audio from Redis: %s", exc, extra={"audio": name})
            return None

    @classmethod
    def drop(cls, name: str) -> None:
        with cls._lock:
            cls._memory.pop(name, None)
        with contextlib.suppress(Exception):
            _redis().delete(cls.REDIS_PREFIX + name)

    @classmethod
    def forget_memory(cls) -> None:
        """Tests: behave like a fresh process."""
        with cls._lock:
            cls._memory.clear()


_redis_client = None


def _redis():
    global _redis_client
    if _redis_client is None:
        import redis
        from django.conf import settings

        _redis_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=3, socket_connect_timeout=3)
    return _redis_client
