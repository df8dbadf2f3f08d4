"""The audit of number lookups, kept without making a request wait for the store.

A view that shows one number's flag, history or features calls
:func:`note_lookup`; the row joins a bounded in-memory queue and a timer
writes the queue to ``number_lookups`` every ``FLUSH_INTERVAL_S`` through
the store's executor. A store that does not answer keeps the rows queued
(up to ``MAX_PENDING``; past that the oldest are dropped and counted, and
the log says so). With the store disabled, lookups go to the log instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

import faust.web
from aiohttp import web

from sinks.clickhouse import StoreError
from sinks.clickhouse.lookups import NumberLookup, insert_lookups
from streams.http.access.middleware import principal_of

if TYPE_CHECKING:
    from streams.app import CallguardApp

__all__ = ["LookupLog", "note_lookup", "register_lookup_log"]

logger = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 2.0
MAX_PENDING = 100_000


class LookupLog:
    """Lookups waiting to be written; appending never blocks."""

    def __init__(self, worker: str, max_pending: int = MAX_PENDING) -> None:
        self.worker = worker
        self.dropped = 0
        self.written = 0
        self._pending: deque[NumberLookup] = deque()
        self._max_pending = max_pending

    def record(self, request: web.Request | faust.web.Request, number: str) -> None:
        """Note that the request's user looked at ``number``."""
        principal = principal_of(request)
        request = cast(web.Request, request)  # what Faust's aiohttp driver hands views
        route = request.match_info.route.resource
        self._add([NumberLookup(
            datetime.now(UTC).replace(microsecond=0), principal.name, principal.role.value,
            number, route.canonical if route is not None else request.path,
            request.remote or "", self.worker,
        )])

    def take(self) -> list[NumberLookup]:
        """Every lookup waiting, oldest first; the queue is left empty."""
        taken = list(self._pending)
        self._pending.clear()
        return taken

    def put_back(self, lookups: list[NumberLookup]) -> None:
        """Return lookups a write did not take, ahead of newer ones."""
        newer = self.take()
        self._add(lookups + newer)

    def _add(self, lookups: list[NumberLookup]) -> None:
        self._pending.extend(lookups)
        while len(self._pending) > self._max_pending:
            self._pending.popleft()
            self.dropped += 1


def note_lookup(app: CallguardApp, request: web.Request | faust.web.Request, number: str
                ) -> None:
    """Audit that this request's user looked up ``number`` (never waits)."""
    if app.access is not None:
        app.access.lookups.record(request, number)


def register_lookup_log(app: CallguardApp, log: LookupLog) -> None:
    """Write ``log`` to the store every ``FLUSH_INTERVAL_S``, off the event loop."""

    @app.faust_app.timer(FLUSH_INTERVAL_S, on_leader=False)
    async def write_lookups() -> None:
        lookups = log.take()
        if not lookups:
            return
        if not app.settings.store_enabled:
            for lookup in lookups:
                logger.info("lookup: %s (%s) %s via %s from %s", lookup.user_name, lookup.role,
                            lookup.number, lookup.route, lookup.address)
            return
        try:
            await asyncio.get_running_loop().run_in_executor(
                app.store_executor, app.writer.run, lambda store: insert_lookups(store, lookups)
            )
        except StoreError as error:
            log.put_back(lookups)
            logger.warning("%d lookups not yet audited in the store (%d dropped so far): %s",
                           len(lookups), log.dropped, error)
            return
        log.written += len(lookups)
