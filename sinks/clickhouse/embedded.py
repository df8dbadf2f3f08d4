"""ClickHouse in this process: a chDB session persisted at a path.

Only one process may open a path; whatever reads the store (a dashboard, a
lookup) must live in the process that writes it, or ask it.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Sequence
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.ipc as arrow_ipc
from chdb.session import Session

from sinks.clickhouse.chdb_types import arrow_type, json_decoder
from sinks.clickhouse.errors import QueryError, StoreError
from sinks.clickhouse.sqltext import bind, quote_identifier
from sinks.clickhouse.store import Params, Store, block_length, parse_version
from sinks.clickhouse.url import StoreURL

__all__ = ["ChdbStore"]

_ERROR_CODE = re.compile(r"Code: (\d+)")


class ChdbStore(Store):
    """A store on an embedded chDB engine.

    Inserts go as one Arrow IPC stream typed from the table's columns: binary,
    columnar, and free of any quoting, so strings cannot break out of a value.
    """

    kind = "chdb"

    def __init__(self, url: StoreURL) -> None:
        super().__init__(url.database)
        self._path = url.path
        self._lock = threading.Lock()
        self._column_types: dict[str, dict[str, str]] = {}
        try:
            self._session: Session | None = Session(url.path)
        except Exception as error:  # chdb raises bare RuntimeErrors
            raise StoreError(f"cannot open chdb store at {url.path}: {error}") from error

    def ensure_database(self) -> None:
        """Create the database if it does not exist."""
        self.execute(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(self.database)}")

    def execute(self, sql: str, params: Params | None = None) -> None:
        """Run a statement that returns no rows."""
        self._query(bind(sql, params), "CSV")
        self._column_types.clear()  # a statement may have changed a table

    def query_rows(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        """Run a query; values are decoded by their ClickHouse types."""
        payload = self._query(bind(sql, params), "JSONCompact")
        if not payload:
            return []
        result = orjson.loads(payload)
        decoders = [json_decoder(column["type"]) for column in result["meta"]]
        return [
            tuple(decode(value) for decode, value in zip(decoders, row, strict=True))
            for row in result["data"]
        ]

    def insert_columns(
        self,
        table: str,
        column_names: Sequence[str],
        columns: Sequence[Sequence[Any]],
    ) -> int:
        """Send the columns as one Arrow stream (``FORMAT ArrowStream``)."""
        rows = block_length(column_names, columns)
        if rows == 0:
            return 0
        types = self._types_of(table)
        arrays = []
        for name, column in zip(column_names, columns, strict=True):
            if name not in types:
                raise StoreError(f"{self.database}.{table} has no column {name!r}")
            try:
                arrays.append(pa.array(list(column), type=arrow_type(types[name])))
            except (pa.ArrowException, TypeError, ValueError) as error:
                raise StoreError(f"column {name!r} ({types[name]}): {error}") from error
        block = pa.Table.from_arrays(arrays, names=list(column_names))
        buffer = io.BytesIO()
        with arrow_ipc.new_stream(buffer, block.schema) as writer:
            writer.write_table(block)
        names = ", ".join(quote_identifier(name) for name in column_names)
        with self._lock:
            session = self._open_session()
            try:
                with session.send_insert(
                    f"INSERT INTO {self.table(table)} ({names})", "ArrowStream"
                ) as insert:
                    insert.append(buffer.getvalue())
                    insert.finish()
            except RuntimeError as error:
                raise _query_error(error) from error
        return rows

    def server_version(self) -> tuple[int, ...]:
        """The embedded engine's ``version()``."""
        ((text,),) = self.query_rows("SELECT version()")
        return parse_version(text)

    def close(self) -> None:
        """Close the session, releasing the path for another process."""
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None

    def _types_of(self, table: str) -> dict[str, str]:
        if table not in self._column_types:
            rows = self.query_rows(
                "SELECT name, type FROM system.columns WHERE database = %(db)s AND table = %(t)s",
                {"db": self.database, "t": table},
            )
            if not rows:
                raise StoreError(f"no table {self.database}.{table}")
            self._column_types[table] = dict(rows)
        return self._column_types[table]

    def _open_session(self) -> Session:
        if self._session is None:
            raise StoreError(f"chdb store at {self._path} is closed")
        return self._session

    def _query(self, sql: str, output_format: str) -> bytes:
        with self._lock:
            session = self._open_session()
            try:
                return session.query(sql, output_format).bytes()
            except RuntimeError as error:
                raise _query_error(error) from error


def _query_error(error: Exception) -> QueryError:
    match = _ERROR_CODE.search(str(error))
    return QueryError(str(error), int(match.group(1)) if match else None)
