"""``callguard db ...``: schema, retention and reads of the flag store.

Mount with ``cli.add_typer(app, name="db")``. The store URL comes from
``--url`` or ``CALLGUARD_STORE_URL``; ``CALLGUARD_STORE_PASSWORD`` overrides
the URL's password, so the URL itself can be logged. A bad URL or a server
that cannot be reached prints one line on stderr and exits with status 2;
a statement the server refuses exits with status 1.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

import typer

from contracts.numbers import NumberError, normalise
from sinks.clickhouse import (
    DEFAULT_RETENTION_DAYS,
    QueryError,
    ServerFeatures,
    Store,
    StoreError,
    StoreUnavailable,
    StoreURLError,
    create_users,
    current_flags,
    enforce_retention,
    flag_history,
    migrate,
    open_store,
    parse_store_url,
)

__all__ = ["DEFAULT_STORE_URL", "app"]

DEFAULT_STORE_URL = "chdb:///var/lib/callguard/chdb"
# Names of environment variables, not secrets:
PASSWORD_ENV = "CALLGUARD_STORE_PASSWORD"  # noqa: S105
WRITER_PASSWORD_ENV = "CALLGUARD_WRITER_PASSWORD"  # noqa: S105
READER_PASSWORD_ENV = "CALLGUARD_READER_PASSWORD"  # noqa: S105

app = typer.Typer(
    name="db",
    help="The flag store (ClickHouse server or chDB): schema, retention, current flags, history.",
    no_args_is_help=True,
    add_completion=False,
)

StoreUrl = Annotated[
    str,
    typer.Option(
        "--url",
        envvar="CALLGUARD_STORE_URL",
        help="clickhouse://user@host:9000/db or chdb:///path (password: env "
        f"{PASSWORD_ENV}).",
    ),
]
RetentionDays = Annotated[
    int, typer.Option("--retention-days", "--days", min=1, help="Keep decisions this many days.")
]

FLAG_COLUMNS = ("number", "action", "category", "score", "source", "flagged_at", "expires_at")
HISTORY_COLUMNS = (*FLAG_COLUMNS, "actor", "decision_id", "reasons")
_NOT_MIGRATED = {60, 81}  # UNKNOWN_TABLE, UNKNOWN_DATABASE


@app.callback()
def _quiet_driver() -> None:
    # clickhouse-driver logs each refused connection with a traceback; the
    # error we print says the same in one line.
    logging.getLogger("clickhouse_driver").setLevel(logging.CRITICAL)


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"callguard db: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def _store(url: str) -> Iterator[Store]:
    """Open the store, turning its errors into one line and an exit status."""
    try:
        parsed = parse_store_url(url)
        store = open_store(url, password=os.environ.get(PASSWORD_ENV))
    except StoreURLError as error:
        raise _fail(str(error), 2) from None
    except StoreError as error:  # chDB: the path is locked by another process, or unusable
        raise _fail(f"cannot open {parsed.redacted()}: {error}", 2) from None
    try:
        yield store
    except StoreUnavailable as error:
        hint = "is it running? (scripts/clickhouse-server.sh status)"
        raise _fail(f"cannot reach the store: {error}; {hint}", 2) from None
    except QueryError as error:
        hint = "; run `callguard db migrate` first" if error.code in _NOT_MIGRATED else ""
        raise _fail(f"{parsed.redacted()}: {error}{hint}", 1) from None
    except StoreError as error:
        raise _fail(f"{parsed.redacted()}: {error}", 1) from None
    finally:
        store.close()


@app.command("migrate")
def migrate_command(
    url: StoreUrl = DEFAULT_STORE_URL,
    retention_days: RetentionDays = DEFAULT_RETENTION_DAYS,
) -> None:
    """Create or update the schema (safe to repeat); create the SQL users if asked.

    With CALLGUARD_WRITER_PASSWORD and CALLGUARD_READER_PASSWORD set, a server
    that manages users with SQL also gets (or resets) the writer and reader.
    """
    passwords = (os.environ.get(WRITER_PASSWORD_ENV), os.environ.get(READER_PASSWORD_ENV))
    if any(passwords) and not all(passwords):
        raise _fail(f"set both {WRITER_PASSWORD_ENV} and {READER_PASSWORD_ENV}, or neither", 2)
    with _store(url) as store:
        applied = migrate(store, retention_days=retention_days)
        if applied:
            typer.echo(f"applied {len(applied)} migrations: {', '.join(applied)}")
        else:
            typer.echo("schema up to date")
        writer_password, reader_password = passwords
        if writer_password and reader_password:
            _users(store, writer_password, reader_password)


def _users(store: Store, writer_password: str, reader_password: str) -> None:
    if store.kind == "chdb":
        typer.echo("users: none (chdb runs in this process and has no users)")
    elif not ServerFeatures(store.server_version()).sql_users:
        typer.echo(
            "users: this server keeps users in users.xml; on its host run "
            "scripts/clickhouse-server.sh users (it reads the same two variables)",
            err=True,
        )
    else:
        for line in create_users(store, writer_password, reader_password):
            typer.echo(f"users: {line}")


@app.command()
def retention(
    url: StoreUrl = DEFAULT_STORE_URL, days: RetentionDays = DEFAULT_RETENTION_DAYS
) -> None:
    """Drop decisions older than --days (whole months; servers with TTL also expire rows)."""
    with _store(url) as store:
        done = enforce_retention(store, days)
    typer.echo("\n".join(done) if done else f"nothing older than {days} days")


@app.command()
def flags(
    url: StoreUrl = DEFAULT_STORE_URL,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 50,
) -> None:
    """The numbers currently blocked or watched, newest decision first."""
    with _store(url) as store:
        rows = current_flags(store, limit=limit)
    if not rows:
        typer.echo("no number is blocked or watched")
        return
    typer.echo(render_table(rows, FLAG_COLUMNS))


@app.command()
def history(
    number: Annotated[str, typer.Argument(help="The number, in any usual format.")],
    url: StoreUrl = DEFAULT_STORE_URL,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 100,
) -> None:
    """Every decision about one number, newest first."""
    try:
        normal = normalise(number)
    except NumberError as error:
        raise _fail(f"{number!r}: {error}", 2) from None
    with _store(url) as store:
        rows = flag_history(store, normal, limit=limit)
    if not rows:
        typer.echo(f"no decisions about {normal}")
        return
    typer.echo(render_table(rows, HISTORY_COLUMNS))


def render_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Rows as aligned text columns with a header.

    >>> print(render_table([{"number": "95588", "score": 0.5}], ["number", "score"]))
    number  score
    95588   0.500
    """
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [
        max(len(column), *(len(line[index]) for line in cells))
        for index, column in enumerate(columns)
    ]
    lines = [list(columns), *cells]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list | tuple):
        return "; ".join(str(item) for item in value)
    return "" if value is None else str(value)
