"""The one gate in front of every route: credential, role, CSRF (aiohttp middleware).

For each request, the rule of its route (:data:`streams.http.access.roles.RULES`)
decides: public routes pass; any other needs a credential, ``Authorization:
Bearer <token>`` for machines or the session cookie for people (401 without
one; a browser asking for a page is sent to ``/login`` instead); then the
role must meet the rule (403). A route without a rule is refused to
everyone. A state-changing request authenticated by the cookie must carry
the session's CSRF token in ``X-CSRF-Token`` (403 otherwise); a Bearer
request needs none, as no browser sends that header on its own.

A refused Bearer token counts against the remote address, as a failed
sign-in does (which also counts against the name): past the limit, further
tokens from that address get 429 until the window passes, before any key
derivation is spent on them. Each refusal is logged with the address. A
session cookie that no longer works (expired, signed out, revoked) is only
answered 401: its check costs nothing, and the page then goes to /login.
"""

from __future__ import annotations

import hmac
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast
from urllib.parse import quote

import faust.web
from aiohttp import web
from aiohttp.typedefs import Handler

from streams.http.access.credentials import Credentials, Principal
from streams.http.access.limits import FailureLimiter
from streams.http.access.roles import Need, rule_for

if TYPE_CHECKING:
    from streams.http.access.lookups import LookupLog

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "AccessGuard",
    "principal_of",
]

logger = logging.getLogger(__name__)

SESSION_COOKIE = "callguard_session"
CSRF_COOKIE = "callguard_csrf"
CSRF_HEADER = "X-CSRF-Token"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_PRINCIPAL = web.RequestKey("callguard.principal", Principal)


def principal_of(request: web.Request | faust.web.Request) -> Principal:
    """The authenticated user of a request the guard let through to a non-public route.

    Faust's views are handed aiohttp's request (its ``Request`` type is abstract).
    """
    return cast(web.Request, request)[_PRINCIPAL]


@dataclass
class AccessGuard:
    """Credentials, the failure limits, the lookup audit, and the middleware of the rules."""

    credentials: Credentials
    names: FailureLimiter
    addresses: FailureLimiter
    lookups: LookupLog

    def install(self, web_app: web.Application) -> None:
        """Put the guard in front of every route of ``web_app`` (before it starts)."""
        web_app.middlewares.append(self.middleware)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Apply the route's rule to ``request``."""
        route = request.match_info.route
        resource = route.resource
        need = rule_for(request.method, resource.canonical) if resource is not None else None
        if need is Need.PUBLIC:
            return await handler(request)
        address = request.remote or "unknown"
        bearer = _bearer_token(request)
        if bearer is not None and (wait := self.addresses.retry_after(address)):
            return _too_many(wait)  # before the key derivation a token costs
        principal = await self.authenticate(request)
        if principal is None:
            if bearer is not None:
                self.addresses.fail(address)
                logger.warning("refused a Bearer token from %s for %s %s", address,
                               request.method, request.path)
            elif SESSION_COOKIE in request.cookies:  # expired, signed out or revoked
                logger.info("refused a session from %s for %s %s", address, request.method,
                            request.path)
            return _unauthorised(request)
        if resource is None:  # no such route (404/405): answered to signed-in users only
            return await handler(request)
        if need is None:
            logger.error("no access rule for %s %s: refused", request.method, resource.canonical)
            return _refused("this route has no access rule; it is refused to everyone")
        if not need.allows(principal.role):
            return _refused(f"{principal.role} may not {request.method} {resource.canonical}")
        if request.method in STATE_CHANGING and principal.csrf is not None and (
            not hmac.compare_digest(request.headers.get(CSRF_HEADER, "").encode(),
                                    principal.csrf.encode())
        ):
            return _refused(f"missing or wrong {CSRF_HEADER} header (reload the page)")
        request[_PRINCIPAL] = principal
        return await handler(request)

    async def authenticate(self, request: web.Request) -> Principal | None:
        """The request's user: by its Bearer token if it has one, else by its session."""
        token = _bearer_token(request)
        if token is not None:
            return await self.credentials.bearer(token)
        cookie = request.cookies.get(SESSION_COOKIE)
        return await self.credentials.session(cookie) if cookie else None


def _bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _unauthorised(request: web.Request) -> web.StreamResponse:
    if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
        return web.Response(status=303, headers={
            "Location": f"/login?next={quote(request.path_qs, safe='')}",
            "Cache-Control": "no-store",
        })
    return web.json_response(
        {"error": "sign in: send Authorization: Bearer <token>, or log in at /login"},
        status=401, headers={"WWW-Authenticate": 'Bearer realm="callguard"'},
    )


def _refused(why: str) -> web.StreamResponse:
    return web.json_response({"error": f"forbidden: {why}"}, status=403)


def _too_many(wait_s: float) -> web.StreamResponse:
    return web.json_response(
        {"error": f"too many failed sign-ins; try again in {math.ceil(wait_s)} s"},
        status=429, headers={"Retry-After": str(math.ceil(wait_s))},
    )
