"""The one exception root of the ClickHouse sink, and its few kinds."""

from __future__ import annotations


class StoreError(Exception):
    """Root of every error this package raises on purpose."""


class StoreURLError(StoreError, ValueError):
    """A store URL that cannot be used; the message says what is expected."""


class UnsupportedFeature(StoreError):
    """The server behind a store cannot do what was asked (say which and why)."""


class QueryError(StoreError):
    """The server refused or failed a statement.

    ``code`` is ClickHouse's numeric error code when the backend reports one
    (for example 57 for a table that already exists), else ``None``.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class StoreUnavailable(StoreError):
    """The server could not be reached; retrying later may succeed."""
