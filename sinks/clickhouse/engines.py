"""Which engine a store URL opens: a native-protocol client or an in-process chDB.

Apart from :mod:`sinks.clickhouse.store` (the contract both engines
implement), so that the engines depend on the contract and only this module
depends on the engines.
"""

from __future__ import annotations

from dataclasses import replace

from sinks.clickhouse.store import Store
from sinks.clickhouse.url import parse_store_url

__all__ = ["open_store"]


def open_store(url: str, *, password: str | None = None) -> Store:
    """Open the store a URL names (no connection is made until the first call).

    ``clickhouse://user:password@host:9000/db`` gives a native-protocol client;
    ``chdb:///abs/path`` an in-process chDB session persisted at that path (one
    process per path). ``password``, when given, replaces the URL's (so the URL
    can be logged and the secret kept apart); chDB has none and ignores it.
    """
    parsed = parse_store_url(url)
    if password is not None and parsed.scheme == "clickhouse":
        parsed = replace(parsed, password=password)
    # Each engine is imported when first opened: chdb loads a whole ClickHouse
    # into the process, which a worker on a native server never needs.
    if parsed.scheme == "clickhouse":
        from sinks.clickhouse.native import NativeStore

        return NativeStore(parsed)
    from sinks.clickhouse.embedded import ChdbStore

    return ChdbStore(parsed)
