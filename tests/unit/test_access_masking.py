"""Viewers see numbers masked, in the JSON the server sends; every number lookup is audited.

No broker: the app's web server runs on an embedded (chdb) store with one
flag in it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from sinks.clickhouse import Action, FlagDecision, insert_decisions, migrate
from sinks.clickhouse.lookups import insert_lookups, lookups_of
from streams.app import CallguardApp, create_app
from streams.http.access.masking import masked
from streams.http.access.roles import Role
from streams.http.access.users import UserStore
from streams.settings import load_settings

NUMBER = "+8613800138000"
MASKED = "+86 138****8000"


def test_every_e164_string_in_a_payload_is_masked() -> None:
    payload = {"number": NUMBER, "flags": [{"number": "+8613900139000", "reasons": ["x"]}],
               "clusters": [{"key": "+861380013", "numbers": [NUMBER], "size": 1}],
               "service": "95588", "score": 0.9, "when": None}
    assert masked(payload) == {
        "number": MASKED, "flags": [{"number": "+86 139****9000", "reasons": ["x"]}],
        "clusters": [{"key": "+86 138****", "numbers": [MASKED], "size": 1}],
        "service": "95588", "score": 0.9, "when": None,
    }


@pytest.fixture()
def app(tmp_path: Path) -> CallguardApp:
    settings = load_settings(partitions=1, data_dir=tmp_path, model_dir=tmp_path / "models",
                             users_path=tmp_path / "users.db",
                             store_url=f"chdb://{tmp_path / 'chdb'}")
    built = create_app(settings)
    now = datetime.now(UTC).replace(microsecond=0)
    flag = FlagDecision(NUMBER, Action.BLOCK, "fraud", 0.97, now - timedelta(minutes=10),
                        now, now, now + timedelta(days=1), "test-model", "worker:test",
                        reasons=("many short calls",))
    built.writer.run(migrate)
    built.writer.run(lambda store: insert_decisions(store, [flag]))
    yield built
    built.close_store(5.0)


def test_viewers_get_numbers_masked_and_lookups_are_audited(app: CallguardApp) -> None:
    with UserStore.open(app.settings.users_path) as users:
        tokens = {role: users.add(f"user-{role}", role, actor="test")[1]
                  for role in (Role.VIEWER, Role.OPERATOR)}

    async def talk() -> dict[str, Any]:
        server = TestServer(app.faust_app.web.web_app)
        await server.start_server()
        seen: dict[str, Any] = {}
        try:
            async with ClientSession() as client:
                for role, token in tokens.items():
                    headers = {"Authorization": f"Bearer {token}"}
                    base = f"http://127.0.0.1:{server.port}"
                    async with client.get(f"{base}/api/flags", headers=headers) as flags:
                        seen[f"flags-{role}"] = await flags.json()
                    async with client.get(f"{base}/api/number?q=138 0013 8000",
                                          headers=headers) as detail:
                        seen[f"number-{role}"] = await detail.json()
        finally:
            await server.close()
        return seen

    seen = asyncio.run(talk())
    viewer, operator = seen["number-viewer"], seen["number-operator"]
    assert [row["number"] for row in seen["flags-viewer"]["flags"]] == [MASKED]
    assert [row["number"] for row in seen["flags-operator"]["flags"]] == [NUMBER]
    assert (viewer["number"], viewer["query"], viewer["flagged"]) == (MASKED, MASKED, True)
    assert {row["number"] for row in viewer["history"]} == {MASKED}
    assert (operator["number"], operator["query"]) == (NUMBER, "138 0013 8000")
    assert NUMBER not in str(seen["flags-viewer"]) + str(viewer)

    pending = app.access.lookups.take()  # what the timer would write
    app.writer.run(lambda store: insert_lookups(store, pending))
    audited = app.writer.run(lambda store: lookups_of(store, NUMBER))
    assert sorted((row["user_name"], row["role"], row["route"]) for row in audited) == [
        ("user-operator", "operator", "/api/number"), ("user-viewer", "viewer", "/api/number")]
