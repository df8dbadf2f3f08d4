"""Users and tokens: a token is shown once, stored only as a salted scrypt hash, revocable."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streams.http.access.cli import users_app
from streams.http.access.roles import Role
from streams.http.access.tokens import KdfParams, split_token, verify_secret
from streams.http.access.users import UserError, UserStore


@pytest.fixture()
def store(tmp_path: Path) -> UserStore:
    opened = UserStore.open(tmp_path / "users.sqlite")
    yield opened
    opened.close()


def test_a_token_is_stored_only_as_a_salted_scrypt_hash(store: UserStore) -> None:
    _, token = store.add("li", "operator", actor="test")
    _, other = store.add("wang", "operator", actor="test")
    parts = split_token(token)
    assert parts is not None and parts.kind == "cg"
    stored = store.token(parts.token_id)
    assert stored is not None and (stored.name, stored.role) == ("li", Role.OPERATOR)
    assert stored.kdf == KdfParams() and stored.kdf.encode().startswith("scrypt$")
    assert verify_secret(parts.secret, stored.salt, stored.token_hash, stored.kdf)
    assert not verify_secret(parts.secret + "x", stored.salt, stored.token_hash, stored.kdf)
    other_stored = store.token(split_token(other).token_id)
    assert other_stored.salt != stored.salt
    raw = store.path.read_bytes() + Path(f"{store.path}-wal").read_bytes()
    assert parts.secret.encode() not in raw and token.encode() not in raw


def test_revoking_refuses_the_token_and_ends_sessions(store: UserStore) -> None:
    _, token = store.add("li", Role.VIEWER, actor="test")
    cookie, session = store.open_session("li", timedelta(hours=1))
    assert store.session(split_token(cookie)) == session
    before = store.revision()
    store.revoke("li", actor="test")
    assert store.revision() > before
    assert store.token(split_token(token).token_id) is None
    assert store.session(split_token(cookie)) is None
    assert not store.users()[0].active
    with pytest.raises(UserError, match="not an active user"):
        store.revoke("li", actor="test")
    _, again = store.add("li", Role.VIEWER, actor="test")  # a new token for the name
    assert split_token(again).token_id != split_token(token).token_id
    assert store.token(split_token(again).token_id) is not None


def test_refusals(store: UserStore) -> None:
    store.add("li", Role.ADMIN, actor="test")
    with pytest.raises(UserError, match="exists"):
        store.add("li", Role.ADMIN, actor="test")
    with pytest.raises(UserError, match="role"):
        store.add("wang", "root", actor="test")
    with pytest.raises(UserError, match="user name"):
        store.add("Li Wei", Role.ADMIN, actor="test")


def test_a_session_checks_its_secret_and_expiry(store: UserStore) -> None:
    store.add("li", Role.OPERATOR, actor="test")
    cookie, _ = store.open_session("li", timedelta(hours=1))
    parts = split_token(cookie)
    # Another first character: the last one of an unpadded base64 secret carries
    # padding bits too, and "A" may already be there (one token in 16).
    other = "B" if parts.secret[0] == "A" else "A"
    forged = parts.__class__(parts.kind, parts.token_id, other + parts.secret[1:])
    assert store.session(forged) is None
    expired, _ = store.open_session("li", timedelta(seconds=-1))
    assert store.session(split_token(expired)) is None
    store.close_session(parts, "li")
    assert store.session(parts) is None


def test_the_command_prints_the_token_once(tmp_path: Path) -> None:
    runner, path = CliRunner(), str(tmp_path / "users.sqlite")
    added = runner.invoke(users_app, ["add", "li", "--role", "service", "--users", path])
    assert added.exit_code == 0, added.output
    token = added.output.splitlines()[-1]
    assert split_token(token) is not None
    listed = runner.invoke(users_app, ["list", "--users", path])
    assert "li" in listed.output and "service" in listed.output and token not in listed.output
    assert runner.invoke(users_app, ["revoke", "li", "--users", path]).exit_code == 0
    again = runner.invoke(users_app, ["revoke", "li", "--users", path])
    assert again.exit_code == 2 and "not an active user" in again.output
