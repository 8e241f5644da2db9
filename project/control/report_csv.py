"""CSV exports of a session's events and queue items, streamed.

The rows come from a server-side cursor (``iterator``) and go out as they are read
(StreamingHttpResponse), so a session of a million events is exported in constant
memory, in the order they were stored (primary key).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from django.contrib.admin.views.decorators import staff_member_required
from django.db.models import TextField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404

from project.queue_system.models import QueueItem
from project.tiktok_events.models import LiveEvent, LiveSession

CHUNK = 2_000


def _text(expression):
    # Cast in PostgreSQL: a timestamp or a JSON value goes out as the database's text,
    # without being parsed into a Python object and formatted back, row by row.
    return Cast(expression, TextField())


EVENT_COLUMNS = [
    ("id", "id"),
    ("received_at", _text("received_at")),
    ("created_at", _text("created_at")),
    ("event_type", "event_type"),
    ("msg_id", "msg_id"),
    ("user_id", "user_id"),
    ("user_unique_id", "user_unique_id"),
    ("user_nickname", "user_nickname"),
    ("streak_status", "streak_status"),
    ("repeat_count", "repeat_count"),
    ("gift", KT("event_data__gift__name")),
    ("diamonds", KT("event_data__diamonds_total")),
    ("comment", KT("event_data__comment")),
    ("likes", KT("event_data__count")),
    ("event_data", _text("event_data")),
]

ITEM_COLUMNS = [
    ("id", "id"),
    ("live_event_id", "live_event_id"),
    ("event_received_at", _text("live_event__received_at")),
    ("service", "service__slug"),
    ("event_type", "event_type"),
    ("priority", "priority"),
    ("discardable", "discardable"),
    ("status", "status"),
    ("attempts", "attempts"),
    ("error", "error"),
    ("moderation", "moderation"),
    ("created_at", _text("created_at")),
    ("dispatched_at", _text("dispatched_at")),
    ("started_at", _text("started_at")),
    ("finished_at", _text("finished_at")),
]


class _Echo:
    """csv.writer's file: each row is returned instead of stored."""

    def write(self, value: str) -> str:
        return value


# Cells a viewer writes (nickname, comment, gift name, an error quoting them): a
# spreadsheet runs a cell that starts with one of these as a formula, so such a cell
# gets a leading apostrophe (OWASP's advice against CSV injection).
VIEWER_TEXT = {"user_unique_id", "user_nickname", "gift", "comment", "error", "moderation"}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _stream(header: list[str], rows: Iterable[tuple]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    guarded = [i for i, name in enumerate(header) if name in VIEWER_TEXT]
    for row in rows:
        if any(isinstance(row[i], str) and row[i].startswith(FORMULA_START) for i in guarded):
            row = list(row)
            for i in guarded:
                if isinstance(row[i], str) and row[i].startswith(FORMULA_START):
                    row[i] = "'" + row[i]
        yield writer.writerow(row)  # None is written as an empty cell


def event_rows(session_id: int) -> Iterator[tuple]:
    return (
        LiveEvent.objects.filter(session_id=session_id)
        .order_by("id")
        .values_list(*[source for _, source in EVENT_COLUMNS])
        .iterator(chunk_size=CHUNK)
    )


def queue_item_rows(session_id: int) -> Iterator[tuple]:
    return (
        QueueItem.objects.filter(live_event__session_id=session_id)
        .order_by("live_event_id", "service_id")
        .values_list(*[source for _, source in ITEM_COLUMNS])
        .iterator(chunk_size=CHUNK)
    )


def _response(rows: Iterator[tuple], header: list[str], filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(_stream(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@staff_member_required
def events_csv(request, session_id: int):
    session = get_object_or_404(LiveSession, pk=session_id)
    return _response(event_rows(session.pk), [name for name, _ in EVENT_COLUMNS], f"session-{session.pk}-events.csv")


@staff_member_required
def queue_items_csv(request, session_id: int):
    session = get_object_or_404(LiveSession, pk=session_id)
    header = [name for name, _ in ITEM_COLUMNS]
    return _response(queue_item_rows(session.pk), header, f"session-{session.pk}-queue-items.csv")
