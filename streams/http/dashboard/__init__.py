"""The built-in operations dashboard, served by the worker (``GET /dashboard``).

``register_dashboard(app)`` attaches the page and its JSON API
(:mod:`streams.http.dashboard.views`); the figures come from the flag store and
from this worker's counters (:mod:`streams.http.dashboard.monitor`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.app import CallguardApp


__all__ = ["register_dashboard"]


def register_dashboard(app: CallguardApp) -> None:
    """Serve the dashboard and its API from ``app``'s web server."""
    from streams.http.access.masking import mask_number
    from streams.http.access.middleware import principal_of
    from streams.http.dashboard.monitor import monitor_for
    from streams.http.dashboard.review import register_review_views
    from streams.http.dashboard.views import register_views

    monitor = monitor_for(app)
    register_views(app, monitor)
    register_review_views(
        app,
        monitor,
        lambda request: principal_of(request).actor,
        shown_number=lambda request, number: (
            number if principal_of(request).sees_numbers else mask_number(number)
        ),
    )
