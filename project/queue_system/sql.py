"""Small helpers for the raw SQL of the hot paths (dispatcher insert, worker claim)."""

from __future__ import annotations

from collections.abc import Iterable

# Prefixed to a statement run outside a transaction: the statement and this SET
# form one implicit transaction whose commit does not wait for the WAL flush.
# Only for writes whose loss in a database crash is harmless (see the callers).
ASYNC_COMMIT = "SET LOCAL synchronous_commit TO OFF;"


def array_literal(values: Iterable) -> str:
    """A PostgreSQL array literal, passed as one parameter (``%s::bigint[]``, ``%s::text[]``).

    One string to quote instead of one parameter per element: under a flood the
    per-element adaptation of a few hundred ids cost more than the insert.
    """
    quoted = (str(v).replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return "{" + ",".join(f'"{v}"' for v in quoted) + "}"
