"""The feature stage: apply one ``cdr.by_caller`` message to per-caller state.

Pure of Faust: it reads and writes a ``MutableMapping[str, bytes]`` (the
Faust table in the worker, a dict in tests), so the agent stays a thin loop.

Emission policy (which callers go on to scoring, :class:`EmissionPolicy`):
after a message, every caller with newly accepted calls is a candidate. A
*burst* (at least ``min_calls`` calls in the short window) is emitted once
``emit_interval_s`` of event time has passed since the caller's last
emission; a *steady* caller (at least ``min_long_calls`` calls in the long
window) once ``steady_interval_s`` has passed. Never-emitted callers go at
once. So a burst is scored as soon as it shows, a caller dialling a few
numbers an hour all day long is scored about once per short hop while it
keeps calling, an occasional caller is never scored, and an idle caller is
not re-scored: its flag, if any, lapses by the flag lifecycle
(:mod:`models.decisions`). Training keeps the rows this rule would score
(:mod:`models.dataset`).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from features.batch import CallBatch, callee_keys
from features.config import FeatureConfig
from features.vector import FEATURE_NAMES
from streams.caller_record import CallerRecord, fingerprints
from streams.wire import CdrColumns, RoutedBatch

__all__ = ["Emission", "EmissionPolicy", "FeatureStage", "StageStats"]

_SHORT_VOLUME = FEATURE_NAMES.index("short_call_volume")
_LONG_VOLUME = FEATURE_NAMES.index("long_call_volume")


@dataclass(frozen=True, slots=True)
class EmissionPolicy:
    """When a caller's feature vector goes on to scoring (see the module doc).

    >>> policy = EmissionPolicy()
    >>> policy.selects(
    ...     watermark_ms=np.array([600_000, 600_000, 600_000, 600_000]),
    ...     last_emitted_ms=np.array([-1, 550_000, 550_000, 200_000]),
    ...     short_calls=np.array([5, 9, 1, 1]),
    ...     long_calls=np.array([5, 9, 30, 30]),
    ... ).tolist()
    [True, False, False, True]
    """

    emit_interval_s: float = 60.0
    min_calls: int = 5
    steady_interval_s: float = 300.0
    min_long_calls: int = 10

    def __post_init__(self) -> None:
        if self.emit_interval_s <= 0 or self.steady_interval_s <= 0:
            raise ValueError("emit_interval_s and steady_interval_s must be positive")
        if self.min_calls < 1 or self.min_long_calls < 1:
            raise ValueError("min_calls and min_long_calls must be at least 1")

    def may_be_due(
        self, watermark_ms: NDArray[np.int64], last_emitted_ms: NDArray[np.int64]
    ) -> NDArray[np.bool_]:
        """Whether either rule's clock allows an emission (a cheap test before counting)."""
        since = watermark_ms - last_emitted_ms
        shortest = min(self.emit_interval_s, self.steady_interval_s) * 1000
        return (last_emitted_ms < 0) | (since >= shortest)

    def selects(
        self,
        watermark_ms: NDArray[np.int64],
        last_emitted_ms: NDArray[np.int64],
        short_calls: NDArray[np.integer],
        long_calls: NDArray[np.integer],
    ) -> NDArray[np.bool_]:
        """Which callers are emitted now, given their clocks and window call counts."""
        never = last_emitted_ms < 0
        since = watermark_ms - last_emitted_ms
        burst = (never | (since >= self.emit_interval_s * 1000)) & (short_calls >= self.min_calls)
        steady = (never | (since >= self.steady_interval_s * 1000)) & (
            long_calls >= self.min_long_calls
        )
        return np.asarray(burst | steady, dtype=bool)


@dataclass(slots=True)
class StageStats:
    """Counts for one message (summed into the worker's metrics)."""

    calls: int = 0
    accepted: int = 0
    duplicates: int = 0
    replayed: int = 0
    late_accepted: int = 0
    late_dropped: int = 0
    complaints: int = 0
    inbound: int = 0
    callers: int = 0
    emitted: int = 0
    expired: int = 0  # callers deleted as idle (not per message: the worker's expiry)
    loaded: int = 0  # callers loaded from the table's bytes into the block (block engine)
    evicted: int = 0  # callers moved from the block to the table's bytes (the worker's expiry)

    def add(self, other: StageStats) -> None:
        """Accumulate ``other`` into this one."""
        for name in self.__slots__:  # type: ignore[attr-defined]
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(slots=True)
class Emission:
    """Feature vectors of the emitted callers, one row each."""

    numbers: list[str] = field(default_factory=list)
    window_end_ms: list[int] = field(default_factory=list)
    rows: list[NDArray[np.float64]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.numbers)

    def matrix(self) -> NDArray[np.float64]:
        """The rows stacked, columns in ``FEATURE_NAMES`` order."""
        if not self.rows:
            return np.zeros((0, len(FEATURE_NAMES)))
        return np.vstack(self.rows)


