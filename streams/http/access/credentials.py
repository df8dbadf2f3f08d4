"""Who is asking: a Bearer token or a session cookie checked against the users, cached.

A token costs one scrypt (about 30 ms, off the event loop) the first time it
is seen; then it is remembered for ``cache_s``, keyed by its SHA-256, so the
dashboard's polling does not pay it again. Every ``recheck_s`` a request
reads the users' revision (one indexed SQLite read, off the loop); when
anything changed (a revocation, a logout) the cache is dropped, so a revoked
token stops working within about ``recheck_s``.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from streams.http.access.roles import SEES_NUMBERS, Role
from streams.http.access.tokens import SESSION_PREFIX, TOKEN_PREFIX, split_token, verify_secret
from streams.http.access.users import Session, UserStore

__all__ = ["Credentials", "Principal"]

T = TypeVar("T")
MAX_CACHED = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    """The user a request comes from, and how it was authenticated."""

    name: str
    role: Role
    # A session's CSRF token (cookie-authenticated requests must echo it); None for Bearer.
    csrf: str | None = None
    expires_at: datetime | None = None

    @property
    def actor(self) -> str:
        """How audit rows name this user."""
        return f"op:{self.name}"

    @property
    def sees_numbers(self) -> bool:
        """Whether numbers are shown to this user in clear (else masked)."""
        return self.role in SEES_NUMBERS


class Credentials:
    """Checks tokens and sessions against a :class:`UserStore`, with a short cache."""

    def __init__(self, users_path: Path, *, cache_s: float = 60.0, recheck_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.users_path = users_path
        self.cache_s = cache_s
        self.recheck_s = recheck_s
        self.kdf_calls = 0  # key derivations run: for tests and the curious
        self._clock = clock
        self._cache: dict[bytes, tuple[Principal, float]] = {}
        self._revision: int | None = None
        self._checked_at = float("-inf")
        self._users: UserStore | None = None
        self._opening = threading.Lock()

    @property
    def users(self) -> UserStore:
        """The user database, opened on first use (from an executor thread: it is I/O)."""
        with self._opening:
            if self._users is None:
                self._users = UserStore.open(self.users_path)
            return self._users

    async def bearer(self, token: str) -> Principal | None:
        """The user a ``cg_`` token belongs to, or None."""
        return await self._cached(token, TOKEN_PREFIX, self._check_token)

    async def session(self, cookie: str) -> Principal | None:
        """The user a session cookie belongs to, or None."""
        return await self._cached(cookie, SESSION_PREFIX, self._check_session)

    async def sign_in(self, name: str, token: str) -> Principal | None:
        """The user, if ``token`` is ``name``'s (the login form; never cached)."""
        principal = await self._off_loop(self._check_token, token)
        return principal if principal is not None and principal.name == name else None

    async def open_session(self, principal: Principal, ttl: timedelta) -> tuple[str, Principal]:
        """A new session for ``principal``: the cookie's text and the session's principal."""
        cookie, session = await self._off_loop(
            lambda: self.users.open_session(principal.name, ttl))
        return cookie, _session_principal(session)

    async def close_session(self, cookie: str, name: str) -> None:
        """End the session ``cookie`` names (logout); the cache forgets it at once."""
        parts = split_token(cookie)
        if parts is not None and parts.kind == SESSION_PREFIX:
            await self._off_loop(lambda: self.users.close_session(parts, name))
        self._cache.pop(_key(cookie), None)

    async def active_users(self) -> int:
        """How many users may sign in."""
        users = await self._off_loop(lambda: self.users.users())
        return sum(user.active for user in users)

    async def _cached(self, text: str, kind: str, check: Callable[[str], Principal | None]
                      ) -> Principal | None:
        parts = split_token(text)
        if parts is None or parts.kind != kind:
            return None
        await self._drop_if_changed()
        key, now = _key(text), self._clock()
        hit = self._cache.get(key)
        if hit is not None and now - hit[1] < self.cache_s and _alive(hit[0]):
            return hit[0]
        principal = await self._off_loop(check, text)
        if principal is not None:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[key] = (principal, now)
        return principal

    async def _drop_if_changed(self) -> None:
        now = self._clock()
        if now - self._checked_at < self.recheck_s:
            return
        self._checked_at = now
        revision = await self._off_loop(lambda: self.users.revision())
        if revision != self._revision:
            self._cache.clear()
            self._revision = revision

    def _check_token(self, token: str) -> Principal | None:
        parts = split_token(token)
        if parts is None or parts.kind != TOKEN_PREFIX:
            return None
        stored = self.users.token(parts.token_id)
        if stored is None:
            return None  # no key derivation for an unknown id
        self.kdf_calls += 1
        if not verify_secret(parts.secret, stored.salt, stored.token_hash, stored.kdf):
            return None
        return Principal(stored.name, stored.role)

    def _check_session(self, cookie: str) -> Principal | None:
        parts = split_token(cookie)
        session = self.users.session(parts) if parts is not None else None
        return _session_principal(session) if session is not None else None

    @staticmethod
    async def _off_loop(work: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, work, *args)


def _session_principal(session: Session) -> Principal:
    return Principal(session.name, session.role, session.csrf, session.expires_at)


def _key(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def _alive(principal: Principal) -> bool:
    return principal.expires_at is None or principal.expires_at > datetime.now(UTC)
