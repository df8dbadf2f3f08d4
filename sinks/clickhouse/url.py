"""Parse the one URL that picks and configures a store.

Two forms are accepted::

    clickhouse://user:password@host:9000/database   a ClickHouse server, native protocol
    chdb:///absolute/path?database=callguard         chDB in this process, kept at that path

Passwords may be percent-encoded; the user defaults to ``default`` and the port
to 9000. The chdb database defaults to ``callguard``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from sinks.clickhouse.errors import StoreURLError

__all__ = ["DEFAULT_CHDB_DATABASE", "StoreURL", "check_identifier", "parse_store_url"]

EXPECTED = "expected clickhouse://user:password@host:9000/db or chdb:///path"
DEFAULT_CHDB_DATABASE = "callguard"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def check_identifier(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a plain ClickHouse identifier, else raise ``StoreURLError``."""
    if not _IDENTIFIER.fullmatch(name):
        raise StoreURLError(f"{what} {name!r} must be letters, digits and _ (not first a digit)")
    return name


@dataclass(frozen=True, slots=True)
class StoreURL:
    """The parts of a store URL; ``password`` is kept out of ``repr``."""

    scheme: Literal["clickhouse", "chdb"]
    database: str
    host: str = ""
    port: int = 9000
    user: str = "default"
    password: str = field(default="", repr=False)
    path: str = ""

    def redacted(self) -> str:
        """The URL without its password, for logs and error messages."""
        if self.scheme == "chdb":
            return f"chdb://{self.path}?database={self.database}"
        return f"clickhouse://{self.user}@{self.host}:{self.port}/{self.database}"


def parse_store_url(url: str) -> StoreURL:
    """Split a store URL into its parts, or raise ``StoreURLError`` saying what is expected.

    >>> parse_store_url("clickhouse://w:p%40ss@127.0.0.1:9000/callguard").password
    'p@ss'
    >>> parse_store_url("chdb:///var/lib/callguard/chdb").database
    'callguard'
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise StoreURLError(f"bad store URL ({error}); {EXPECTED}") from None
    if parts.fragment:
        raise StoreURLError(f"store URL must not have a #fragment; {EXPECTED}")
    if parts.scheme == "clickhouse":
        return _native(
            parts.hostname, port, parts.username, parts.password, parts.path, parts.query
        )
    if parts.scheme == "chdb":
        return _embedded(parts.netloc, parts.path, parts.query)
    raise StoreURLError(f"unknown store URL scheme {parts.scheme!r}; {EXPECTED}")


def _native(
    host: str | None,
    port: int | None,
    user: str | None,
    password: str | None,
    path: str,
    query: str,
) -> StoreURL:
    if not host:
        raise StoreURLError(f"clickhouse URL needs a host; {EXPECTED}")
    if query:
        raise StoreURLError(f"clickhouse URL takes no ?query; {EXPECTED}")
    database = path.strip("/")
    if not database:
        raise StoreURLError(f"clickhouse URL needs a database after the port; {EXPECTED}")
    return StoreURL(
        scheme="clickhouse",
        host=host,
        port=port or 9000,
        user=unquote(user) if user else "default",
        password=unquote(password) if password else "",
        database=check_identifier(database, "database"),
    )


def _embedded(netloc: str, path: str, query: str) -> StoreURL:
    if netloc or not path.startswith("/"):
        raise StoreURLError(
            f"chdb URL needs an absolute path after chdb:// (three slashes); {EXPECTED}"
        )
    options = parse_qs(query, keep_blank_values=True, strict_parsing=False)
    unknown = set(options) - {"database"}
    if unknown:
        raise StoreURLError(f"chdb URL takes only ?database=NAME, not {sorted(unknown)}")
    database = options.get("database", [DEFAULT_CHDB_DATABASE])[-1]
    return StoreURL(
        scheme="chdb",
        path=unquote(path),
        database=check_identifier(database, "database"),
    )
