"""Pytest fixtures for the ClickHouse flag store: the local server and chDB paths.

``tests/conftest.py`` imports these with ``from tests.clickhouse_fixtures import *``.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from clickhouse_driver import Client

__all__ = [
    "PrivateServer",
    "chdb_url",
    "clickhouse_database_factory",
    "clickhouse_database_url",
    "clickhouse_private_server",
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


@dataclass
class PrivateServer:
    """A second ClickHouse server, this test's own: stopping it disturbs nobody.

    Same binary and config as the shared one, run by ``clickhouse-server.sh``
    with ``CLICKHOUSE_INSTANCE``: its own port, data directory and pid file.
    """

    instance: str
    port: int
    databases: list[str] = field(default_factory=list)

    def script(self, command: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "CLICKHOUSE_INSTANCE": self.instance,
            "CLICKHOUSE_PORT": str(self.port),
        }
        result = subprocess.run(  # noqa: S603 - our own script, fixed arguments
            ["bash", str(SERVER_SCRIPT), command],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            env=env,
        )
        if result.returncode != 0:
            raise AssertionError(
                f"clickhouse-server.sh {command} ({self.instance}) failed:\n{result.stderr}"
            )
        return result

    def ensure(self) -> None:
        """Start the server (install if needed) and wait until it answers."""
        self.script("ensure")

    def stop(self) -> None:
        """Stop the server and wait until its process is gone."""
        self.script("stop")

    def database_url(self, prefix: str) -> str:
        """A store URL on this server with a fresh database."""
        database = f"{prefix}_{uuid.uuid4().hex[:12]}"
        client = Client(host=HOST, port=self.port, user="default", password="", connect_timeout=5)
        try:
            client.execute(f"CREATE DATABASE {database}")
        finally:
            client.disconnect()
        self.databases.append(database)
        return f"clickhouse://default:@{HOST}:{self.port}/{database}"


def _free_port_triple() -> int:
    """A port whose next two are free too (native, HTTP, interserver).

    Drawn below the kernel's ephemeral range (``ip_local_port_range``, 32768 and
    up on Linux): a test stops this server and starts it again on the same
    ports, and in between any outgoing connection could be given one of them
    as its local port; the restarted server then failed with "Address already
    in use" and never answered.
    """
    low, high = _ephemeral_range()
    candidates = [p for p in range(10_000, 65_533, 3) if p + 2 < low or p > high]
    for base in random.sample(candidates, 200):
        if all(_is_free(base + offset) for offset in (0, 1, 2)):
            return base
    raise RuntimeError("no three consecutive free ports outside the ephemeral range")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


@pytest.fixture()
def clickhouse_private_server() -> Iterator[PrivateServer]:
    """A private ClickHouse server this test may stop and start; removed afterwards."""
    port = _free_port_triple()
    # Named by port: two test sessions at once get two servers and two data directories.
    server = PrivateServer(instance=f"cgtest-{port}", port=port)
    server.ensure()
    try:
        yield server
    finally:
        server.ensure()  # the test may have left it stopped
        client = Client(host=HOST, port=server.port, user="default", password="")
        try:
            for database in server.databases:
                client.execute(f"DROP DATABASE IF EXISTS {database}")
        finally:
            client.disconnect()
        server.stop()
        server.script("purge")
