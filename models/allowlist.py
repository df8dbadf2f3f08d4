"""The allow-list: numbers and ranges that are never flagged, stored durably, every change audited.

One SQLite file (WAL, synchronous=FULL) with two tables: ``entries`` (what is
allowed, by whom, when, why) and ``audit`` (every add and remove; append-only,
enforced by triggers). Pattern syntax: :mod:`models.allowlist_patterns`.

The worker keeps an :class:`AllowMatcher` and rebuilds it when
:meth:`AllowList.revision` moves (another process, the CLI, changed the list).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from models.allowlist_patterns import AllowMatcher, AllowPattern, PatternError, parse_pattern
from models.local_db import LocalDbError, open_local_db

__all__ = [
    "DEFAULT_ENTRIES",
    "AllowEntry",
    "AllowList",
    "AllowListError",
    "AllowMatcher",
    "AuditRecord",
    "PatternError",
]

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    pattern  TEXT PRIMARY KEY,
    kind     TEXT NOT NULL CHECK (kind IN ('exact', 'prefix')),
    added_by TEXT NOT NULL,
    added_at TEXT NOT NULL,
    why      TEXT NOT NULL CHECK (length(trim(why)) > 0)
);
CREATE TABLE IF NOT EXISTS audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    ts      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL CHECK (action IN ('add', 'remove')),
    pattern TEXT NOT NULL,
    why     TEXT NOT NULL CHECK (length(trim(why)) > 0)
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the allow-list audit is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the allow-list audit is append-only'); END;
"""

DEFAULT_ENTRIES: tuple[tuple[str, str], ...] = (
    ("955xx", "five-digit 955 customer-service lines of banks, insurers and utilities"),
    ("12345", "government service hotline"),
    ("10086", "China Mobile customer service"),
    ("10010", "China Unicom customer service"),
    ("10000", "China Telecom customer service"),
    ("110", "emergency: police"),
    ("119", "emergency: fire"),
    ("120", "emergency: ambulance"),
    ("122", "emergency: traffic accidents"),
)
"""What :meth:`AllowList.seed_defaults` adds, with the reason recorded for each."""


class AllowListError(ValueError):
    """A refused allow-list change or an unusable store; the message says why."""


@dataclass(frozen=True)
class AllowEntry:
    """One allowed number or range."""

    pattern: str
    kind: Literal["exact", "prefix"]
    added_by: str
    added_at: datetime
    why: str


