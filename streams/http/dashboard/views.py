"""The dashboard's HTTP views on the worker's web server.

- ``GET /dashboard``: the page (``?q=<number>`` opens that number); its script
  and style at ``/dashboard/app.js`` and ``/dashboard/app.css``.
- ``GET /api/flags?action=block|watch&category=...&limit=N``: flagged numbers
  now, and the counts per action and category.
- ``GET /api/timeline?hours=N``: decisions per hour, category and action.
- ``GET /api/offenders?limit=N``: top new offenders (first flagged in the last day).
- ``GET /api/clusters``: numbers flagged together (segment clusters, bursts).
- ``GET /api/number?q=<any format>``: one number's flag, reasons, history, features.
- ``GET /api/health``: this worker's pipeline health.
- ``POST /api/appeal`` ``{"number", "reason"}``: lift a flag on appeal.
- ``POST /api/allow`` ``{"pattern", "reason"}``: allow a number or range.

Who may call which is in :data:`streams.http.access.roles.RULES`; the actions are
recorded as the signed-in user (``op:<name>``). Viewers get numbers masked
(:mod:`streams.http.access.masking`), and every ``/api/number`` is audited
(:mod:`streams.http.access.lookups`).

Store reads run through :class:`~streams.http.dashboard.monitor.StoreReader`, off
the event loop. The actions take JSON only: a cross-site form cannot send it
without a CORS preflight, which this server does not answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
from faust.web import Request, Response, View

from contracts.numbers import NumberError, normalise
from sinks.clickhouse import Store, StoreError, current_flags
from streams.http.access.lookups import note_lookup
from streams.http.access.masking import masked
from streams.http.access.middleware import principal_of
from streams.http.dashboard import queries
from streams.http.dashboard.actions import ActionRefused, OperatorRequest, allow_number, send_appeal
from streams.http.dashboard.assets import NO_CACHE, asset_response, page_response
from streams.http.dashboard.clusters import find_clusters
from streams.http.dashboard.monitor import PipelineMonitor

if TYPE_CHECKING:
    from streams.app import CallguardApp

__all__ = ["register_views"]

logger = logging.getLogger(__name__)

ASSETS = {
    "common.js": ("common.js", "application/javascript"),  # shared with the review page
    "app.js": ("dashboard.js", "application/javascript"),
    "app.css": ("dashboard.css", "text/css"),
}


def register_views(app: CallguardApp, monitor: PipelineMonitor) -> None:
    """Attach the page, its assets and the JSON API to the worker's web server."""
    faust_app = app.faust_app
    event_time = app.settings.lookup_event_time

    async def query(web: View, request: Request, work: Callable[[Store, datetime], Any]
                    ) -> Response:
        """Run ``work(store, as_of)`` off the loop; a store error is a 503 with its reason.

        Numbers in the answer are masked for users who may not see them in clear.
        """
        if not app.settings.store_enabled:
            return web.json({"error": "the store is disabled on this worker"}, status=503)

        def with_now(store: Store) -> Any:
            now = queries.as_of(store, event_time=event_time)
            return {"as_of": now.strftime("%Y-%m-%dT%H:%M:%SZ"), **work(store, now)}

        try:
            answer = await monitor.reader.run(with_now)
            if not principal_of(request).sees_numbers:
                answer = masked(answer)
            return web.json(answer, headers=NO_CACHE)
        except StoreError as error:
            logger.warning("dashboard query failed: %s", error)
            return web.json({"error": f"the flag store did not answer: {error}"}, status=503)

    @faust_app.page("/dashboard")
    async def dashboard(web: View, request: Request) -> Response:
        return page_response(web, "index.html")

    @faust_app.page("/dashboard/{asset}")
    async def dashboard_asset(web: View, request: Request, asset: str) -> Response:
        return asset_response(web, ASSETS, asset)

    @faust_app.page("/api/flags")
    async def api_flags(web: View, request: Request) -> Response:
        action = request.query.get("action") or None
        if action not in (None, *queries.FLAGGED):
            return web.json({"error": "action is block or watch"}, status=400)
        actions = (action,) if action else queries.FLAGGED
        category = request.query.get("category") or None
        limit = _int(request.query.get("limit"), 200, 1, 10_000)
        return await query(web, request, lambda store, now: {
            "counts": queries.flag_counts(store, now),
            "flags": queries.flags_now(
                store, now, actions=actions, category=category, limit=limit
            ),
        })

    @faust_app.page("/api/timeline")
    async def api_timeline(web: View, request: Request) -> Response:
        hours = _int(request.query.get("hours"), 48, 1, 24 * 90)
        return await query(web, request, lambda store, now: {
            "hours": hours, "buckets": queries.timeline(store, now, hours=hours)
        })

    @faust_app.page("/api/offenders")
    async def api_offenders(web: View, request: Request) -> Response:
        limit = _int(request.query.get("limit"), 10, 1, 500)
        return await query(web, request, lambda store, now: {
            "offenders": queries.top_new_offenders(store, now, limit=limit)
        })

    @faust_app.page("/api/clusters")
    async def api_clusters(web: View, request: Request) -> Response:
        def clusters(store: Store, now: datetime) -> dict[str, Any]:
            flags = current_flags(store, now=now, limit=10_000)
            started = queries.first_flagged(store, now, lookback=timedelta(days=2))
            found = find_clusters(flags, started)
            return {"clusters": [cluster.as_dict() for cluster in found[:50]]}

        return await query(web, request, clusters)

    @faust_app.page("/api/number")
    async def api_number(web: View, request: Request) -> Response:
        raw = request.query.get("q", "")
        try:
            number = normalise(raw, app.settings.default_region)
        except NumberError as error:
            return web.json({"query": raw, "error": str(error)}, status=400)
        allowed = app.models.matcher.allows_many([number])[0]
        note_lookup(app, request, number)
        return await query(web, request, lambda store, now: {
            # What was typed, shown back as the number it is (masked for viewers).
            "query": raw if principal_of(request).sees_numbers else number,
            "allowlisted": bool(allowed),
            **queries.number_detail(store, number, now),
        })

    @faust_app.page("/api/health")
    async def api_health(web: View, request: Request) -> Response:
        return web.json(monitor.health(), headers=NO_CACHE)

    @faust_app.page("/api/appeal")
    class Appeal(View):
        async def post(self, request: Request) -> Response:
            return await _act(self, request, "number", lambda ask: send_appeal(app, ask))

    @faust_app.page("/api/allow")
    class Allow(View):
        async def post(self, request: Request) -> Response:
            return await _act(self, request, "pattern", lambda ask: allow_number(app, ask))


async def _act(web: View, request: Request, subject: str, act: Callable[..., Any]) -> Response:
    if not request.content_type.startswith("application/json"):
        return web.json({"error": "send application/json"}, status=415)
    try:
        body = orjson.loads(await request.read())
        ask = OperatorRequest.from_json(body, subject, principal_of(request).actor)
        return web.json(await act(ask))
    except orjson.JSONDecodeError:
        return web.json({"error": "the body is not JSON"}, status=400)
    except ActionRefused as error:
        return web.json({"error": str(error)}, status=400)



def _int(text: str | None, default: int, low: int, high: int) -> int:
    try:
        return min(high, max(low, int(text))) if text else default
    except ValueError:
        return default
