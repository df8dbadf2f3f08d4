"""The audit of number lookups: who looked up which number, when and how.

Rows are written in batches by the worker (:mod:`streams.http.access.lookups`),
off its event loop; :func:`lookups_of` reads a number's, newest first.
"""

# ruff: noqa: S608 - the table name passes Store.table (quoted); values are bound parameters
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sinks.clickhouse.store import Store

__all__ = ["LOOKUP_COLUMNS", "NumberLookup", "insert_lookups", "lookups_of"]


@dataclass(frozen=True, slots=True)
class NumberLookup:
    """One look at one number."""

    looked_up_at: datetime
    user_name: str
    role: str
    number: str
    route: str  # the route pattern, e.g. /numbers/{number}
    address: str  # the client's address as the worker saw it
    worker: str


LOOKUP_COLUMNS = tuple(field.name for field in fields(NumberLookup))


def insert_lookups(store: Store, lookups: Sequence[NumberLookup]) -> int:
    """Write ``lookups`` to ``number_lookups``; the number of rows written."""
    if not lookups:
        return 0
    columns: list[list[Any]] = [
        [getattr(lookup, name) for lookup in lookups] for name in LOOKUP_COLUMNS
    ]
    return store.insert_columns("number_lookups", LOOKUP_COLUMNS, columns)


def lookups_of(store: Store, number: str, *, limit: int = 100) -> list[dict[str, Any]]:
    """The lookups of ``number``, newest first."""
    sql = f"""SELECT {", ".join(LOOKUP_COLUMNS)} FROM {store.table("number_lookups")}
WHERE number = %(number)s
ORDER BY looked_up_at DESC
LIMIT %(limit)s"""
    rows = store.query_rows(sql, {"number": number, "limit": int(limit)})
    return [dict(zip(LOOKUP_COLUMNS, row, strict=True)) for row in rows]
