"""The writer and reader users, for servers that manage users with SQL.

The writer may insert into the store's database and read only what
:func:`sinks.clickhouse.flags.insert_decisions` needs to skip stored decisions
(``number`` and ``decision_id`` of ``flags_history``); the reader may only
select. ClickHouse 18.x has no SQL users: there, ``scripts/clickhouse-server.sh
users`` writes them into ``users.d`` (18.x cannot grant per statement, so that
writer can also read its database, and neither user can run DDL). chDB runs in
process and has no users at all.
"""

from __future__ import annotations

from sinks.clickhouse.dialect import ServerFeatures
from sinks.clickhouse.errors import UnsupportedFeature
from sinks.clickhouse.sqltext import quote_identifier, quote_string
from sinks.clickhouse.store import Store

__all__ = ["READER", "WRITER", "create_users", "render_user_statements"]

WRITER = "callguard_writer"
READER = "callguard_reader"


def render_user_statements(
    database: str,
    writer_password: str,
    reader_password: str,
    *,
    writer: str = WRITER,
    reader: str = READER,
) -> list[str]:
    """The SQL that creates (or resets) both users and their grants."""
    if not writer_password or not reader_password:
        raise ValueError("both users need a non-empty password")
    db = quote_identifier(database)
    statements: list[str] = []
    for user, password in ((writer, writer_password), (reader, reader_password)):
        name = quote_identifier(user)
        identified = f"IDENTIFIED WITH sha256_password BY {quote_string(password)}"
        statements += [
            f"CREATE USER IF NOT EXISTS {name} {identified}",
            f"ALTER USER {name} {identified}",
            f"REVOKE ALL ON *.* FROM {name}",
        ]
    statements += [
        f"GRANT INSERT ON {db}.* TO {quote_identifier(writer)}",
        f"GRANT SELECT(number, decision_id) ON {db}.`flags_history` TO {quote_identifier(writer)}",
        f"GRANT SELECT ON {db}.* TO {quote_identifier(reader)}",
    ]
    return statements


def create_users(
    store: Store,
    writer_password: str,
    reader_password: str,
    *,
    writer: str = WRITER,
    reader: str = READER,
) -> list[str]:
    """Create or reset the writer and reader users; return what was granted (no passwords)."""
    if store.kind == "chdb":
        raise UnsupportedFeature("chdb runs in this process and has no users")
    if not ServerFeatures(store.server_version()).sql_users:
        raise UnsupportedFeature(
            "this server keeps users in users.xml: run "
            "`CALLGUARD_WRITER_PASSWORD=... CALLGUARD_READER_PASSWORD=... "
            "scripts/clickhouse-server.sh users` on its host"
        )
    for statement in render_user_statements(
        store.database, writer_password, reader_password, writer=writer, reader=reader
    ):
        store.execute(statement)
    return [
        f"{writer}: INSERT on {store.database}.*, SELECT(number, decision_id) on flags_history",
        f"{reader}: SELECT on {store.database}.*",
    ]