@dataclass(frozen=True)
class AuditRecord:
    """One change to the allow-list."""

    id: int
    ts: datetime
    actor: str
    action: Literal["add", "remove"]
    pattern: str
    why: str


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AllowList:
    """The durable allow-list; safe to share between threads of one process."""

    def __init__(self, connection: sqlite3.Connection, path: Path,
                 clock: Callable[[], datetime]) -> None:
        self.path = path
        self._connection = connection
        self._clock = clock
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path | str, *, clock: Callable[[], datetime] = _utc_now) -> AllowList:
        """Open (creating if needed) the allow-list stored at ``path``."""
        path = Path(path)
        try:
            connection = open_local_db(path, _SCHEMA, _SCHEMA_VERSION)
        except LocalDbError as error:
            raise AllowListError(f"cannot open the allow-list at {path}: {error}") from None
        return cls(connection, path, clock)

    def close(self) -> None:
        """Close the database connection."""
        self._connection.close()

    def __enter__(self) -> AllowList:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def add(self, pattern: str, *, actor: str, why: str) -> AllowEntry:
        """Allow ``pattern`` (a number or a prefix), recording who and why."""
        parsed, actor, why = _checked(pattern, actor, why)
        entry = AllowEntry(parsed.text, parsed.kind, actor, self._now(), why)
        with self._write() as cursor:
            existing = self._entry(cursor, parsed.text)
            if existing is not None:
                raise AllowListError(
                    f"{parsed.text} is already allowed (by {existing.added_by} at "
                    f"{existing.added_at.isoformat()}: {existing.why})"
                )
            cursor.execute(
                "INSERT INTO entries (pattern, kind, added_by, added_at, why) VALUES (?,?,?,?,?)",
                (entry.pattern, entry.kind, actor, entry.added_at.isoformat(), why),
            )
            _audit(cursor, entry.added_at, actor, "add", entry.pattern, why)
        return entry

    def remove(self, pattern: str, *, actor: str, why: str) -> AllowEntry:
        """Stop allowing ``pattern``, written in any format that normalises to the entry."""
        parsed, actor, why = _checked(pattern, actor, why)
        now = self._now()
        with self._write() as cursor:
            existing = self._entry(cursor, parsed.text)
            if existing is None:
                raise AllowListError(f"{parsed.text} is not on the allow-list")
            cursor.execute("DELETE FROM entries WHERE pattern = ?", (parsed.text,))
            _audit(cursor, now, actor, "remove", parsed.text, why)
        return existing

    def seed_defaults(self, actor: str = "callguard") -> list[AllowEntry]:
        """Add :data:`DEFAULT_ENTRIES` not already present; return what was added."""
        present = {entry.pattern for entry in self.entries()}
        return [
            self.add(pattern, actor=actor, why=why)
            for pattern, why in DEFAULT_ENTRIES
            if parse_pattern(pattern).text not in present
        ]

    def entries(self) -> list[AllowEntry]:
        """Every allowed number and range, sorted by pattern."""
        rows = self._read("SELECT pattern, kind, added_by, added_at, why FROM entries "
                          "ORDER BY pattern")
        return [_entry_from_row(row) for row in rows]

    def audit_log(self) -> list[AuditRecord]:
        """Every change ever made, oldest first."""
        rows = self._read("SELECT id, ts, actor, action, pattern, why FROM audit ORDER BY id")
        return [
            AuditRecord(row[0], datetime.fromisoformat(row[1]), row[2], row[3], row[4], row[5])
            for row in rows
        ]

    def revision(self) -> int:
        """A number that grows with every change; cheap enough to poll."""
        return int(self._read("SELECT coalesce(max(id), 0) FROM audit")[0][0])

    def matcher(self) -> AllowMatcher:
        """A matcher over the current entries, stamped with the revision it reflects."""
        with self._lock:
            cursor = self._connection.cursor()
            cursor.execute("BEGIN")  # one snapshot for both reads
            try:
                revision = cursor.execute("SELECT coalesce(max(id), 0) FROM audit").fetchone()[0]
                patterns = [row[0] for row in cursor.execute("SELECT pattern FROM entries")]
            finally:
                cursor.execute("COMMIT")
        return AllowMatcher((parse_pattern(p) for p in patterns), revision=int(revision))

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cursor = self._connection.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as error:
                raise AllowListError(f"cannot change the allow-list {self.path}: {error}") from None
            try:
                yield cursor
                cursor.execute("COMMIT")
            except BaseException as error:
                if self._connection.in_transaction:
                    cursor.execute("ROLLBACK")
                if isinstance(error, sqlite3.Error):
                    raise AllowListError(f"allow-list {self.path}: {error}") from error
                raise

    def _read(self, query: str) -> list[tuple]:
        with self._lock:
            return self._connection.execute(query).fetchall()

    @staticmethod
    def _entry(cursor: sqlite3.Cursor, pattern: str) -> AllowEntry | None:
        row = cursor.execute(
            "SELECT pattern, kind, added_by, added_at, why FROM entries WHERE pattern = ?",
            (pattern,),
        ).fetchone()
        return None if row is None else _entry_from_row(row)

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise AllowListError("the allow-list clock must return timezone-aware datetimes")
        return now.astimezone(UTC)


def _checked(pattern: str, actor: str, why: str) -> tuple[AllowPattern, str, str]:
    if not actor or not actor.strip():
        raise AllowListError("say who is making the change (actor)")
    if not why or not why.strip():
        raise AllowListError("give a reason: every allow-list change is audited")
    try:
        parsed = parse_pattern(pattern)
    except PatternError as error:
        raise AllowListError(str(error)) from None
    return parsed, actor.strip(), why.strip()


def _audit(cursor: sqlite3.Cursor, ts: datetime, actor: str, action: str, pattern: str,
           why: str) -> None:
    cursor.execute(
        "INSERT INTO audit (ts, actor, action, pattern, why) VALUES (?,?,?,?,?)",
        (ts.isoformat(), actor, action, pattern, why),
    )


def _entry_from_row(row: tuple) -> AllowEntry:
    return AllowEntry(row[0], row[1], row[2], datetime.fromisoformat(row[3]), row[4])
