"""Who may use the worker's HTTP server: users, tokens, roles and the rule table.

``register_access(app)`` puts the guard in front of every route and serves
the sign-in views; call it after every other view is registered.

- :mod:`streams.http.access.tokens`: token text and its salted scrypt hash.
- :mod:`streams.http.access.users`: the user database (one SQLite file).
- :mod:`streams.http.access.roles`: roles and the one table of route rules.
- :mod:`streams.http.access.credentials`: checks a Bearer token or a session, cached.
- :mod:`streams.http.access.limits`: failed sign-ins per name and per address.
- :mod:`streams.http.access.middleware`: enforces the rules on every request.
- :mod:`streams.http.access.login`: the login page, sessions and logout.
- :mod:`streams.http.access.masking`: numbers as viewers see them.
- :mod:`streams.http.access.lookups`: the audit of who looked up which number.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.app import CallguardApp
    from streams.http.access.middleware import AccessGuard

__all__ = ["register_access"]


def register_access(app: CallguardApp) -> AccessGuard:
    """Guard ``app``'s web server, serve ``/login``, ``/logout`` and ``/api/me``, audit lookups."""
    import logging
    from datetime import timedelta

    from streams.http.access.credentials import Credentials
    from streams.http.access.limits import FailureLimiter
    from streams.http.access.login import register_login
    from streams.http.access.lookups import LookupLog, register_lookup_log
    from streams.http.access.middleware import AccessGuard

    settings = app.settings
    guard = AccessGuard(
        Credentials(settings.users_path),  # opened at the first request, off the loop
        names=FailureLimiter(settings.login_max_failures, settings.login_failure_window_s),
        addresses=FailureLimiter(4 * settings.login_max_failures,
                                 settings.login_failure_window_s),
        lookups=LookupLog(app.worker_name),
    )
    register_lookup_log(app, guard.lookups)
    register_login(app.faust_app, guard, timedelta(seconds=settings.session_ttl_s))
    guard.install(app.faust_app.web.web_app)  # type: ignore[attr-defined]  # aiohttp driver

    @app.faust_app.task
    async def warn_without_users() -> None:
        """Say at start, once, why every request is refused when nobody may sign in."""
        if not await guard.credentials.active_users():
            logging.getLogger(__name__).warning(
                "no users in %s: every request but /livez, /metrics and /login is refused; "
                "add one with `callguard users add NAME --role admin`", settings.users_path,
            )

    return guard
