"""A bounded buffer in front of the flag store that never drops a decision.

The narrow sink contract (as in quix-streams): :meth:`BufferedStoreWriter.add`
buffers, :meth:`~BufferedStoreWriter.flush` writes, and a failed flush raises
:class:`FlushFailed` and keeps everything it did not write. Decisions are
written in the order they were added, through
:func:`sinks.clickhouse.insert_decisions`, so a retry never stores a decision
twice.

How a worker uses it without committing past unwritten data
-----------------------------------------------------------
Offsets are committed only for input whose decisions are in the store. The
simplest correct shape, for an agent over ``cdr.flags`` (or over scores)::

    async for batch in stream.take(5000, within=1):     # Faust acks a batch
        await writer.add_async(flags_of(batch))          # waits while full
        await writer.flush_async()                       # returns once written

``flush_async`` retries with backoff until the buffer is empty, so the agent
does not ask for its next batch (and Faust does not commit this one) while
the store is down; the consumer's lag grows instead, which is the
back-pressure. A worker that wants to keep scoring through a short outage
can instead call ``add`` per batch and hold its acks (``stream.noack()`` and
``event.ack()``) until ``pending() == 0`` after a flush: ``pending()`` counts
decisions not yet stored, and everything added before a flush that left
``pending() == 0`` is stored.

Threads: ``add``, ``pending`` and ``metrics`` are cheap and may be called
from the event loop; ``flush`` and ``close`` block on the store and belong in
an executor (``add_async``/``flush_async`` do that). Every method is safe to
call from any thread: the buffer has a lock, and one flush runs at a time.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

from contracts.flag import Flag
from sinks.backoff import Backoff
from sinks.clickhouse.engines import open_store
from sinks.clickhouse.errors import StoreError, StoreUnavailable
from sinks.clickhouse.flags import FlagDecision, insert_decisions
from sinks.clickhouse.store import Store

T = TypeVar("T")

__all__ = ["BackPressure", "BufferedStoreWriter", "CloseReport", "FlushFailed", "WriterMetrics"]

log = logging.getLogger(__name__)


class BackPressure(StoreError):  # noqa: N818 - the name says what the caller must do
    """The buffer cannot take this batch now: flush (or wait) and add it again."""


class FlushFailed(StoreError):
    """A flush stopped at an error; the decisions it did not write are still buffered."""


@dataclass(frozen=True, slots=True)
class WriterMetrics:
    """A snapshot of the writer's health, for gauges and the health endpoint."""

    buffered: int
    written: int
    insert_failures: int
    consecutive_failures: int
    reconnects: int
    last_error: str | None
    last_success_at: datetime | None
    retry_in_s: float


@dataclass(frozen=True, slots=True)
class CloseReport:
    """What :meth:`BufferedStoreWriter.close` wrote, and what it could not."""

    written: int
    remaining: tuple[FlagDecision, ...]

    @property
    def complete(self) -> bool:
        """Whether every decision reached the store."""
        return not self.remaining


