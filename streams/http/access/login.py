"""People sign in here: ``/login`` (name and token), ``/logout``, and ``/api/me``.

A successful sign-in opens a session: the ``callguard_session`` cookie
(``HttpOnly``, ``SameSite=Strict``, ``Path=/``; ``Secure`` over HTTPS) and
the ``callguard_csrf`` cookie the dashboard's script echoes in
``X-CSRF-Token`` on every change it asks for. Failed sign-ins are logged
and limited per name and per remote address.
"""

from __future__ import annotations

import html
import logging
import math
from datetime import timedelta

import faust
from aiohttp import web
from faust.web import View

from streams.http.access.middleware import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    AccessGuard,
    principal_of,
)

__all__ = ["register_login"]

logger = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "no-store"}


def register_login(faust_app: faust.App, guard: AccessGuard, session_ttl: timedelta) -> None:
    """Serve ``/login``, ``/logout`` and ``/api/me`` from the worker's web server."""

    @faust_app.page("/login")
    class Login(View):
        async def get(self, request: web.Request) -> web.StreamResponse:
            return _login_page(_local_path(request.query.get("next")))

        async def post(self, request: web.Request) -> web.StreamResponse:
            form = await request.post()
            name = str(form.get("name", "")).strip().lower()
            token = str(form.get("token", "")).strip()
            target = _local_path(str(form.get("next", "")))
            address = request.remote or "unknown"
            wait = max(guard.names.retry_after(name), guard.addresses.retry_after(address))
            if wait:
                logger.warning("sign-in as %r from %s refused: too many failures", name, address)
                return _login_page(target, f"Too many failed sign-ins; try again in "
                                   f"{math.ceil(wait)} s.", status=429)
            principal = await guard.credentials.sign_in(name, token) if name and token else None
            if principal is None:
                guard.names.fail(name)
                guard.addresses.fail(address)
                logger.warning("failed sign-in as %r from %s", name, address)
                return _login_page(target, "Wrong name or token.", status=401)
            guard.names.succeed(name)
            cookie, session = await guard.credentials.open_session(principal, session_ttl)
            logger.info("%s (%s) signed in from %s", principal.name, principal.role, address)
            response = web.Response(status=303, headers={"Location": target, **NO_STORE})
            seconds = int(session_ttl.total_seconds())
            secure = request.secure
            response.set_cookie(SESSION_COOKIE, cookie, max_age=seconds, path="/",
                                httponly=True, samesite="Strict", secure=secure)
            response.set_cookie(CSRF_COOKIE, session.csrf or "", max_age=seconds, path="/",
                                samesite="Strict", secure=secure)
            return response

    @faust_app.page("/logout")
    class Logout(View):
        async def post(self, request: web.Request) -> web.StreamResponse:
            principal = principal_of(request)
            cookie = request.cookies.get(SESSION_COOKIE)
            if cookie:
                await guard.credentials.close_session(cookie, principal.name)
            response = web.json_response({"signed_out": principal.name}, headers=NO_STORE)
            response.del_cookie(SESSION_COOKIE, path="/")
            response.del_cookie(CSRF_COOKIE, path="/")
            return response

    @faust_app.page("/api/me")
    class Me(View):
        async def get(self, request: web.Request) -> web.StreamResponse:
            return _me(request)


def _me(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    return web.json_response({
        "name": principal.name, "role": principal.role.value,
        "sees_numbers": principal.sees_numbers, "session": principal.csrf is not None,
    }, headers=NO_STORE)


def _local_path(target: str | None) -> str:
    """Where to go after sign-in: a path on this server, else the dashboard."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/dashboard"
    return target


def _login_page(target: str, message: str = "", status: int = 200) -> web.Response:
    note = f'<p class="error" id="login-error">{html.escape(message)}</p>' if message else ""
    page = _PAGE.format(next=html.escape(target, quote=True), note=note)
    return web.Response(text=page, content_type="text/html", status=status, headers=NO_STORE)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>callguard: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 15px system-ui, sans-serif; background: #f4f6f8; color: #1d2733; }}
form {{ max-width: 22rem; margin: 12vh auto; background: #fff; padding: 1.5rem 2rem;
        border-radius: 6px; box-shadow: 0 1px 4px #0002; }}
label {{ display: block; margin: .8rem 0 .2rem; }}
input {{ width: 100%; box-sizing: border-box; padding: .45rem; font: inherit; }}
button {{ margin-top: 1.2rem; padding: .5rem 1.2rem; font: inherit; }}
.error {{ color: #b3261e; }}
</style></head>
<body>
<form id="login" method="post" action="/login" autocomplete="off">
  <h1>callguard</h1>
  {note}
  <input type="hidden" name="next" value="{next}">
  <label for="name">Name</label><input id="name" name="name" required autofocus>
  <label for="token">Token</label><input id="token" name="token" type="password" required>
  <button type="submit">Sign in</button>
</form>
</body></html>
"""
