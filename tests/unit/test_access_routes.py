"""Every route of the worker's HTTP server has an access rule, and the rules hold.

No broker: the app is built and its web server initialised as at a worker's
start (Faust's own routes included), then served by aiohttp's test server.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, CookieJar
from aiohttp.test_utils import TestServer

from streams.app import CallguardApp, create_app
from streams.http.access.middleware import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from streams.http.access.roles import RULES, Need, Role, rule_for
from streams.http.access.users import UserStore
from streams.settings import load_settings

NUMBER = "13800138000"


@pytest.fixture()
def app(tmp_path: Path) -> CallguardApp:
    """A worker's app; one per test, as its web server is bound to one event loop."""
    settings = load_settings(partitions=1, store_enabled=False, data_dir=tmp_path,
                             model_dir=tmp_path / "models", users_path=tmp_path / "users.db",
                             allowlist_path=tmp_path / "allow.sqlite", login_max_failures=3)
    built = create_app(settings)
    built.faust_app.web.init_server()  # Faust's routes, as at a worker's start
    return built


@pytest.fixture()
def tokens(app: CallguardApp) -> dict[Role, str]:
    """One user and token per role."""
    with UserStore.open(app.settings.users_path) as users:
        return {role: users.add(f"user-{role}", role, actor="test")[1] for role in Role}


def serve(app: CallguardApp, talk: Callable[[ClientSession, str], Awaitable[Any]]) -> Any:
    """Run ``talk(client, base_url)`` against the app's web server."""

    async def run() -> Any:
        server = TestServer(app.faust_app.web.web_app)
        await server.start_server()
        try:
            async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as client:
                return await talk(client, f"http://127.0.0.1:{server.port}")
        finally:
            await server.close()

    return asyncio.run(run())


def routes(app: CallguardApp) -> list[tuple[str, str]]:
    """(method, route pattern) of every registered route."""
    return sorted({
        (route.method, route.resource.canonical)
        for route in app.faust_app.web.web_app.router.routes()
        if route.resource is not None
    })


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_every_route_has_a_rule_and_every_rule_a_route(app: CallguardApp) -> None:
    registered = routes(app)
    missing = [f"{method} {path}" for method, path in registered if rule_for(method, path) is None]
    assert not missing, f"routes without an access rule in streams/http/access/roles.py: {missing}"
    served = {("GET" if method == "HEAD" else method, path) for method, path in registered}
    assert set(RULES) <= served, f"rules for routes that do not exist: {set(RULES) - served}"


def test_walk_the_route_table(app: CallguardApp, tokens: dict[Role, str]) -> None:
    """Without a credential 401, with a role the rule does not admit 403, else neither."""

    async def walk(client: ClientSession, base: str) -> list[str]:
        wrong: list[str] = []
        for method, path in routes(app):
            need = rule_for(method, path)
            url = base + re.sub(r"\{\w+\}", NUMBER, path)
            ask = lambda headers, method=method, url=url: client.request(  # noqa: E731
                method, url, headers=headers, json={} if method == "POST" else None,
                allow_redirects=False)
            async with ask({}) as answer:  # the guard's 401 carries WWW-Authenticate
                refused = answer.status == 401 and "WWW-Authenticate" in answer.headers
                if (need is Need.PUBLIC) == refused:
                    wrong.append(f"{method} {path} without credential: {answer.status}")
            if need is Need.PUBLIC:
                continue
            for role, token in tokens.items():
                async with ask(bearer(token)) as answer:
                    expected = need.allows(role)
                    if expected != (answer.status not in (401, 403)):
                        wrong.append(f"{method} {path} as {role}: {answer.status}")
        return wrong

    assert serve(app, walk) == []


def test_a_request_without_a_rule_is_refused(app: CallguardApp, tokens: dict[Role, str]) -> None:
    @app.faust_app.page("/api/unruled")
    async def unruled(web: Any, request: Any) -> Any:
        return web.json({"secret": True})

    async def ask(client: ClientSession, base: str) -> tuple[int, int]:
        async with client.get(f"{base}/api/unruled") as anonymous, client.get(
            f"{base}/api/unruled", headers=bearer(tokens[Role.ADMIN])
        ) as admin:
            return anonymous.status, admin.status

    assert serve(app, ask) == (401, 403)


def test_browsers_are_sent_to_the_login_page(app: CallguardApp) -> None:
    async def ask(client: ClientSession, base: str) -> tuple[int, str]:
        async with client.get(f"{base}/dashboard?q=1", headers={"Accept": "text/html"},
                              allow_redirects=False) as answer:
            return answer.status, answer.headers["Location"]

    assert serve(app, ask) == (303, "/login?next=%2Fdashboard%3Fq%3D1")


