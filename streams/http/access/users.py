"""The user database: who may sign in, with which role, and their sessions.

One SQLite file (``CALLGUARD_USERS_PATH``; WAL, as the allow-list's), shared
by every worker and the ``callguard users`` command. Tables:

``users``
    name, role, the token's id and its salted scrypt hash, who created it and
    when, and when it was revoked (a revoked user signs in no more).
``sessions``
    people's browser sessions: the SHA-256 of the cookie's secret, the CSRF
    token, the expiry. Revoking a user ends their sessions.
``changes``
    append-only: every add, revoke and logout. Its largest id is the
    revision that workers poll to drop cached credentials.
"""

from __future__ import annotations

import hmac
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from models.local_db import LocalDbError, open_local_db
from streams.http.access.roles import Role
from streams.http.access.tokens import (
    SESSION_PREFIX,
    KdfParams,
    SplitToken,
    hash_secret,
    new_token,
    session_digest,
)

__all__ = ["Session", "StoredToken", "User", "UserError", "UserStore"]

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL,
    token_id   TEXT NOT NULL UNIQUE,
    salt       BLOB NOT NULL,
    token_hash BLOB NOT NULL,
    kdf        TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS sessions (
    session_id  TEXT PRIMARY KEY,
    digest      BLOB NOT NULL,
    name        TEXT NOT NULL REFERENCES users (name),
    csrf        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    ts     TEXT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('add', 'revoke', 'logout')),
    name   TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS changes_no_update BEFORE UPDATE ON changes
BEGIN SELECT RAISE(ABORT, 'the user changes are append-only'); END;
CREATE TRIGGER IF NOT EXISTS changes_no_delete BEFORE DELETE ON changes
BEGIN SELECT RAISE(ABORT, 'the user changes are append-only'); END;
"""
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


class UserError(ValueError):
    """A refused change to the users or an unusable database; the message says why."""


@dataclass(frozen=True, slots=True)
class User:
    """One user as listed (never with a token)."""

    name: str
    role: Role
    created_by: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        """Whether the user may still sign in."""
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class StoredToken:
    """What a token is checked against: its user's name and role, salt and hash."""

    name: str
    role: Role
    salt: bytes
    token_hash: bytes
    kdf: KdfParams


@dataclass(frozen=True, slots=True)
class Session:
    """A live browser session."""

    name: str
    role: Role
    csrf: str
    expires_at: datetime


def _utc_now() -> datetime:
    return datetime.now(UTC)