class FeatureStage:
    """Applies routed batches to a table of :class:`CallerRecord` bytes."""

    def __init__(self, config: FeatureConfig, policy: EmissionPolicy | None = None) -> None:
        self.config = config
        self.policy = policy or EmissionPolicy()

    def load(self, table: MutableMapping[str, bytes], number: str) -> CallerRecord | None:
        """The stored record of ``number``, if any."""
        raw = table.get(number)
        return None if raw is None else CallerRecord.from_bytes(raw, self.config)

    def snapshot(
        self, number: str, table: MutableMapping[str, bytes]
    ) -> dict[str, object] | None:
        """The caller's current features and clocks, read from the table."""
        record = self.load(table, number)
        if record is None:
            return None
        return {
            "window_end_ms": record.state.default_end_ms(),
            "watermark_ms": record.state.watermark_ms,
            "features": record.state.feature_dict(),
        }

    def apply(
        self, batch: RoutedBatch, offset: int, table: MutableMapping[str, bytes]
    ) -> tuple[StageStats, Emission]:
        """Apply one message read at ``offset``; write back every record it touched."""
        stats = StageStats()
        touched: dict[str, CallerRecord] = {}
        prior_offset: dict[str, int] = {}

        def record_of(number: str, create: bool) -> CallerRecord | None:
            record = touched.get(number)
            if record is None:
                record = self.load(table, number)
                if record is None and create:
                    record = CallerRecord.new(self.config)
                if record is not None:
                    touched[number] = record
                    prior_offset[number] = record.last_offset
            return record

        called = self._apply_calls(batch, offset, record_of, prior_offset, stats)
        self._apply_complaints(batch, offset, record_of, prior_offset, stats)
        self._apply_inbound(batch, record_of, stats)
        emission = self._emit(called, touched, stats)
        for number, record in touched.items():
            record.last_offset = max(record.last_offset, offset)
            table[number] = record.to_bytes()
        stats.callers = len(touched)
        return stats, emission

    def _apply_calls(self, batch, offset, record_of, prior_offset, stats) -> list[str]:  # type: ignore[no-untyped-def]
        calls = batch.calls
        stats.calls = len(calls)
        if not len(calls):
            return []
        columns = call_batch(calls, self.config)
        ids = fingerprints(calls.cdr_id)
        called = []
        for number, rows in _group_rows(calls.caller):
            record = record_of(number, True)
            if prior_offset[number] >= offset:
                stats.replayed += len(rows)
                continue
            fresh = rows[record.unseen(ids[rows])]
            stats.duplicates += len(rows) - len(fresh)
            if not len(fresh):
                continue
            kept = fresh[self._not_too_late(record, columns.start_ms[fresh])]
            update = record.state.update(columns.take(fresh))
            # Only calls that counted may enter the ring: old ids dropped as late
            # (a resent backlog) must not push out the ids of the latest calls,
            # whose resends would then be counted twice.
            record.remember(ids[kept])
            stats.accepted += update.accepted
            stats.late_accepted += update.late_accepted
            stats.late_dropped += update.late_dropped
            if update.accepted:
                called.append(number)
        return called

    def _not_too_late(self, record: CallerRecord, start_ms: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Mask of calls (arrival order) that ``CallerState.update`` will not drop as late."""
        met = np.empty_like(start_ms)
        met[0] = record.state.watermark_ms
        np.maximum(np.maximum.accumulate(start_ms)[:-1], record.state.watermark_ms, out=met[1:])
        return start_ms >= met - self.config.grace_s * 1000

    def _apply_complaints(self, batch, offset, record_of, prior_offset, stats) -> None:  # type: ignore[no-untyped-def]
        complaints = batch.complaints
        if not len(complaints):
            return
        times = np.asarray(complaints.time_ms, np.int64)
        for number, rows in _group_rows(complaints.number):
            record = record_of(number, True)
            if prior_offset[number] >= offset:
                continue
            stats.complaints += record.state.note_complaints(times[rows])

    def _apply_inbound(self, batch, record_of, stats) -> None:  # type: ignore[no-untyped-def]
        # Adding to a Bloom filter is idempotent: replays need no guard. Only
        # numbers that already have state learn who called them, which keeps
        # state to active callers.
        inbound = batch.inbound
        if not len(inbound):
            return
        times = np.asarray(inbound.time_ms, np.int64)
        keys = callee_keys(inbound.from_number)
        for number, rows in _group_rows(inbound.number):
            record = record_of(number, False)
            if record is not None:
                record.state.note_inbound(keys[rows], times[rows])
                stats.inbound += len(rows)

    def _emit(
        self, called: list[str], touched: dict[str, CallerRecord], stats: StageStats
    ) -> Emission:
        emission = Emission()
        for number in called:
            record = touched[number]
            watermark = np.array([record.state.watermark_ms])
            last_emitted = np.array([record.last_emitted_ms])
            if not self.policy.may_be_due(watermark, last_emitted)[0]:
                continue
            row = record.state.features()
            volumes = row[[_SHORT_VOLUME]], row[[_LONG_VOLUME]]
            if not self.policy.selects(watermark, last_emitted, *volumes)[0]:
                continue
            record.last_emitted_ms = record.state.watermark_ms
            emission.numbers.append(number)
            emission.window_end_ms.append(record.state.default_end_ms())
            emission.rows.append(row)
        stats.emitted = len(emission)
        return emission


def call_batch(calls: CdrColumns, config: FeatureConfig) -> CallBatch:
    """A message's calls as the feature core's columns (both engines build them so)."""
    return CallBatch.from_arrays(
        config,
        start_ms=np.asarray(calls.start_ms, np.int64),
        callee=callee_keys(calls.callee),
        duration_s=np.asarray(calls.duration_s, np.float64),
        answered=np.asarray(calls.disposition) == "ANSWERED",
        ring_s=np.array([np.nan if r is None else r for r in calls.ring_s], np.float64),
    )


def _group_rows(names: list[str]) -> list[tuple[str, NDArray[np.intp]]]:
    """Row indices of each distinct name, rows in arrival order."""
    values = np.asarray(names)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(order)]
    return [(str(ordered[s]), order[s:e]) for s, e in zip(starts, ends, strict=True)]
