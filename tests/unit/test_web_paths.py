"""The worker's HTTP server at its edge: odd paths get a plain answer, never a traceback.

No broker: the app is built, its web server initialised as a worker's is at
start (Faust's own routes included), and requests are written by hand, since
an HTTP client would resolve ``..`` before sending.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestServer

from streams.app import CallguardApp, create_app
from streams.http.access.users import UserStore
from streams.settings import load_settings


@pytest.fixture()
def app(tmp_path: Path) -> CallguardApp:
    """A worker's app; one per test, as its web server is bound to one event loop."""
    settings = load_settings(partitions=1, store_enabled=False, data_dir=tmp_path,
                             model_dir=tmp_path / "models", users_path=tmp_path / "users.db")
    with UserStore.open(settings.users_path) as users:
        _, token = users.add("admin", "admin", actor="test")
    built = create_app(settings)
    built.test_token = token  # type: ignore[attr-defined]
    built.faust_app.web.init_server()  # Faust's routes, as at a worker's start
    return built


def get(app: CallguardApp, *targets: str) -> list[tuple[int, bytes]]:
    """Each request target (sent exactly as written): the status and the body."""

    async def ask(port: int, target: str) -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {target} HTTP/1.1\r\nHost: worker\r\nConnection: close\r\n"
                     f"Authorization: Bearer {app.test_token}\r\n\r\n".encode())
        await writer.drain()
        answer = await reader.read()
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        return int(head.split()[1]), body

    async def run() -> list[tuple[int, bytes]]:
        server = TestServer(app.faust_app.web.web_app)
        await server.start_server()
        try:
            return [await ask(server.port, target) for target in targets]
        finally:
            await server.close()

    return asyncio.run(run())


DOT_DOT = [
    "/router/../../", "/table/../../", "/router/../", "/table/flag-state/../",
    "/router/..%2f../", "/numbers/..", "/numbers/%2e%2e", "/numbers/..%2F13800138000",
    "/numbers/..13800138000", "/numbers/138..0013..8000", "/numbers/...",
    "/callers/../features", "/callers/..%2F13800138000/features", "/dashboard/..",
    "/dashboard/../status", "/dashboard/%2E%2E%2Fstatic%2Findex.html", "/..", "/../status",
    "/numbers/..%5C13800138000",
]
NOT_FOUND = "not found: a path may not contain '..'"


def test_a_path_with_dot_dot_is_not_found(
    app: CallguardApp, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        answers = get(app, *DOT_DOT)
    assert [status for status, _ in answers] == [404] * len(DOT_DOT)
    assert {orjson.loads(body)["error"] for _, body in answers} == {NOT_FOUND}
    assert not caplog.records


def test_other_paths_are_left_to_the_views(app: CallguardApp) -> None:
    dashboard, asset, dotted, empty = get(
        app, "/dashboard/app.js", "/dashboard/.js", "/numbers/138.0013.8000", "/numbers/.")
    assert dashboard[0] == 200
    assert asset == (404, orjson.dumps({"error": "no asset '.js'"}))
    assert dotted[0] == 503  # a number, owned by no worker yet
    assert empty == (400, orjson.dumps({"number": ".", "error": "empty number"}))


def test_a_number_asked_before_the_producer_starts_is_retried_not_a_crash(
    app: CallguardApp, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        ((status, body),) = get(app, "/numbers/13800138000")
    assert status == 503
    assert orjson.loads(body)["error"] == "the owning worker is not known yet; retry shortly"
    assert not caplog.records
