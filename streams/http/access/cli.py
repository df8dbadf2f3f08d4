"""``callguard users add | list | revoke``: who may use the worker's HTTP server.

Mount with ``cli.add_typer(users_app, name="users")``. A new user's token is
printed once; the database keeps only its salted hash.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from streams.http.access.roles import Role
from streams.http.access.users import UserError, UserStore

__all__ = ["users_app"]

users_app = typer.Typer(
    name="users", help="Users of the dashboard and HTTP API, and their tokens.",
    no_args_is_help=True,
)

UsersPath = Annotated[
    Path,
    typer.Option("--users", envvar="CALLGUARD_USERS_PATH", help="The users' SQLite file."),
]
DEFAULT_USERS = Path("var/callguard/users.sqlite")


@contextmanager
def _users(path: Path, command: str) -> Iterator[UserStore]:
    try:
        with UserStore.open(path) as store:
            yield store
    except UserError as error:
        typer.echo(f"callguard users {command}: {error}", err=True)
        raise typer.Exit(2) from None


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="The user's name (lower case), e.g. li.")],
    role: Annotated[Role, typer.Option("--role", help="viewer, operator, admin or service.")],
    users: UsersPath = DEFAULT_USERS,
) -> None:
    """Create NAME with a role; print their token (shown this once only)."""
    with _users(users, "add") as store:
        user, token = store.add(name, role, actor=_actor())
    typer.echo(f"added {user.name} ({user.role}); their token, shown only now:")
    typer.echo(token)


@users_app.command("list")
def users_list(users: UsersPath = DEFAULT_USERS) -> None:
    """Every user, their role and whether they are revoked."""
    with _users(users, "list") as store:
        rows = store.users()
    if not rows:
        typer.echo(f"no users in {users}; add one with: callguard users add NAME --role admin")
        return
    typer.echo(f"{'NAME':<20} {'ROLE':<9} {'CREATED':<20} {'BY':<16} REVOKED")
    for user in rows:
        revoked = user.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if user.revoked_at else ""
        typer.echo(f"{user.name:<20} {user.role.value:<9} "
                   f"{user.created_at.strftime('%Y-%m-%d %H:%M:%S'):<20} "
                   f"{user.created_by:<16} {revoked}")


@users_app.command("revoke")
def users_revoke(
    name: Annotated[str, typer.Argument(help="The user to revoke.")],
    users: UsersPath = DEFAULT_USERS,
) -> None:
    """Revoke NAME's token and sessions; workers refuse it within seconds."""
    with _users(users, "revoke") as store:
        store.revoke(name, actor=_actor())
    typer.echo(f"revoked {name}")
