"""The review queue's HTTP routes on the worker's web server.

- ``GET /review``: the review page; its script at ``/review/review.js``.
- ``GET /api/review?category=...&limit=N``: the queue, watches in force,
  newest first (read: role ``viewer``).
- ``POST /api/review/confirm`` ``{"number", "reason"}``: the watch becomes
  a ``block`` (role ``operator``).
- ``POST /api/review/dismiss`` ``{"number", "reason"}``: a false positive,
  cleared and held like an upheld appeal (role ``operator``).

Who acts is ``actor_of(request)``, from the request's credential, never a
field of the body: a body that names an ``actor`` is refused. The checks,
the message to the owning worker and the audit are those of ``callguard
review`` (:mod:`streams.http.dashboard.review_queue`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from faust.web import Request, Response, View

from sinks.clickhouse import Store, StoreError
from streams.http.dashboard import queries
from streams.http.dashboard.actions import ActionRefused
from streams.http.dashboard.assets import NO_CACHE, asset_response, page_response
from streams.http.dashboard.monitor import PipelineMonitor
from streams.http.dashboard.review_queue import ReviewAction, refusal, review_queue, send_review

if TYPE_CHECKING:
    from streams.app import CallguardApp

__all__ = ["ROUTE_ROLES", "register_review_views"]

logger = logging.getLogger(__name__)

# (method, route) -> the role it needs, as streams.http.access.roles.RULES keys its rules.
ROUTE_ROLES = {
    ("GET", "/review"): "viewer",
    ("GET", "/review/{asset}"): "viewer",
    ("GET", "/api/review"): "viewer",
    ("POST", "/api/review/confirm"): "operator",
    ("POST", "/api/review/dismiss"): "operator",
}
ASSETS = {
    "common.js": ("common.js", "application/javascript"),  # shared with the dashboard
    "review.js": ("review.js", "application/javascript"),
}


def register_review_views(
    app: CallguardApp,
    monitor: PipelineMonitor,
    actor_of: Callable[[Request], str],
    *,
    shown_number: Callable[[Request, str], str] | None = None,
) -> None:
    """Attach the review page and its JSON API to ``app``'s web server.

    ``actor_of(request)``: who acts, from the request's credential.
    ``shown_number(request, number)``: the number as this user may see it
    (masked for viewers who are not operators); without it, in clear.
    """
    faust_app = app.faust_app
    settings = app.settings

    async def on_store(work: Callable[[Store, datetime], Any]) -> Any:
        """Run ``work(store, now)`` off the loop, "now" as the dashboard has it."""
        return await monitor.reader.run(
            lambda store: work(store, queries.as_of(store, event_time=settings.lookup_event_time))
        )

    @faust_app.page("/review")
    async def review_page(web: View, request: Request) -> Response:
        return page_response(web, "review.html")

    @faust_app.page("/review/{asset}")
    async def review_asset(web: View, request: Request, asset: str) -> Response:
        return asset_response(web, ASSETS, asset)

    @faust_app.page("/api/review")
    async def api_review(web: View, request: Request) -> Response:
        if not settings.store_enabled:
            return web.json({"error": "the store is disabled on this worker"}, status=503)
        category = request.query.get("category") or None
        limit = _limit(request.query.get("limit"))

        def queue(store: Store, now: datetime) -> dict[str, Any]:
            return {
                "as_of": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "queue": review_queue(store, now, category=category, limit=limit),
            }

        try:
            answer = await on_store(queue)
            if shown_number is not None:
                for row in answer["queue"]:
                    row["number"] = shown_number(request, row["number"])
            return web.json(answer, headers=NO_CACHE)
        except StoreError as error:
            logger.warning("review queue query failed: %s", error)
            return web.json({"error": f"the flag store did not answer: {error}"}, status=503)

    async def act(web: View, request: Request, kind: str) -> Response:
        if not request.content_type.startswith("application/json"):
            return web.json({"error": "send application/json"}, status=415)
        try:
            body = orjson.loads(await request.read())
            action = _checked(kind, body, actor_of(request), settings.default_region)
            if settings.store_enabled:
                refused = await on_store(lambda store, now: refusal(store, action, now))
                if refused:
                    return web.json({"error": refused}, status=409)
            return web.json(await send_review(app, action))
        except orjson.JSONDecodeError:
            return web.json({"error": "the body is not JSON"}, status=400)
        except ActionRefused as error:
            return web.json({"error": str(error)}, status=400)
        except StoreError as error:
            return web.json({"error": f"the flag store did not answer: {error}"}, status=503)

    @faust_app.page("/api/review/confirm")
    class Confirm(View):
        async def post(self, request: Request) -> Response:
            return await act(self, request, "confirm")

    @faust_app.page("/api/review/dismiss")
    class Dismiss(View):
        async def post(self, request: Request) -> Response:
            return await act(self, request, "dismiss")


def _checked(kind: str, body: Any, actor: str, region: str) -> ReviewAction:
    """The action a JSON body asks for, done by ``actor``."""
    if not isinstance(body, dict):
        raise ActionRefused("send a JSON object")
    if "actor" in body:
        raise ActionRefused("do not send actor: the action is recorded as the signed-in user")
    missing = [name for name in ("number", "reason")
               if not isinstance(body.get(name), str) or not body[name].strip()]
    if missing:
        raise ActionRefused(f"required: {', '.join(missing)}")
    return ReviewAction.checked(kind, body["number"], actor=actor, reason=body["reason"],
                                region=region)



def _limit(text: str | None) -> int:
    try:
        return min(1000, max(1, int(text))) if text else 200
    except ValueError:
        return 200
