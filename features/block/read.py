"""Feature vectors of many rows of a :class:`~features.block.engine.CallerBlock` at once.

What :meth:`features.reference.state.CallerState.features` computes for one caller,
for every requested row in one pass per window: the slots whose bucket lies
in the window (oldest first), the chain of the buffered calls in it and the
held complaints are folded as :func:`features.aggregate.combine` -- the
offline path's function -- folds them (one compiled pass,
:func:`features.block.window_kernel.combine_windows`), then read by
:func:`features.vector.window_features`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from features.aggregate import CALLS, Aggregates
from features.block.layout import HELD_COMPLAINTS, NO_BUCKET
from features.block.window_kernel import called_back, combine_windows
from features.config import WindowSpec
from features.sketch import (
    BLOOM_HASHES,
    inbound_numbers,
    inbox_counts,
)
from features.vector import reciprocity, window_features

if TYPE_CHECKING:
    from features.block.engine import CallerBlock

__all__ = ["block_features", "window_aggregates", "window_calls"]

Int64Array = NDArray[np.int64]


def block_features(
    block: CallerBlock, rows: Int64Array, end_ms: Int64Array | int | None = None
) -> NDArray[np.float64]:
    """``(len(rows), len(WINDOW_FEATURE_NAMES))``: each row's window features.

    ``end_ms``: one end for all rows, one per row, or None for each row's
    :meth:`~features.block.engine.CallerBlock.default_end_ms`.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if end_ms is None:
        ends = block.default_end_ms(rows)
    else:
        ends = np.broadcast_to(np.asarray(end_ms, dtype=np.int64), rows.shape)
    halves = []
    inbound = _inbound_callers(block, rows, ends)
    for name in ("short", "long"):
        aggregate = window_aggregates(block, rows, ends, name)
        halves.append(window_features(
            aggregate, _reciprocity(block, rows, ends, aggregate), inbound
        ))
    return np.hstack(halves)


def window_aggregates(
    block: CallerBlock, rows: Int64Array, end_ms: Int64Array, name: str
) -> Aggregates:
    """One window's aggregate per row (as ``CallerState.window_aggregate``)."""
    config = block.config
    index = 0 if name == "short" else 1
    spec, first_column = _window(block, index)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    last = -(-np.asarray(end_ms, dtype=np.int64) // spec.hop_ms)
    first = last - spec.buckets_per_window
    columns = block.callers.columns
    ring = slice(first_column, first_column + spec.slots)
    held = columns["bucket"][rows, ring]
    newest = held.max(axis=1)
    too_old = (newest != NO_BUCKET) & (first <= newest - spec.slots)
    if too_old.any():
        raise ValueError(
            f"the {name} window ending at {int(end_ms[np.argmax(too_old)])} is older than the "
            "ring holds (its first bucket may have been reused); evaluate windows before the "
            "watermark passes their end plus the grace"
        )
    result = Aggregates.empty(len(rows), config)
    pools = block.slots.columns
    combine_windows(
        rows, first, last, spec.hop_ms, first_column, spec.slots,
        columns["bucket"], columns["slot"], pools["counters"], pools["kmv_hash"],
        pools["kmv_count"], pools["segment_hist"], columns["pending_ms"],
        columns["pending_key"], columns["pending_n"],
        _held_complaints(block, rows, first, np.minimum(last * spec.hop_ms, end_ms), spec),
        config.sequential_max_gap,
        result.counters, result.kmv_hash, result.kmv_count, result.segment_hist,
    )
    return result


def window_calls(block: CallerBlock, rows: Int64Array, end_ms: Int64Array, name: str) -> Int64Array:
    """Each row's ``calls`` counter of one window: what :func:`window_aggregates` would sum.

    Only slots count calls (the buffered calls' chain and the held
    complaints add none), so this reads the ring alone: a cheap test of
    ``call_volume`` before computing whole feature vectors.
    """
    spec, first_column = _window(block, 0 if name == "short" else 1)
    last = -(-end_ms // spec.hop_ms)
    first = last - spec.buckets_per_window
    columns = block.callers.columns
    ring = slice(first_column, first_column + spec.slots)
    held = columns["bucket"][rows, ring]
    inside = (held >= first[:, None]) & (held < last[:, None])
    # A ring slot without a record holds NO_BUCKET, never inside: its -1 reads any record.
    calls = block.slots.columns["counters"][columns["slot"][rows, ring], CALLS]
    return np.where(inside, calls, 0).sum(axis=1)


def _window(block: CallerBlock, index: int) -> tuple[WindowSpec, int]:
    windows = block.config.windows
    return windows[index], 0 if index == 0 else windows[0].slots


def _held_complaints(
    block: CallerBlock, rows: Int64Array, first: Int64Array, end_ms: Int64Array, spec: WindowSpec
) -> Int64Array:
    """Complaints held ahead of the watermark in each row's window before ``end_ms``.

    As ``CallerState.window_aggregate``: up to the end, not the long bucket's end.
    """
    columns = block.callers.columns
    totals = np.zeros(len(rows), np.int64)
    count = columns["held_n"][rows].astype(np.int64)
    if not count.any():
        return totals
    with_held = np.flatnonzero(count)
    short_hop_ms = block.config.short_hop_s * 1000
    buckets = columns["held_bucket"][rows[with_held]]
    low = first[with_held] * spec.hop_ms // short_hop_ms
    high = -(-end_ms[with_held] // short_hop_ms)
    inside = (
        (np.arange(HELD_COMPLAINTS) < count[with_held, None])
        & (buckets >= low[:, None])
        & (buckets < high[:, None])
    )
    totals[with_held] = np.where(inside, columns["held_count"][rows[with_held]], 0).sum(axis=1)
    return totals


def _reciprocity(
    block: CallerBlock, rows: Int64Array, end_ms: Int64Array, aggregate: Aggregates
) -> NDArray[np.float64]:
    """Share of each row's sampled callees that called back before the window's end.

    Called back: in the inbound filter, or in the inbox with a time from the
    start of the previous inbound generation to ``end_ms`` (as
    ``CallerState._reciprocity``); one compiled pass
    (:func:`features.block.window_kernel.called_back`).
    """
    columns = block.callers.columns
    back, sampled = called_back(
        np.ascontiguousarray(rows, dtype=np.int64),
        aggregate.kmv_hash,
        np.ascontiguousarray(end_ms, dtype=np.int64),
        np.ascontiguousarray(block.config.inbound_generation(end_ms), dtype=np.int64),
        columns["inbound_generation"],
        columns["inbound"],
        columns["inbox_ms"],
        columns["inbox_hash"],
        columns["inbox_n"],
        block.config.inbound_generation_s * 1000,
        BLOOM_HASHES,
    )
    return reciprocity(back, sampled)


def _inbound_callers(
    block: CallerBlock, rows: Int64Array, end_ms: Int64Array
) -> NDArray[np.float64]:
    """Numbers that called each row's caller in the inbound horizon (as ``CallerState``)."""
    columns = block.callers.columns
    generation_ms = block.config.inbound_generation_s * 1000
    wanted = np.asarray(block.config.inbound_generation(end_ms), np.int64)
    times = columns["inbox_ms"][rows]
    waiting = columns["inbox_n"][rows].astype(np.int64)
    live = (np.arange(times.shape[1]) < waiting[:, None]) & inbox_counts(
        times, end_ms[:, None], wanted[:, None], generation_ms
    )
    return inbound_numbers(
        columns["inbound"][rows],
        columns["inbound_generation"][rows].astype(np.int64),
        wanted,
        times,
        columns["inbox_hash"][rows],
        live,
        generation_ms,
    )
