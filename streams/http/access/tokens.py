"""Tokens as issued to users, and the salted hash that is all the store keeps.

A token reads ``cg_<id>_<secret>``: the id finds the one stored hash to
check, so a request costs at most one key derivation (scrypt, from the
standard library). Session cookies read ``cs_<id>_<secret>``; their secret
is random and short-lived, so a plain SHA-256 of it is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

__all__ = [
    "KdfParams",
    "SplitToken",
    "hash_secret",
    "new_token",
    "session_digest",
    "split_token",
    "verify_secret",
]

TOKEN_PREFIX = "cg"  # noqa: S105 - the text tokens start with, no secret
SESSION_PREFIX = "cs"


@dataclass(frozen=True, slots=True)
class KdfParams:
    """scrypt's cost parameters, stored with each hash so they can be raised later."""

    n: int = 2**14
    r: int = 8
    p: int = 1

    def encode(self) -> str:
        """``scrypt$n$r$p``, as stored."""
        return f"scrypt${self.n}${self.r}${self.p}"

    @classmethod
    def decode(cls, text: str) -> KdfParams:
        """The parameters written by :meth:`encode`."""
        name, n, r, p = text.split("$")
        if name != "scrypt":
            raise ValueError(f"unknown key derivation {name!r}")
        return cls(int(n), int(r), int(p))


@dataclass(frozen=True, slots=True)
class SplitToken:
    """A token's parts: its kind (``cg`` or ``cs``), id and secret."""

    kind: str
    token_id: str
    secret: str


def new_token(kind: str = TOKEN_PREFIX) -> tuple[SplitToken, str]:
    """A fresh token: its parts and the text given to the user (once)."""
    parts = SplitToken(kind, secrets.token_hex(8), secrets.token_urlsafe(32))
    return parts, f"{kind}_{parts.token_id}_{parts.secret}"


def split_token(text: str) -> SplitToken | None:
    """The parts of a token's text, or None if it is not shaped like one.

    >>> split_token("cg_0123456789abcdef_s3-cr_et")
    SplitToken(kind='cg', token_id='0123456789abcdef', secret='s3-cr_et')
    >>> split_token("Basic abc") is None
    True
    """
    kind, _, rest = text.strip().partition("_")
    token_id, _, secret = rest.partition("_")
    if kind not in (TOKEN_PREFIX, SESSION_PREFIX) or len(token_id) != 16 or not secret:
        return None
    if any(c not in "0123456789abcdef" for c in token_id) or len(secret) > 128:
        return None
    return SplitToken(kind, token_id, secret)


def hash_secret(secret: str, salt: bytes, params: KdfParams) -> bytes:
    """The stored form of a token's secret (scrypt, 32 bytes)."""
    return hashlib.scrypt(
        secret.encode(), salt=salt, n=params.n, r=params.r, p=params.p, dklen=32,
        maxmem=128 * params.r * (params.n + params.p + 2),
    )


def verify_secret(secret: str, salt: bytes, stored: bytes, params: KdfParams) -> bool:
    """Whether ``secret`` hashes to ``stored`` (constant-time comparison)."""
    return hmac.compare_digest(hash_secret(secret, salt, params), stored)


def session_digest(secret: str) -> bytes:
    """The stored form of a session's secret."""
    return hashlib.sha256(secret.encode()).digest()
