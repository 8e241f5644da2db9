"""What crosses to the writer process: plain data, importable before Django is set up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # a Django module: named here, imported where the results are read
    from project.queue_system.streaming import BatchOutcome


@dataclass
class WriteBatch:
    """Rows to insert, rows to update by primary key, and which of them to dispatch once written."""

    session_id: int
    number: int = 0  # the pipeline's batch counter: names the batch in its ``BatchOutcome``
    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (pk, values)
    dispatch_inserts: list[int] = field(default_factory=list)  # indexes into inserts
    dispatch_updates: list[int] = field(default_factory=list)  # indexes into updates

    def __len__(self) -> int:
        return len(self.inserts) + len(self.updates)


@dataclass
class WriteResult:
    """A batch stored with its QueueItems (committed); its items are published but may not be
    confirmed yet: ``settled`` lists the batches (this one or earlier ones) settled by the call."""

    ids: list[int | None]  # primary keys of the batch's inserts (an already stored message: its row's)
    dispatched_events: int = 0
    items_created: int = 0
    settled: list[BatchOutcome] = field(default_factory=list)
    store_ms: float = 0.0  # the batch's transaction: rows, QueueItems, commit
    priority_types: frozenset[str] | None = None  # what the priority lane takes now (handoff.priority_types)