def test_a_token_costs_one_key_derivation_and_revocation_holds_within_seconds(
    app: CallguardApp, tokens: dict[Role, str]
) -> None:
    credentials = app.access.credentials
    credentials.recheck_s = 0.2

    async def talk(client: ClientSession, base: str) -> list[int]:
        statuses = []
        for _ in range(10):
            async with client.get(f"{base}/api/health", headers=bearer(tokens[Role.VIEWER])) as r:
                statuses.append(r.status)
        with UserStore.open(app.settings.users_path) as users:
            users.revoke(f"user-{Role.VIEWER}", actor="test")
        await asyncio.sleep(0.3)
        async with client.get(f"{base}/api/health", headers=bearer(tokens[Role.VIEWER])) as r:
            statuses.append(r.status)
        return statuses

    assert serve(app, talk) == [200] * 10 + [401]
    assert credentials.kdf_calls == 1


def test_sign_in_then_csrf_guards_what_the_cookie_may_change(
    app: CallguardApp, tokens: dict[Role, str]
) -> None:
    async def talk(client: ClientSession, base: str) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with client.get(f"{base}/login") as page:
            seen["page"] = page.status, "<form" in await page.text()
        async with client.post(f"{base}/login", allow_redirects=False, data={
            "name": "user-operator", "token": tokens[Role.OPERATOR], "next": "/api/me",
        }) as signed_in:
            seen["sign_in"] = signed_in.status, signed_in.headers["Location"]
            cookie = signed_in.cookies[SESSION_COOKIE]
            seen["cookie"] = (cookie["httponly"], cookie["samesite"], cookie["path"])
            csrf = signed_in.cookies[CSRF_COOKIE].value
        async with client.get(f"{base}/api/me") as me:
            seen["me"] = await me.json()
        allow = {"pattern": "13800138000", "reason": "test"}
        async with client.post(f"{base}/api/allow", json=allow) as no_csrf:
            seen["no_csrf"] = no_csrf.status
        async with client.post(f"{base}/api/allow", json=allow,
                               headers={CSRF_HEADER: "forgé"}) as forged:
            seen["forged"] = forged.status
        async with client.post(f"{base}/api/allow", json=allow,
                               headers={CSRF_HEADER: csrf}) as good:
            seen["with_csrf"] = good.status, (await good.json()).get("actor")
        async with client.post(f"{base}/logout", headers={CSRF_HEADER: csrf}) as out:
            seen["logout"] = out.status
        async with client.get(f"{base}/api/me") as after:
            seen["after_logout"] = after.status
        return seen

    seen = serve(app, talk)
    assert seen["page"] == (200, True)
    assert seen["sign_in"] == (303, "/api/me")
    assert seen["cookie"] == (True, "Strict", "/")
    assert seen["me"] == {"name": "user-operator", "role": "operator", "sees_numbers": True,
                          "session": True}
    assert (seen["no_csrf"], seen["forged"]) == (403, 403)
    assert seen["with_csrf"] == (200, "op:user-operator")
    assert (seen["logout"], seen["after_logout"]) == (200, 401)


def test_failed_sign_ins_are_limited_and_logged(
    app: CallguardApp, tokens: dict[Role, str], caplog: pytest.LogCaptureFixture
) -> None:
    async def talk(client: ClientSession, base: str) -> list[int]:
        statuses = []
        for token in ["cg_0123456789abcdef_nope", "wrong", "wrong", "wrong",
                      tokens[Role.OPERATOR]]:
            async with client.post(f"{base}/login", allow_redirects=False, data={
                "name": "user-operator", "token": token}) as answer:
                statuses.append(answer.status)
        return statuses

    assert serve(app, talk) == [401, 401, 401, 429, 429]
    failed = [r for r in caplog.records if "failed sign-in as 'user-operator'" in r.getMessage()]
    assert len(failed) == 3 and "127.0.0.1" in failed[0].getMessage()


def test_wrong_bearer_tokens_are_limited_per_address_before_any_key_derivation(
    app: CallguardApp, tokens: dict[Role, str], caplog: pytest.LogCaptureFixture
) -> None:
    # A wrong secret behind a real token id: each costs a key derivation until the limit.
    forged = tokens[Role.VIEWER][:20] + "_wrong-secret"
    allowed = 4 * app.settings.login_max_failures

    async def talk(client: ClientSession, base: str) -> list[int]:
        statuses = []
        for _ in range(allowed + 2):
            async with client.get(f"{base}/api/health", headers=bearer(forged)) as answer:
                statuses.append(answer.status)
        return statuses

    assert serve(app, talk) == [401] * allowed + [429, 429]
    assert app.access.credentials.kdf_calls == allowed
    assert sum("refused a Bearer token from 127.0.0.1" in r.getMessage()
               for r in caplog.records) == allowed
