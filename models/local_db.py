"""The small SQLite files callguard keeps beside the worker: allow-list, users.

One way to open them: created if missing (``private``: readable by its owner
only), write-ahead log and full sync (several workers and the CLI share a
file), schema applied idempotently and its version checked, so an older
callguard refuses a file a newer one wrote.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

__all__ = ["LocalDbError", "open_local_db"]


class LocalDbError(RuntimeError):
    """The file cannot be opened as this callguard's database; the message says why."""


def open_local_db(path: Path, schema: str, version: int, *, private: bool = False
                  ) -> sqlite3.Connection:
    """A connection to ``path`` with ``schema`` applied (at schema ``version``)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if private and not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        connection = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=10.0
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        found = connection.execute("PRAGMA user_version").fetchone()[0]
        if found > version:
            connection.close()
            raise LocalDbError(f"{path} has schema {found}, newer than this callguard ({version})")
        connection.executescript(schema)
        connection.execute(f"PRAGMA user_version={version}")
    except (OSError, sqlite3.Error) as error:
        raise LocalDbError(str(error)) from None
    return connection
