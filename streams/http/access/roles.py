"""Roles and the one table of who may call which route of the worker's HTTP server.

Every route has a rule here, keyed by method and route pattern as aiohttp
registers it (``HEAD``, which Faust adds to every view, goes with ``GET``, or
with ``POST`` on a view that has no ``GET``). A route without a rule is refused
to everyone (403), and ``tests/unit/test_access_routes.py`` fails for it:
a new view is served once its rule is added below.

===========  ================================================================
role         may use
===========  ================================================================
``viewer``   the dashboard and the read API (numbers shown masked)
``operator`` what a viewer may, with numbers in clear; appeals, allow-list
``admin``    everything: user management, model promotion, Faust's own views
``service``  the number lookup API (``GET /numbers/{number}``) only
===========  ================================================================
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["RULES", "Need", "Role", "rule_for"]


class Role(StrEnum):
    """What a user is for."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"
    SERVICE = "service"


class Need(StrEnum):
    """What a route asks of the caller."""

    PUBLIC = "public"  # no credential: liveness, metrics, the login page
    SIGNED_IN = "signed_in"  # any user (who am I, logout)
    VIEWER = "viewer"
    OPERATOR = "operator"
    SERVICE = "service"
    ADMIN = "admin"

    def allows(self, role: Role) -> bool:
        """Whether a user with ``role`` meets this need."""
        return role in _MEETS[self]


_MEETS: dict[Need, frozenset[Role]] = {
    Need.PUBLIC: frozenset(Role),
    Need.SIGNED_IN: frozenset(Role),
    Need.VIEWER: frozenset({Role.VIEWER, Role.OPERATOR, Role.ADMIN}),
    Need.OPERATOR: frozenset({Role.OPERATOR, Role.ADMIN}),
    Need.SERVICE: frozenset({Role.SERVICE, Role.ADMIN}),
    Need.ADMIN: frozenset({Role.ADMIN}),
}

SEES_NUMBERS = frozenset({Role.OPERATOR, Role.ADMIN, Role.SERVICE})
"""Roles shown numbers in clear; viewers get them masked (:mod:`streams.http.access.masking`)."""

RULES: dict[tuple[str, str], Need] = {
    # Open: an orchestrator's probe, Prometheus, signing in.
    ("GET", "/livez"): Need.PUBLIC,
    ("GET", "/metrics"): Need.PUBLIC,
    ("GET", "/login"): Need.PUBLIC,
    ("POST", "/login"): Need.PUBLIC,
    # Any user.
    ("POST", "/logout"): Need.SIGNED_IN,
    ("GET", "/api/me"): Need.SIGNED_IN,
    # The dashboard and the read API (streams.http.dashboard.views, streams.http.web).
    ("GET", "/dashboard"): Need.VIEWER,
    ("GET", "/dashboard/{asset}"): Need.VIEWER,
    ("GET", "/api/flags"): Need.VIEWER,
    ("GET", "/api/timeline"): Need.VIEWER,
    ("GET", "/api/offenders"): Need.VIEWER,
    ("GET", "/api/clusters"): Need.VIEWER,
    ("GET", "/api/number"): Need.VIEWER,
    ("GET", "/api/health"): Need.VIEWER,
    ("GET", "/status"): Need.VIEWER,
    # Operators' actions and per-caller detail.
    ("POST", "/api/appeal"): Need.OPERATOR,
    ("POST", "/api/allow"): Need.OPERATOR,
    ("GET", "/callers/{number}/features"): Need.OPERATOR,
    # The review queue (streams.http.dashboard.review): read by viewers, worked by operators.
    ("GET", "/review"): Need.VIEWER,
    ("GET", "/review/{asset}"): Need.VIEWER,
    ("GET", "/api/review"): Need.VIEWER,
    ("POST", "/api/review/confirm"): Need.OPERATOR,
    ("POST", "/api/review/dismiss"): Need.OPERATOR,
    # Interception systems' lookups.
    ("GET", "/numbers/{number}"): Need.SERVICE,
    # Faust's own views: table contents and partition routing.
    ("GET", "/"): Need.ADMIN,
    ("GET", "/router/"): Need.ADMIN,
    ("GET", "/router/topics"): Need.ADMIN,
    ("GET", "/router/{name}/"): Need.ADMIN,
    ("GET", "/router/{name}/{key}/"): Need.ADMIN,
    ("GET", "/table/"): Need.ADMIN,
    ("GET", "/table/{name}/"): Need.ADMIN,
    ("GET", "/table/{name}/{key}/"): Need.ADMIN,
}


def rule_for(method: str, route: str) -> Need | None:
    """The rule for ``method`` on the route pattern ``route``; None: refused to all.

    >>> rule_for("HEAD", "/api/flags")
    <Need.VIEWER: 'viewer'>
    >>> rule_for("DELETE", "/api/flags") is None
    True
    """
    if method == "HEAD":
        return RULES.get(("GET", route)) or RULES.get(("POST", route))
    return RULES.get((method, route))
