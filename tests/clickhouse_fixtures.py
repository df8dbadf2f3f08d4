"""Pytest fixtures for the ClickHouse flag store: the local server and chDB paths.

``tests/conftest.py`` imports these with ``from tests.clickhouse_fixtures import *``.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from clickhouse_driver import Client

__all__ = [
    "chdb_url",
    "clickhouse_database_factory",
    "clickhouse_database_url",
    "clickhouse_server",
    "clickhouse_url",
]

ROOT = Path(__file__).resolve().parent.parent
SERVER_SCRIPT = ROOT / "scripts" / "clickhouse-server.sh"
HOST = "127.0.0.1"
PORT = 9000


def _admin() -> Client:
    return Client(host=HOST, port=PORT, user="default", password="", connect_timeout=5)


@pytest.fixture(scope="session")
def clickhouse_server() -> str:
    """``host:port`` of the local ClickHouse server, installed and started if needed."""
    result = subprocess.run(  # noqa: S603 - our own script, fixed arguments
        ["bash", str(SERVER_SCRIPT), "ensure"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"{SERVER_SCRIPT.name} ensure failed:\n{result.stdout}\n{result.stderr}")
    return f"{HOST}:{PORT}"


@pytest.fixture(scope="session")
def clickhouse_database_factory(clickhouse_server: str) -> Iterator[Callable[[str], str]]:
    """Create uniquely named databases on the server; drop them all at session end."""
    created: list[str] = []

    def create(prefix: str) -> str:
        database = f"{prefix}_{uuid.uuid4().hex[:12]}"
        client = _admin()
        try:
            client.execute(f"CREATE DATABASE {database}")
        finally:
            client.disconnect()
        created.append(database)
        return f"clickhouse://default:@{clickhouse_server}/{database}"

    yield create
    client = _admin()
    try:
        for database in created:
            client.execute(f"DROP DATABASE IF EXISTS {database}")
    finally:
        client.disconnect()


@pytest.fixture(scope="session")
def clickhouse_url(clickhouse_database_factory: Callable[[str], str]) -> str:
    """A store URL on the local server with a fresh database for this test session."""
    return clickhouse_database_factory("callguard_test")


@pytest.fixture()
def clickhouse_database_url(clickhouse_database_factory: Callable[[str], str]) -> str:
    """A store URL on the local server with a fresh database for this one test."""
    return clickhouse_database_factory("callguard_test")


@pytest.fixture()
def chdb_url(tmp_path: Path) -> str:
    """A store URL for an embedded chDB store under this test's temporary directory."""
    return f"chdb://{tmp_path / 'chdb'}"
