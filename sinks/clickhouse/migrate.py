"""Apply the schema: idempotent, and safe from two processes at once.

Every statement is ``CREATE ... IF NOT EXISTS``; a race lost to another
process ("already exists") counts as done. Each migration is recorded in
``schema_migrations`` once its statements have all succeeded, so a rerun only
does what is missing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sinks.clickhouse.dialect import ServerFeatures
from sinks.clickhouse.errors import QueryError
from sinks.clickhouse.schema import MIGRATIONS_TABLE, Migration, render_migrations
from sinks.clickhouse.store import Store

__all__ = ["DEFAULT_RETENTION_DAYS", "applied_migrations", "migrate"]

DEFAULT_RETENTION_DAYS = 180
_ALREADY_EXISTS = {57, 82}  # TABLE_ALREADY_EXISTS, DATABASE_ALREADY_EXISTS


def migrate(store: Store, *, retention_days: int = DEFAULT_RETENTION_DAYS) -> list[str]:
    """Create the database and every table the flag store needs; return the migrations applied.

    A second run returns ``[]``. ``retention_days`` sets the tables' TTL on
    servers that have one; it takes effect when a table is created (changing it
    later is an ``ALTER TABLE ... MODIFY TTL``, not a migration).
    """
    store.ensure_database()
    version = store.server_version()
    migrations = render_migrations(store.database, ServerFeatures(version), retention_days)
    bootstrap = migrations[0]
    for statement in bootstrap.statements:
        _run(store, statement, bootstrap.done_codes)
    applied = applied_migrations(store)
    done: list[str] = []
    for migration in migrations:
        if migration.name in applied:
            continue
        for statement in migration.statements:
            _run(store, statement, migration.done_codes)
        _record(store, migration, version)
        done.append(migration.name)
    return done


def applied_migrations(store: Store) -> set[str]:
    """Names of the migrations recorded in this store."""
    sql = f"SELECT DISTINCT name FROM {store.table(MIGRATIONS_TABLE)}"  # noqa: S608 - quoted
    rows = store.query_rows(sql)
    return {name for (name,) in rows}


def _run(store: Store, statement: str, done_codes: frozenset[int]) -> None:
    try:
        store.execute(statement)
    except QueryError as error:
        if error.code not in _ALREADY_EXISTS and error.code not in done_codes:
            raise


def _record(store: Store, migration: Migration, version: tuple[int, ...]) -> None:
    store.insert_columns(
        MIGRATIONS_TABLE,
        ["name", "checksum", "server_version", "applied_at"],
        [
            [migration.name],
            [migration.checksum],
            [".".join(map(str, version))],
            [datetime.now(UTC)],
        ],
    )