class UserStore:
    """The durable users and sessions; safe to share between threads of one process."""

    def __init__(self, connection: sqlite3.Connection, path: Path,
                 clock: Callable[[], datetime]) -> None:
        self.path = path
        self._connection = connection
        self._clock = clock
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path | str, *, clock: Callable[[], datetime] = _utc_now) -> UserStore:
        """Open (creating if needed, readable by its owner only) the users at ``path``."""
        path = Path(path)
        try:
            connection = open_local_db(path, _SCHEMA, _SCHEMA_VERSION, private=True)
        except LocalDbError as error:
            raise UserError(f"cannot open the users at {path}: {error}") from None
        return cls(connection, path, clock)

    def close(self) -> None:
        """Close the database connection."""
        self._connection.close()

    def __enter__(self) -> UserStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def add(self, name: str, role: Role | str, *, actor: str) -> tuple[User, str]:
        """Create ``name`` with ``role``; the user and their token (shown once, never stored).

        A revoked name may be added again: it gets a new token.
        """
        name = _checked_name(name)
        try:
            role = Role(role)
        except ValueError:
            raise UserError(
                f"role {role!r}: use one of {', '.join(r.value for r in Role)}"
            ) from None
        parts, text = new_token()
        salt, kdf = os.urandom(16), KdfParams()
        digest = hash_secret(parts.secret, salt, kdf)
        now = self._now()
        with self._write() as cursor:
            existing = cursor.execute(
                "SELECT revoked_at FROM users WHERE name = ?", (name,)
            ).fetchone()
            if existing is not None and existing[0] is None:
                raise UserError(f"{name} exists; revoke it first to issue a new token")
            cursor.execute("DELETE FROM sessions WHERE name = ?", (name,))
            cursor.execute(
                "INSERT OR REPLACE INTO users (name, role, token_id, salt, token_hash, kdf, "
                "created_by, created_at, revoked_at) VALUES (?,?,?,?,?,?,?,?,NULL)",
                (name, role.value, parts.token_id, salt, digest, kdf.encode(), actor,
                 now.isoformat()),
            )
            _change(cursor, now, actor, "add", name)
        return User(name, role, actor, now, None), text

    def revoke(self, name: str, *, actor: str) -> User:
        """Revoke ``name``'s token and end their sessions."""
        now = self._now()
        with self._write() as cursor:
            row = cursor.execute(
                "SELECT revoked_at FROM users WHERE name = ?", (name,)
            ).fetchone()
            if row is None or row[0] is not None:
                raise UserError(f"{name} is not an active user")
            cursor.execute("UPDATE users SET revoked_at = ? WHERE name = ?",
                           (now.isoformat(), name))
            cursor.execute("DELETE FROM sessions WHERE name = ?", (name,))
            _change(cursor, now, actor, "revoke", name)
        return next(user for user in self.users() if user.name == name)

    def users(self) -> list[User]:
        """Every user, active or revoked, by name."""
        rows = self._read("SELECT name, role, created_by, created_at, revoked_at FROM users "
                          "ORDER BY name")
        return [
            User(row[0], Role(row[1]), row[2], datetime.fromisoformat(row[3]),
                 datetime.fromisoformat(row[4]) if row[4] else None)
            for row in rows
        ]

    def token(self, token_id: str) -> StoredToken | None:
        """The active user's hash behind ``token_id``, or None."""
        rows = self._read(
            "SELECT name, role, salt, token_hash, kdf FROM users "
            "WHERE token_id = ? AND revoked_at IS NULL", (token_id,),
        )
        if not rows:
            return None
        name, role, salt, digest, kdf = rows[0]
        return StoredToken(name, Role(role), bytes(salt), bytes(digest), KdfParams.decode(kdf))

    def open_session(self, name: str, ttl: timedelta) -> tuple[str, Session]:
        """A new session for the active user ``name``: the cookie's text and the session."""
        parts, text = new_token(SESSION_PREFIX)
        csrf = new_token(SESSION_PREFIX)[0].secret
        now = self._now()
        with self._write() as cursor:
            row = cursor.execute(
                "SELECT role FROM users WHERE name = ? AND revoked_at IS NULL", (name,)
            ).fetchone()
            if row is None:
                raise UserError(f"{name} is not an active user")
            cursor.execute("DELETE FROM sessions WHERE expires_at < ?", (now.isoformat(),))
            cursor.execute(
                "INSERT INTO sessions (session_id, digest, name, csrf, created_at, expires_at) "
                "VALUES (?,?,?,?,?,?)",
                (parts.token_id, session_digest(parts.secret), name, csrf, now.isoformat(),
                 (now + ttl).isoformat()),
            )
        return text, Session(name, Role(row[0]), csrf, now + ttl)

    def session(self, parts: SplitToken) -> Session | None:
        """The live session a cookie's parts name, or None (unknown, expired, revoked)."""
        rows = self._read(
            "SELECT s.digest, s.name, u.role, s.csrf, s.expires_at FROM sessions s "
            "JOIN users u ON u.name = s.name AND u.revoked_at IS NULL "
            "WHERE s.session_id = ?", (parts.token_id,),
        )
        if not rows:
            return None
        digest, name, role, csrf, expires = rows[0]
        expires_at = datetime.fromisoformat(expires)
        if not hmac.compare_digest(bytes(digest), session_digest(parts.secret)):
            return None
        if expires_at <= self._now():
            return None
        return Session(name, Role(role), csrf, expires_at)

    def close_session(self, parts: SplitToken, name: str) -> None:
        """End one session (logout)."""
        now = self._now()
        with self._write() as cursor:
            cursor.execute("DELETE FROM sessions WHERE session_id = ?", (parts.token_id,))
            _change(cursor, now, name, "logout", name)

    def revision(self) -> int:
        """A number that grows with every change; cheap enough to poll."""
        return int(self._read("SELECT coalesce(max(id), 0) FROM changes")[0][0])

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cursor = self._connection.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as error:
                raise UserError(f"cannot change the users {self.path}: {error}") from None
            try:
                yield cursor
                cursor.execute("COMMIT")
            except BaseException as error:
                if self._connection.in_transaction:
                    cursor.execute("ROLLBACK")
                if isinstance(error, sqlite3.Error):
                    raise UserError(f"users {self.path}: {error}") from error
                raise

    def _read(self, query: str, parameters: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._connection.execute(query, parameters).fetchall()

    def _now(self) -> datetime:
        return self._clock().astimezone(UTC)


def _checked_name(name: str) -> str:
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise UserError(
            f"{name!r}: a user name is 1-64 lower-case letters, digits, '.', '_' or '-'"
        )
    return name


def _change(cursor: sqlite3.Cursor, ts: datetime, actor: str, action: str, name: str) -> None:
    cursor.execute("INSERT INTO changes (ts, actor, action, name) VALUES (?,?,?,?)",
                   (ts.isoformat(), actor, action, name))
