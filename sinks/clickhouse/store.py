"""The store contract: a narrow, blocking ClickHouse client.

Callers on an event loop run these methods in an executor: every call blocks.
:func:`sinks.clickhouse.engines.open_store` picks the engine a URL names.
SQL names tables fully qualified (``store.table("flags_history")``), so a
store never depends on a session's current database.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar

from sinks.clickhouse.errors import StoreError
from sinks.clickhouse.sqltext import quote_identifier

__all__ = ["Params", "Store", "block_length", "parse_version"]

Params = Mapping[str, Any]


class Store(ABC):
    """What the sink needs from ClickHouse, whichever engine runs it.

    Parameters in SQL are written ``%(name)s`` and bound as escaped literals
    (see :mod:`sinks.clickhouse.sqltext`). Datetimes must be aware; they are
    stored and returned in UTC.
    """

    kind: ClassVar[str]

    def __init__(self, database: str) -> None:
        self._database = database

    @property
    def database(self) -> str:
        """The database this store's tables live in."""
        return self._database

    def table(self, name: str) -> str:
        """``name`` qualified with this store's database, quoted for SQL."""
        return f"{quote_identifier(self._database)}.{quote_identifier(name)}"

    @abstractmethod
    def ensure_database(self) -> None:
        """Create this store's database if it does not exist."""

    @abstractmethod
    def execute(self, sql: str, params: Params | None = None) -> None:
        """Run a statement that returns no rows (DDL, ``ALTER``, ``INSERT ... SELECT``)."""

    @abstractmethod
    def query_rows(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        """Run a query and return its rows as tuples of Python values."""

    @abstractmethod
    def insert_columns(
        self,
        table: str,
        column_names: Sequence[str],
        columns: Sequence[Sequence[Any]],
    ) -> int:
        """Insert one block given column by column into ``table`` of this database.

        Returns the number of rows written. All columns must be equally long.
        """

    @abstractmethod
    def server_version(self) -> tuple[int, ...]:
        """The engine's version, e.g. ``(18, 16, 1)``."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection or session; the store is unusable afterwards."""

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def block_length(column_names: Sequence[str], columns: Sequence[Sequence[Any]]) -> int:
    """Rows in a columnar block, after checking names and columns agree."""
    if len(column_names) != len(columns):
        raise StoreError(f"{len(column_names)} column names for {len(columns)} columns")
    if not columns:
        raise StoreError("an insert needs at least one column")
    lengths = {len(column) for column in columns}
    if len(lengths) != 1:
        raise StoreError(f"columns differ in length: {sorted(lengths)}")
    return lengths.pop()


def parse_version(text: str) -> tuple[int, ...]:
    """``'18.16.1'`` -> ``(18, 16, 1)``; trailing non-numeric parts are dropped."""
    numbers: list[int] = []
    for part in text.strip().strip('"').split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    if not numbers:
        raise StoreError(f"cannot read a version from {text!r}")
    return tuple(numbers)
