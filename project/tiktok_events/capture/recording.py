"""``--record FILE``: what TikTok sent during a capture, as received, for ``--simulate FILE``.

A recording (``.ttlive``) lets a streamer rehearse on last night's live, and
lets a bug report carry the exact frames that broke something: the simulator
plays it back through the endpoints the real client uses (``--replay``).

The format, version 1 (all integers big-endian)::

    file    = MAGIC, then one gzip stream (RFC 1952) of records
    MAGIC   = b"\\x89TTLIVE\\r\\n"  (9 bytes: no text file or gzip file starts so)
    record  = kind (1 byte) | arrival (float64, time.time()) | length (uint32) | data
    kind    = b"H" header: data is JSON {"format": "ttlive", "version": 1,
                  "tiktoklive": "7.0.1", "username": ..., "started_at": ISO 8601}
              b"F" first fetch: the sign server's ProtoMessageFetchResult (serialized),
                  one per connection, when its WebSocket opened
              b"W" WebSocket message: exactly the bytes received (push frames and
                  heartbeats alike)

The header is the first record. Every record is followed by a zlib sync flush
written straight to the file: a capture killed at any moment (SIGKILL, power)
leaves every record before the one being written readable. ``read_recording``
stops at a cut-off record and reports it (``on_truncated``) instead of failing.
This module uses only the standard library: the simulator loads it from its file.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import logging
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("capture.recording")

EXTENSION = ".ttlive"
FORMAT = "ttlive"
VERSION = 1
MAGIC = b"\x89TTLIVE\r\n"
RECORD_HEAD = struct.Struct(">cdI")
KINDS = {b"H": "header", b"F": "first_fetch", b"W": "frame"}
CODES = {name: code for code, name in KINDS.items()}
SYNC_MARKER = b"\x00\x00\xff\xff"  # how a zlib sync flush ends: a stream cut right after one is whole
# A record longer than this is damage, not a frame (TikTok's largest are well under 1 MB).
MAX_RECORD = 64 * 1024 * 1024


class RecordingError(ValueError):
    """The file is not a recording this version can read."""


@dataclass(frozen=True)
class Header:
    format: str
    version: int
    tiktoklive: str
    username: str
    started_at: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Record:
    kind: str  # first_fetch | frame
    arrival: float  # time.time() when the capture received it
    data: bytes


@dataclass(frozen=True)
class TruncatedTail:
    """What ``read_recording`` skipped at the end of a file that was cut short."""

    records_read: int
    bytes_skipped: int  # of decompressed data that did not make a whole record
    reason: str


def is_recording(path: str | Path) -> bool:
    """True for a file that starts like a recording (whatever its name)."""
    try:
        with open(path, "rb") as file:
            return file.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


class Recorder:
    """Writes a recording; ``frames`` counts the WebSocket messages written so far.

    A write error (disk full...) stops the recording with one logged error: the
    capture itself goes on.
    """

    def __init__(self, path: str | Path, username: str) -> None:
        self.path = Path(path)
        self.frames = 0
        self._compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: a gzip stream
        # Unbuffered: each record reaches the operating system as soon as it is written.
        self._file = open(self.path, "wb", buffering=0)  # closed by close()
        self._file.write(MAGIC)
        header = {
            "format": FORMAT,
            "version": VERSION,
            "tiktoklive": _version("TikTokLive"),
            "username": username,
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        }
        self._write("header", time.time(), json.dumps(header).encode())

    def first_fetch(self, result: Any) -> None:
        """CaptureClient.first_fetch_listener: the sign server's ProtoMessageFetchResult."""
        self._write("first_fetch", time.time(), bytes(result))

    def frame(self, data: bytes, arrival: float) -> None:
        """One WebSocket message as received."""
        if self._write("frame", arrival, data):
            self.frames += 1

    def close(self) -> None:
        """Ends the gzip stream (idempotent)."""
        if self._file is None:
            return
        try:
            self._file.write(self._compressor.flush(zlib.Z_FINISH))
        except OSError as exc:
            log.error("the recording could not be finished", extra={"path": str(self.path), "error": str(exc)})
        finally:
            self._file.close()
            self._file = None

    def _write(self, kind: str, arrival: float, data: bytes) -> bool:
        if self._file is None:
            return False
        record = RECORD_HEAD.pack(CODES[kind], arrival, len(data)) + data
        try:
            self._file.write(self._compressor.compress(record) + self._compressor.flush(zlib.Z_SYNC_FLUSH))
        except OSError as exc:
            log.error("recording stopped: cannot write", extra={"path": str(self.path), "error": str(exc)})
            self._file.close()
            self._file = None
            return False
        return True


