"""What crosses to the writer process: plain data, importable before Django is set up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class WriteBatch:
    """Rows to insert, rows to update by primary key, and which of them to dispatch once written."""

    session_id: int
    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (pk, values)
    dispatch_inserts: list[int] = field(default_factory=list)  # indexes into inserts
    dispatch_updates: list[int] = field(default_factory=list)  # indexes into updates

    def __len__(self) -> int:
        return len(self.inserts) + len(self.updates)


@dataclass
class WriteResult:
    ids: list[int | None]  # primary keys of the batch's inserts (None: duplicate, skipped)
    dispatched_events: int = 0
    items_created: int = 0
    items_unconfirmed: int = 0
    error: str = ""
    confirmed_at: float = 0.0  # time.time() when the broker had confirmed the batch
