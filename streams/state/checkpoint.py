"""Checkpoints of the features agent: state to the changelog first, then the acks.

The agent reads ``cdr.by_caller`` without acknowledging as it goes
(``stream.noack()``): each message it has applied is held here. A
checkpoint takes the overlays of the agent's tables (:class:`WriteBehindTable`:
the callers' rows and the numbers' flag states), sends them with bulk writes
(:class:`ChangelogWriter`), and only once the broker has them acknowledges
the held messages, so Faust's next commit covers exactly what the changelogs
hold: a restarted worker recovers callers and flags as they stood after the
same message, and decides the messages it reads again as the first time. A
checkpoint is due when the oldest held message is ``interval_s`` old or the
callers' overlay holds ``max_rows`` callers; the
agent checks after every message and starts it in the background
(:meth:`Checkpointer.step`), and a timer checks when traffic stops.

Revocation runs one checkpoint first, so the worker that takes a partition
over recovers its newest state; the held messages of the revoked partitions
are dropped unacknowledged (their offsets are no longer this worker's to
commit) and read again, idempotently, by the new owner.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from streams.state.write_behind import ChangelogWriter, WriteBehindTable

__all__ = ["CheckpointStats", "Checkpointer"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class CheckpointStats:
    """Running totals, for ``/status`` and the metrics."""

    checkpoints: int = 0
    rows: int = 0
    messages: int = 0
    failures: int = 0
    seconds: float = 0.0


class Checkpointer:
    """Holds applied messages until the state they produced is in the changelog."""

    def __init__(
        self,
        tables: list[tuple[WriteBehindTable, str]],
        writer: ChangelogWriter,
        ack: Callable[[Any], Awaitable[Any]],
        *,
        interval_s: float,
        max_rows: int,
    ) -> None:
        """``tables``: each table with its changelog topic; the first bounds the overlay."""
        self._tables, self._writer, self._ack = tables, writer, ack
        self._table = tables[0][0]
        self._interval_s, self._max_rows = interval_s, max_rows
        self._held: list[Any] = []
        self._oldest: float | None = None  # monotonic time the oldest held message was held
        self._lock = asyncio.Lock()
        self._running: asyncio.Future[bool] | None = None
        self.stats = CheckpointStats()
        # Set when the table could not give its rows (the feature stage lost
        # them): no checkpoint can succeed any more and the worker must restart.
        self.broken: Exception | None = None

    @property
    def held(self) -> int:
        """Messages applied and not yet acknowledged."""
        return len(self._held)

    @property
    def pending(self) -> int:
        """Rows written to the tables since the last checkpoint."""
        return sum(table.pending for table, _ in self._tables)

    def hold(self, event: Any) -> None:
        """Keep ``event`` unacknowledged until the next checkpoint."""
        if self._oldest is None:
            self._oldest = time.monotonic()
        self._held.append(event)

    def due(self) -> bool:
        """Whether a checkpoint should run now."""
        if self._table.pending >= self._max_rows:
            return True
        return self._oldest is not None and time.monotonic() - self._oldest >= self._interval_s

    async def step(self) -> None:
        """After each message: start a checkpoint in the background when one is due.

        The agent goes on applying messages while the broker takes the
        write (what it applies meanwhile goes to the next checkpoint). It
        waits only when a checkpoint is still running and another one's
        worth of callers is waiting, so the overlay stays bounded.
        """
        running = self._running
        if running is not None and not running.done():
            if self._table.pending >= self._max_rows:
                await running
            return
        if self.due():
            self._running = asyncio.ensure_future(self.run())

    async def run(self) -> bool:
        """Write the overlay, then acknowledge what it stands for; False if the write failed.

        On failure the records go back to the overlay and the messages stay
        held, so the next checkpoint tries again and nothing is committed
        past state the changelog lacks. If the table cannot give its rows at
        all, checkpoints stop for good (:attr:`broken`).
        """
        async with self._lock:
            if self.broken is not None:
                return False
            try:
                taken = [(table, topic, table.take()) for table, topic in self._tables]
            except Exception as error:  # the state to write is gone: nothing may be acked
                self.broken = error
                logger.error("checkpoints stopped: the caller table cannot give its rows: %s",
                             error)
                return False
            held, self._held, oldest, self._oldest = self._held, [], self._oldest, None
            started = time.perf_counter()
            written = 0  # tables whose records the broker has
            try:
                for _, topic, records in taken:
                    if records:
                        await self._writer.write(topic, records)
                    written += 1
            except Exception as error:  # the broker's errors vary; all mean "not stored"
                for table, _, records in taken[written:]:  # written again next time
                    table.restore(records)
                self._held = held + self._held
                self._oldest = oldest if oldest is not None else self._oldest
                self.stats.failures += 1
                logger.error("checkpoint of %d rows failed (retried): %r",
                             sum(len(records) for _, _, records in taken), error)
                return False
            records = taken[0][2]
            for event in held:
                await self._ack(event)
            self.stats.checkpoints += 1
            self.stats.rows += len(records)
            self.stats.messages += len(held)
            self.stats.seconds += time.perf_counter() - started
            return True

    async def revoke(self, keep: Callable[[int], bool]) -> int:
        """Checkpoint everything, except the acks of partitions ``keep`` rejects; how many dropped.

        Called when partitions are revoked: the changelog then holds this
        worker's newest state for the new owner to recover.
        """
        async with self._lock:
            kept = [event for event in self._held if keep(event.message.partition)]
            dropped, self._held = len(self._held) - len(kept), kept
        await self.run()
        return dropped