def read_recording(
    path: str | Path, on_truncated: Callable[[TruncatedTail], None] | None = None
) -> Iterator[Header | Record]:
    """The header, then every whole record, in order.

    Raises RecordingError for a file that is not a recording (or one of a newer
    format). A tail cut short (a killed capture, a partial copy) is skipped and
    handed to ``on_truncated`` (by default: logged as a warning).
    """
    report = on_truncated or _log_truncated
    with open(path, "rb") as file:
        if file.read(len(MAGIC)) != MAGIC:
            raise RecordingError(
                f"{path} is not a TikTok LIVE recording (a {EXTENSION} file written by "
                "capture_tiktok_live --record FILE)"
            )
        records = _records(file)
        header = _header(path, next(records, None))
        yield header
        count = 0
        for item in records:
            if isinstance(item, TruncatedTail):
                report(TruncatedTail(count, item.bytes_skipped, item.reason))
                return
            count += 1
            yield item


def _header(path: str | Path, first: Record | TruncatedTail | None) -> Header:
    if not isinstance(first, Record) or first.kind != "header":
        raise RecordingError(f"{path} is a recording cut short before its header: nothing to play")
    values = json.loads(first.data)
    if values.get("format") != FORMAT or int(values.get("version", 0)) > VERSION:
        raise RecordingError(
            f"{path} is a {values.get('format')} recording of version {values.get('version')}; "
            f"this version reads {FORMAT} up to version {VERSION}: update the project"
        )
    known = {name: values.pop(name, "") for name in ("format", "version", "tiktoklive", "username", "started_at")}
    return Header(**known, extra=values)


def _records(file) -> Iterator[Record | TruncatedTail]:
    """Records from the gzip stream after MAGIC; a TruncatedTail last if it ends mid-record."""
    inflater = zlib.decompressobj(31)
    buffer = bytearray()
    tail = b""
    while chunk := file.read(1 << 16):
        tail = (tail + chunk)[-len(SYNC_MARKER) :]
        try:
            buffer += inflater.decompress(chunk)
        except zlib.error as exc:
            yield from _whole_records(buffer)
            yield TruncatedTail(0, len(buffer), f"damaged data ({exc})")
            return
        yield from _whole_records(buffer)
        if _damaged(buffer):
            yield TruncatedTail(0, len(buffer), "damaged data (a record that cannot be one)")
            return
        if inflater.eof:
            break
    if buffer or not (inflater.eof or tail == SYNC_MARKER):
        yield TruncatedTail(0, len(buffer), "the file is cut short (a killed capture, or a partial copy)")


def _whole_records(buffer: bytearray) -> Iterator[Record]:
    """Pops every whole record off the front of ``buffer``; stops at damage (left in the buffer)."""
    offset = 0
    while len(buffer) - offset >= RECORD_HEAD.size:
        code, arrival, length = RECORD_HEAD.unpack_from(buffer, offset)
        end = offset + RECORD_HEAD.size + length
        if code not in KINDS or length > MAX_RECORD or end > len(buffer):
            break
        yield Record(KINDS[code], arrival, bytes(buffer[offset + RECORD_HEAD.size : end]))
        offset = end
    del buffer[:offset]


def _damaged(buffer: bytearray) -> bool:
    if len(buffer) < RECORD_HEAD.size:
        return False
    code, _, length = RECORD_HEAD.unpack_from(buffer)
    return code not in KINDS or length > MAX_RECORD


def _log_truncated(tail: TruncatedTail) -> None:
    log.warning(
        "the recording is cut short: its tail was skipped",
        extra={"records_read": tail.records_read, "bytes_skipped": tail.bytes_skipped, "reason": tail.reason},
    )


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""
