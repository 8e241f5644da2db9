"""Database writes of the capture.

They run outside the asyncio loop: session rows in a thread, event batches in
the writer process (see ``writer.py``), from a plain-data ``WriteBatch``.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import psycopg
from django.db import IntegrityError, connection, transaction
from django.db.models import Count
from django.utils import timezone

from project.tiktok_events.capture.batches import WriteBatch
from project.tiktok_events.models import LiveEvent, LiveSession

log = logging.getLogger("capture.store")


def create_session(streamer: str, name: str, room_id: str) -> LiveSession:
    return LiveSession.objects.create(
        name=name,
        streamer=streamer,
        room_id=room_id,
        started_at=timezone.now(),
        status=LiveSession.Status.LIVE,
    )


def update_room(session_id: int, room_id: str) -> None:
    LiveSession.objects.filter(pk=session_id).update(room_id=room_id)


def note_connection(session_id: int, note: str) -> None:
    """Why the capture is not connected right now ("" once it is again)."""
    LiveSession.objects.filter(pk=session_id).update(connection_note=note[:255])


def end_session(
    session_id: int, status: str, reason: str, *, reconnects: int | None = None, behind_max_seconds: float | None = None
) -> None:
    """Close the session, with what its report shows of the connection: reconnects and the worst lag."""
    LiveSession.objects.filter(pk=session_id).update(
        status=status,
        ended_at=timezone.now(),
        end_reason=reason[:255],
        connection_note="",
        reconnects=reconnects,
        behind_max_seconds=behind_max_seconds,
    )


def session_counts(session_id: int) -> dict[str, int]:
    rows = LiveEvent.objects.filter(session_id=session_id).values("event_type").annotate(n=Count("id"))
    return {row["event_type"]: row["n"] for row in rows}


def write_batch(batch: WriteBatch, *, skip_duplicates: bool = False) -> tuple[list[int | None], list[LiveEvent]]:
    """Insert and update the batch's rows, inside the caller's transaction (no savepoint of its own).

    Returns the new primary keys (None for a row skipped as a duplicate) and the
    LiveEvent objects to dispatch, built from the values written.

    The rows go in with one COPY, which fails as a whole on a message id already
    stored in this session (a batch retried after the writer died, or a replay
    beyond the in-memory de-duplication window): an ``IntegrityError`` —
    psycopg's own ``UniqueViolation``, COPY runs outside Django's error wrapping —
    that aborts the caller's transaction. The caller then rolls back and writes
    the batch again with ``skip_duplicates``: one row at a time, keeping those
    already there. (A savepoint around every COPY would cost two more round trips
    per batch for a case that is rare.)
    """
    if skip_duplicates:
        ids = _insert_skipping_duplicates(batch.session_id, batch.inserts)
    else:
        ids = list(_copy_insert(batch.session_id, batch.inserts))
    now = timezone.now()
    for pk, values in batch.updates:
        LiveEvent.objects.filter(pk=pk).update(**values, updated_at=now)
    to_dispatch = [
        LiveEvent(pk=ids[index], session_id=batch.session_id, **batch.inserts[index])
        for index in batch.dispatch_inserts
        if ids[index] is not None
    ]
    to_dispatch += [
        LiveEvent(pk=batch.updates[index][0], session_id=batch.session_id, **batch.updates[index][1])
        for index in batch.dispatch_updates
    ]
    return ids, to_dispatch


DUPLICATE_ERRORS = (IntegrityError, psycopg.IntegrityError)

# Primary keys are taken from the table's sequence this many at a time (one round
# trip every few batches instead of one per batch); what a process does not use
# is a gap in the ids, as after any rollback. One pool per database and storing
# thread (the priority lane's writer may be a thread beside the main one's).
ID_BLOCK = 500
_id_pools = threading.local()


def _reserve_ids(cursor, table: str, count: int) -> list[int]:
    pools = _id_pools.__dict__.setdefault("pools", {})
    pool = pools.setdefault(connection.settings_dict["NAME"], [])
    if len(pool) < count:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [table, max(count - len(pool), ID_BLOCK)],
        )
        pool.extend(pk for (pk,) in cursor.fetchall())
    ids = pool[:count]
    del pool[:count]
    return ids


# Columns written by COPY, in order (id comes from the table's identity sequence).
COPY_COLUMNS = (
    "id",
    "created_at",
    "updated_at",
    "session_id",
    "event_type",
    "msg_id",
    "user_id",
    "user_unique_id",
    "user_nickname",
    "user_nickname_raw",
    "event_data",
    "streak_status",
    "repeat_count",
    "received_at",
)


def _copy_insert(session_id: int, rows: list[dict[str, Any]]) -> list[int]:
    """Insert with COPY: a flood is thousands of rows a second, and bulk_create spends
    ~150 µs of Python per row preparing values where COPY needs a few."""
    if not rows:
        return []
    now = timezone.now()
    table = LiveEvent._meta.db_table
    with connection.cursor() as cursor:
        ids = _reserve_ids(cursor, table, len(rows))
        with cursor.cursor.copy(f"COPY {table} ({', '.join(COPY_COLUMNS)}) FROM STDIN") as copy:
            for pk, values in zip(ids, rows, strict=True):
                copy.write_row(
                    (
                        pk,
                        now,
                        now,
                        session_id,
                        values["event_type"],
                        values["msg_id"],
                        values["user_id"],
                        values["user_unique_id"],
                        values["user_nickname"],
                        values["user_nickname_raw"],
                        json.dumps(values["event_data"], ensure_ascii=False),
                        values["streak_status"],
                        values["repeat_count"],
                        values["received_at"],
                    )
                )
    return ids


def _insert_skipping_duplicates(session_id: int, rows: list[dict[str, Any]]) -> list[int | None]:
    """One by one; a message already stored in the session keeps its row, whose primary key
    is returned: a batch retried after the writer died had committed, and a streak in it
    still needs its row for the updates to come (None only if the row cannot be found)."""
    ids: list[int | None] = []
    for values in rows:
        try:
            with transaction.atomic():
                ids.append(LiveEvent.objects.create(session_id=session_id, **values).pk)
        except IntegrityError:
            log.info("TikTok message already stored; keeping its row", extra={"msg_id": values["msg_id"]})
            existing = LiveEvent.objects.filter(session_id=session_id, msg_id=values["msg_id"])
            ids.append(existing.values_list("pk", flat=True).first())
    return ids