class BufferedStoreWriter:
    """Buffer decisions (at most ``max_buffered``) and write them in order, retrying.

    ``connect`` opens the store (``lambda: open_store(url)``, or use
    :meth:`from_url`); it is called lazily and again after the server was
    unreachable. ``actor`` is recorded with every decision.
    """

    def __init__(
        self,
        connect: Callable[[], Store],
        *,
        actor: str,
        max_buffered: int = 100_000,
        batch_size: int = 10_000,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if max_buffered < 1 or batch_size < 1:
            raise ValueError("max_buffered and batch_size must be at least 1")
        self._connect = connect
        self._actor = actor
        self._max_buffered = max_buffered
        self._batch_size = batch_size
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter only
        self._buffer: deque[FlagDecision] = deque()
        self._buffer_lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one flush (and one store user) at a time
        self._store: Store | None = None
        self._opened_before = False
        self._metrics = WriterMetrics(0, 0, 0, 0, 0, None, None, 0.0)
        self._retry_at = 0.0

    @classmethod
    def from_url(cls, url: str, **options: object) -> BufferedStoreWriter:
        """A writer on the store at ``url`` (see :func:`sinks.clickhouse.open_store`)."""
        return cls(lambda: open_store(url), **options)  # type: ignore[arg-type]

    # -- the contract ---------------------------------------------------------

    def add(self, flags: Sequence[Flag | FlagDecision]) -> None:
        """Buffer a batch, all or nothing; raise :class:`BackPressure` if it does not fit."""
        decisions = self._as_decisions(flags)
        with self._buffer_lock:
            room = self._max_buffered - len(self._buffer)
            if len(decisions) > room:
                raise BackPressure(
                    f"{len(decisions)} decisions do not fit: {len(self._buffer)} of "
                    f"{self._max_buffered} buffered (last error: {self._metrics.last_error})"
                )
            self._buffer.extend(decisions)

    def flush(self) -> int:
        """Write everything buffered now, oldest first; return how many were written.

        On an error, raise :class:`FlushFailed`: what was written is gone from
        the buffer, the rest stays (in order) and the next retry is scheduled
        (see :meth:`retry_in`).
        """
        with self._flush_lock:
            written = 0
            while chunk := self._peek(self._batch_size):
                try:
                    insert_decisions(self._open(), chunk)
                except Exception as error:
                    self._failed(error)
                    raise FlushFailed(f"{self.pending()} decisions not written: {error}") from error
                self._drop_written(len(chunk))
                written += len(chunk)
            if written or self._metrics.consecutive_failures:
                self._succeeded(written)
            return written

    def run(self, work: Callable[[Store], T]) -> T:
        """Run ``work`` on the writer's store connection, between flushes.

        An embedded (chdb) store admits one process per path, so whatever else
        the worker reads or writes there (the schema, dashboard queries) goes
        through this one connection. A store error discards the connection,
        as a failed flush does, and propagates.
        """
        with self._flush_lock:
            try:
                return work(self._open())
            except StoreUnavailable:
                self._discard_store()
                raise

    def pending(self) -> int:
        """Decisions added but not yet in the store."""
        with self._buffer_lock:
            return len(self._buffer)

    def retry_in(self) -> float:
        """Seconds until the backoff allows the next flush (0: now)."""
        return max(0.0, self._retry_at - self._clock())

    def metrics(self) -> WriterMetrics:
        """Buffered count, failures, last error and last success, as of now."""
        return replace(self._metrics, buffered=self.pending(), retry_in_s=self.retry_in())

    def close(self, timeout: float = 30.0) -> CloseReport:
        """Flush what can be flushed within ``timeout`` seconds, then close the store.

        Waits out the backoff between attempts. Returns the decisions left
        unwritten: the caller must not commit the input they came from (log
        them, or let the input be consumed again after a restart).
        """
        deadline = self._clock() + timeout
        written = 0
        while self.pending():
            wait = self.retry_in()
            if wait and self._clock() + wait > deadline:
                break
            self._sleep(wait)
            try:
                written += self.flush()
            except FlushFailed as error:
                log.warning("closing: flush failed (%s)", error)
        with self._flush_lock:
            self._discard_store()
        with self._buffer_lock:
            remaining = tuple(self._buffer)
        if remaining:
            log.error("closing with %d decisions not written to the store", len(remaining))
        return CloseReport(written, remaining)

    # -- asyncio helpers ------------------------------------------------------

    async def add_async(
        self, flags: Sequence[Flag | FlagDecision], *, executor: Executor | None = None
    ) -> None:
        """Add a batch, waiting (and flushing in ``executor``) until there is room."""
        if len(flags) > self._max_buffered:
            raise ValueError(f"a batch of {len(flags)} can never fit in {self._max_buffered}")
        while True:
            try:
                self.add(flags)
                return
            except BackPressure:
                await self._flush_when_due(executor)

    async def flush_async(self, *, executor: Executor | None = None) -> int:
        """Flush in ``executor`` until the buffer is empty, waiting out the backoff."""
        written = 0
        while self.pending():
            written += await self._flush_when_due(executor)
        return written

    async def _flush_when_due(self, executor: Executor | None) -> int:
        await asyncio.sleep(self.retry_in())
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, self.flush)
        except FlushFailed as error:
            log.warning("flag store flush failed, retry in %.1fs: %s", self.retry_in(), error)
            return 0

    # -- internals ------------------------------------------------------------

    def _as_decisions(self, flags: Sequence[Flag | FlagDecision]) -> list[FlagDecision]:
        actor = self._actor
        return [
            item if isinstance(item, FlagDecision) else FlagDecision.from_flag(item, actor=actor)
            for item in flags
        ]

    def _peek(self, count: int) -> list[FlagDecision]:
        with self._buffer_lock:
            return [self._buffer[index] for index in range(min(count, len(self._buffer)))]

    def _drop_written(self, count: int) -> None:
        # Only the flushing thread removes, and adds only append: the first
        # ``count`` items are still the ones just written.
        with self._buffer_lock:
            for _ in range(count):
                self._buffer.popleft()

    def _open(self) -> Store:
        if self._store is None:
            self._store = self._connect()
            if self._opened_before:
                self._metrics = replace(self._metrics, reconnects=self._metrics.reconnects + 1)
            self._opened_before = True
        return self._store

    def _discard_store(self) -> None:
        if self._store is not None:
            try:
                self._store.close()
            except Exception as error:  # a dead connection may fail to close: it is gone anyway
                log.debug("closing the store failed: %s", error)
            self._store = None

    def _failed(self, error: Exception) -> None:
        if isinstance(error, StoreUnavailable):
            self._discard_store()  # reconnect on the next attempt
        failures = self._metrics.consecutive_failures + 1
        self._retry_at = self._clock() + self._backoff.delay(failures, self._rng)
        self._metrics = replace(
            self._metrics,
            insert_failures=self._metrics.insert_failures + 1,
            consecutive_failures=failures,
            last_error=f"{type(error).__name__}: {error}",
        )

    def _succeeded(self, written: int) -> None:
        self._retry_at = 0.0
        self._metrics = replace(
            self._metrics,
            written=self._metrics.written + written,
            consecutive_failures=0,
            last_success_at=datetime.now(UTC),
        )
