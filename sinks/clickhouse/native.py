"""A ClickHouse server over the native protocol (clickhouse-driver)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from clickhouse_driver import Client
from clickhouse_driver import errors as driver_errors

from sinks.clickhouse.errors import QueryError, StoreError, StoreUnavailable
from sinks.clickhouse.sqltext import bind, quote_identifier
from sinks.clickhouse.store import Params, Store, block_length, parse_version
from sinks.clickhouse.url import StoreURL

__all__ = ["NativeStore"]

_T = TypeVar("_T")
_CONNECT_TIMEOUT_S = 5
_SEND_RECEIVE_TIMEOUT_S = 120
_UNKNOWN_DATABASE = 81
_UNREACHABLE = (driver_errors.NetworkError, driver_errors.SocketTimeoutError, OSError, EOFError)


class NativeStore(Store):
    """A store on a ClickHouse server; inserts are columnar native blocks."""

    kind = "clickhouse"

    def __init__(self, url: StoreURL) -> None:
        super().__init__(url.database)
        self._url = url
        self._client = self._new_client(url.database)
        self._version: tuple[int, ...] | None = None

    def _new_client(self, database: str) -> Client:
        return Client(
            host=self._url.host,
            port=self._url.port,
            user=self._url.user,
            password=self._url.password,
            database=database,
            client_name="callguard",
            connect_timeout=_CONNECT_TIMEOUT_S,
            send_receive_timeout=_SEND_RECEIVE_TIMEOUT_S,
        )

    def ensure_database(self) -> None:
        """Create the database through a connection to ``default`` (ours may not exist yet)."""
        try:
            self._on_default_database(
                f"CREATE DATABASE IF NOT EXISTS {quote_identifier(self.database)}"
            )
        except QueryError as error:
            if error.code != 82:  # DATABASE_ALREADY_EXISTS: another process won the race
                raise

    def execute(self, sql: str, params: Params | None = None) -> None:
        """Run a statement that returns no rows."""
        statement = bind(sql, params)
        self._call(lambda: self._client.execute(statement))

    def query_rows(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        """Run a query; datetimes come back aware, in UTC for ``DateTime('UTC')`` columns."""
        statement = bind(sql, params)
        rows = self._call(lambda: self._client.execute(statement))
        return [tuple(row) for row in rows]

    def insert_columns(
        self,
        table: str,
        column_names: Sequence[str],
        columns: Sequence[Sequence[Any]],
    ) -> int:
        """Send the columns as one native block (``columnar=True``)."""
        rows = block_length(column_names, columns)
        if rows == 0:
            return 0
        names = ", ".join(quote_identifier(name) for name in column_names)
        statement = f"INSERT INTO {self.table(table)} ({names}) VALUES"
        data = [list(column) for column in columns]
        try:
            self._call(lambda: self._client.execute(statement, data, columnar=True))
        except (TypeError, ValueError, OverflowError) as error:  # the driver's own checks
            raise StoreError(f"{self.database}.{table}: {error}") from error
        return rows

    def server_version(self) -> tuple[int, ...]:
        """The server's ``version()``, asked once per store."""
        if self._version is None:
            try:
                rows = self.query_rows("SELECT version()")
            except QueryError as error:
                if error.code != _UNKNOWN_DATABASE:
                    raise
                rows = self._on_default_database("SELECT version()")
            ((text,),) = rows
            self._version = parse_version(text)
        return self._version

    def close(self) -> None:
        """Close the connection."""
        self._client.disconnect()

    def _on_default_database(self, sql: str) -> list[tuple[Any, ...]]:
        """Run ``sql`` on a short connection to ``default``, for when ours does not exist."""
        client = self._new_client("default")
        try:
            return [tuple(row) for row in self._call(lambda: client.execute(sql))]
        finally:
            client.disconnect()

    def _call(self, action: Callable[[], _T]) -> _T:
        try:
            return action()
        except _UNREACHABLE as error:
            raise StoreUnavailable(f"{self._url.redacted()}: {error}") from error
        except driver_errors.Error as error:
            message = str(error).split("Stack trace:", 1)[0].strip()
            raise QueryError(message, getattr(error, "code", None)) from error
