"""HTTP views on the worker (Faust's web server, ``CALLGUARD_WEB_PORT``).

- ``GET /livez``: 200 while the process serves HTTP (no credential needed).
- ``GET /status``: this worker's counters (JSON).
- ``GET /callers/{number}/features``: the caller's current feature vector;
- ``GET /numbers/{number}``: the number's current flag, for interception
  systems that poll (any number format; "not flagged" when unknown).

Number views are answered by the worker that owns the number: a request to
another worker is forwarded to the owner, as Faust's table routing does
(with the caller's credential). The owner audits the lookup
(:mod:`streams.http.access.lookups`).

A request whose path holds ``..`` (after percent-decoding) is answered 404
before any view sees it: no view here has a use for it, and Faust's own
``/router`` and ``/table`` views took ``..`` for a table name (a 503, or a
500 with a traceback in the log).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import orjson
from aiohttp import web as aiohttp_web
from aiohttp.typedefs import Handler
from faust.exceptions import NotReady, SameNode
from faust.web import Request, Response, View
from faust.web.drivers.aiohttp import Web as AiohttpWeb
from faust.web.exceptions import ServiceUnavailable

from contracts.flag import Action, encode_flag
from contracts.numbers import NumberError, normalise
from streams.http.access.lookups import note_lookup
from streams.pipeline.alignment import drift_ms
from streams.pipeline.ingest import partition_for_number
from streams.stages.decision_stage import decode_state
from streams.topics import CALLER_TABLE, FLAG_TABLE

if TYPE_CHECKING:
    from streams.app import CallguardApp

__all__ = ["register_views"]

Answer = Callable[[View, str], Awaitable[Response]]


def register_views(app: CallguardApp) -> None:
    """Attach the worker's HTTP views, behind the refusal of ``..`` in paths."""
    faust_app = app.faust_app
    _refuse_dot_dot(faust_app.web)

    @faust_app.page("/livez")
    async def livez(web: View, request: Request) -> Response:
        return web.json({"live": True})

    @faust_app.page("/status")
    async def status(web: View, request: Request) -> Response:
        positions = {
            f"{topic}:{partition}": ms
            for topic, partition, ms in (app.intake.event_positions() if app.intake else ())
        }
        return web.json(
            {
                "app_id": app.settings.app_id,
                # Counters cover this process's lifetime: a restart starts them at 0.
                "counters_since": time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime(app.started_at)
                ),
                "counters": dataclasses.asdict(app.counters),
                "model": {
                    "version": app.models.current.version if app.models.current else None,
                    "status": app.models.last_status,
                    "allowlist_revision": app.models.matcher.revision,
                },
                "store": dataclasses.asdict(app.writer.metrics()),
                "checkpoints": (
                    {
                        **dataclasses.asdict(app.checkpoints.stats),
                        "held": app.checkpoints.held,
                        # Why checkpoints stopped for good (the worker is stopping), or null.
                        "broken": None if app.checkpoints.broken is None
                        else repr(app.checkpoints.broken),
                    }
                    if app.checkpoints is not None else None
                ),
                "assigned": sorted(
                    f"{tp.topic}:{tp.partition}" for tp in faust_app.assignor.assigned_actives()
                ),
                "ingest_assigned": [
                    f"{topic}:{partition}"
                    for topic, partition, _, _ in (app.intake.positions() if app.intake else ())
                ],
                # Event time each input partition has reached, and the spread between them.
                "ingest_event_time_ms": positions,
                "ingest_drift_ms": drift_ms(positions),
            }
        )

    async def features(web: View, number: str) -> Response:
        stage, table = app.feature_stage, app.caller_table
        snapshot = stage.snapshot(number, table) if stage and table is not None else None
        if snapshot is None:
            return web.json({"number": number, "known": False}, status=404)
        return web.json({"number": number, "known": True, **snapshot})

    @faust_app.page("/callers/{number}/features")
    async def caller_features(web: View, request: Request, number: str) -> Response:
        return await _routed(app, CALLER_TABLE, web, request, number, features)

    async def flag(web: View, number: str) -> Response:
        raw = app.flag_table.get(number) if app.flag_table is not None else None
        state = decode_state(raw)
        current = state.flag
        if current is None:
            return web.json({"number": number, "flagged": False, "action": None})
        decision = orjson.loads(encode_flag(current))
        now_ms = int(time.time() * 1000)
        # Event time drives expiry; a flag past its expiry by the wall clock is
        # reported as lapsed even before the stream has published its clear.
        flagged = current.action is not Action.CLEAR and (
            current.expires_at_ms is None or current.expires_at_ms > now_ms
            or app.settings.lookup_event_time
        )
        return web.json({**decision, "flagged": flagged})

    @faust_app.page("/numbers/{number}")
    async def number_flag(web: View, request: Request, number: str) -> Response:
        return await _routed(app, FLAG_TABLE, web, request, number, flag)


async def _routed(
    app: CallguardApp, table: str, web: View, request: Request, raw_number: str, answer: Answer
) -> Response:
    """Normalise, then answer here if this worker owns the number, else forward."""
    try:
        number = normalise(raw_number, app.settings.default_region)
    except NumberError as error:
        return web.json({"number": raw_number, "error": str(error)}, status=400)
    partition = partition_for_number(number, app.settings.partitions)
    owned = {
        tp.partition
        for tp in app.faust_app.assignor.assigned_actives()
        if tp.topic == app.topics.by_caller.get_topic_name()
    }
    if partition in owned:  # the common case, and no broker metadata needed
        note_lookup(app, request, number)  # audited by the worker that answers
        return await answer(web, number)
    try:
        return await app.faust_app.router.route_req(table, number.encode(), web, request)
    except SameNode:
        note_lookup(app, request, number)
        return await answer(web, number)
    except (KeyError, TypeError, ServiceUnavailable, NotReady):
        # No owner known yet (a rebalance is going on, metadata is not fetched,
        # or the producer that hashes keys has not started).
        return web.json(
            {"number": number, "error": "the owning worker is not known yet; retry shortly"},
            status=503,
        )


def _refuse_dot_dot(web: object) -> None:
    """Answer 404 to any request whose decoded path holds ``..``, ahead of every route."""
    if not isinstance(web, AiohttpWeb):
        raise TypeError(f"callguard serves HTTP with Faust's aiohttp driver, not {type(web)}")

    @aiohttp_web.middleware
    async def dot_dot_not_found(
        request: aiohttp_web.Request, handler: Handler
    ) -> aiohttp_web.StreamResponse:
        if ".." in request.path:
            return aiohttp_web.json_response(
                {"error": "not found: a path may not contain '..'"}, status=404
            )
        return await handler(request)

    web.web_app.middlewares.append(dot_dot_not_found)
