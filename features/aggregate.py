"""Mergeable aggregates: the sufficient statistics behind every feature.

An :class:`Aggregates` is a small table, one row per aggregate (a bucket of
one caller, or a whole window), holding integer counters, a bottom-k callee
sketch and a segment histogram (see :mod:`features.sketch`). The same three
functions build and merge aggregates for the streaming state and for the
offline path:

* :func:`aggregate_calls` -- rows of calls grouped into aggregates, all
  groups in one vectorised pass;
* :func:`combine` -- consecutive aggregates of each group folded into one,
  in time order (for a window: its buckets, oldest first);
* :func:`merge_row` -- one aggregate merged into a row of another table in
  place (the streaming ring's hot path; same arithmetic as :func:`combine`).

Counters are integers (talk time and gaps in milliseconds), so sums do not
depend on order and both paths agree to the bit.

**The call chain.** Gaps and sequential dialling need the calls in event
order. Each aggregate keeps, for the calls it has *chained*, how many
(``chain_len``), the number, sum and sum of squares of the gaps between
successive calls, how many successive pairs were sequential, and the first
and last call (time and callee key). Chaining ``A`` then ``B`` adds the
boundary pair (A's last call, B's first call). If ``B`` starts before ``A``
ends (only when the streaming state had to chain a call before a late one
arrived), the boundary pair is skipped: the calls still count in
``chain_len`` but contribute no gap and no pair, and the merged chain runs
from the earlier first call to the later last call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from features.batch import EVENT_COLUMNS, CallBatch, segment_key, segment_keys
from features.config import FeatureConfig
from features.runs import run_lengths, run_starts
from features.sketch import EMPTY_HASH, kmv_union, kmv_union_groups

__all__ = [
    "ADDITIVE",
    "COUNTER_NAMES",
    "Aggregates",
    "aggregate_calls",
    "chain_calls",
    "combine",
    "is_sequential",
    "merge_row",
]

COUNTER_NAMES = (
    *EVENT_COLUMNS,
    "complaints",
    "chain_len",
    "gap_count",
    "gap_sum_ms",
    "gap_sumsq_ms2",
    "sequential_pairs",
    "first_ms",
    "last_ms",
    "first_key",
    "last_key",
)
(
    CALLS,
    ANSWERED,
    SHORT_ANSWERED,
    ONE_RING,
    NIGHT,
    TALK_MS,
    COMPLAINTS,
    CHAIN_LEN,
    GAP_COUNT,
    GAP_SUM_MS,
    GAP_SUMSQ_MS2,
    SEQUENTIAL_PAIRS,
    FIRST_MS,
    LAST_MS,
    FIRST_KEY,
    LAST_KEY,
) = range(len(COUNTER_NAMES))
ADDITIVE = slice(CALLS, SEQUENTIAL_PAIRS + 1)  # add on merge; the chain fields do not
_EVENTS = slice(CALLS, TALK_MS + 1)

Int64Array = NDArray[np.int64]


@dataclass(slots=True)
class Aggregates:
    """``n`` aggregates: counters ``(n, 16)``, sketch ``(n, k)``, histogram ``(n, B)``."""

    counters: Int64Array
    kmv_hash: NDArray[np.uint32]
    kmv_count: NDArray[np.uint8]
    segment_hist: NDArray[np.uint32]

    @classmethod
    def empty(cls, n: int, config: FeatureConfig) -> Aggregates:
        """``n`` aggregates of nothing."""
        return cls(
            counters=np.zeros((n, len(COUNTER_NAMES)), dtype=np.int64),
            kmv_hash=np.full((n, config.kmv_k), EMPTY_HASH, dtype=np.uint32),
            kmv_count=np.zeros((n, config.kmv_k), dtype=np.uint8),
            segment_hist=np.zeros((n, config.segment_bins), dtype=np.uint32),
        )

    def __len__(self) -> int:
        return len(self.counters)

    def take(self, rows: NDArray[np.integer] | slice) -> Aggregates:
        """The aggregates at ``rows``, as a new table."""
        return Aggregates(
            self.counters[rows], self.kmv_hash[rows], self.kmv_count[rows], self.segment_hist[rows]
        )

    def concatenate(self, other: Aggregates) -> Aggregates:
        """These rows, then ``other``'s."""
        return Aggregates(
            np.concatenate((self.counters, other.counters)),
            np.concatenate((self.kmv_hash, other.kmv_hash)),
            np.concatenate((self.kmv_count, other.kmv_count)),
            np.concatenate((self.segment_hist, other.segment_hist)),
        )

    def clear(self, row: int) -> None:
        """Reset one row to the empty aggregate."""
        self.counters[row] = 0
        self.kmv_hash[row] = EMPTY_HASH
        self.kmv_count[row] = 0
        self.segment_hist[row] = 0

    def counter(self, name: str) -> Int64Array:
        """One counter column by its name in :data:`COUNTER_NAMES`."""
        return self.counters[:, COUNTER_NAMES.index(name)]


def is_sequential(
    previous: NDArray[np.integer], following: NDArray[np.integer], config: FeatureConfig
) -> NDArray[np.bool_]:
    """Whether each pair of successive callees looks like sequential dialling.

    Same segment and ``0 < |difference| <= sequential_max_gap``: a redial of
    the same number is not sequential, nor is a jump to another segment.
    """
    previous = np.asarray(previous, dtype=np.int64)
    following = np.asarray(following, dtype=np.int64)
    same_segment = segment_keys(previous.astype(np.uint64)) == segment_keys(
        following.astype(np.uint64)
    )
    distance = np.abs(following - previous)
    return same_segment & (distance > 0) & (distance <= config.sequential_max_gap)


def aggregate_calls(
    calls: CallBatch,
    group_starts: NDArray[np.intp],
    config: FeatureConfig,
    *,
    chain: bool = True,
) -> Aggregates:
    """One aggregate per group of calls, all groups at once.

    Rows must be sorted by group, and within a group by ``(start_ms,
    callee)``; ``group_starts`` holds each group's first row (groups are not
    empty). ``chain=False`` leaves the chain fields empty: the streaming
    state chains calls later, once their order is settled (see
    :func:`chain_calls`).
    """
    n_rows, n_groups = len(calls), len(group_starts)
    if n_rows == 0:
        return Aggregates.empty(n_groups, config)
    if chain:
        result = chain_calls(calls.start_ms, calls.callee, group_starts, config)
    else:
        result = Aggregates.empty(n_groups, config)
    lengths = run_lengths(group_starts, n_rows)
    result.counters[:, _EVENTS] = np.add.reduceat(calls.flags, group_starts, axis=0)
    group_of_row = np.repeat(np.arange(n_groups), lengths)
    result.kmv_hash, result.kmv_count = kmv_union_groups(
        group_of_row, calls.callee_hash, np.ones(n_rows, np.int64), n_groups, config.kmv_k
    )
    bins = config.segment_bins
    cells = group_of_row * bins + calls.segment_bin
    histogram = np.bincount(cells, minlength=n_groups * bins).reshape(n_groups, bins)
    result.segment_hist[:] = histogram
    return result


def chain_calls(
    start_ms: Int64Array,
    callee: NDArray[np.uint64],
    group_starts: NDArray[np.intp],
    config: FeatureConfig,
) -> Aggregates:
    """Aggregates holding only the call chain of each group (rows sorted as above)."""
    result = Aggregates.empty(len(group_starts), config)
    if len(start_ms):
        lengths = run_lengths(group_starts, len(start_ms))
        _chain_calls(result.counters, start_ms, callee, group_starts, lengths, config)
    return result


def _chain_calls(
    counters: Int64Array,
    start_ms: Int64Array,
    callee: NDArray[np.uint64],
    group_starts: NDArray[np.intp],
    lengths: NDArray[np.intp],
    config: FeatureConfig,
) -> None:
    keys = callee.astype(np.int64)
    group_ends = group_starts + lengths - 1
    # Pair i joins row i and row i + 1; the last row of each group pairs with nothing.
    in_group = np.ones(len(start_ms), dtype=bool)
    in_group[group_ends] = False
    gaps = np.zeros(len(start_ms), dtype=np.int64)
    sequential = np.zeros(len(start_ms), dtype=np.int64)
    gaps[:-1] = np.diff(start_ms)
    sequential[:-1] = is_sequential(keys[:-1], keys[1:], config)
    gaps[~in_group] = 0
    sequential[~in_group] = 0
    counters[:, CHAIN_LEN] = lengths
    counters[:, GAP_COUNT] = lengths - 1
    counters[:, GAP_SUM_MS] = np.add.reduceat(gaps, group_starts)
    counters[:, GAP_SUMSQ_MS2] = np.add.reduceat(gaps * gaps, group_starts)
    counters[:, SEQUENTIAL_PAIRS] = np.add.reduceat(sequential, group_starts)
    counters[:, FIRST_MS] = start_ms[group_starts]
    counters[:, LAST_MS] = start_ms[group_ends]
    counters[:, FIRST_KEY] = keys[group_starts]
    counters[:, LAST_KEY] = keys[group_ends]


def combine(
    aggregates: Aggregates, group_starts: NDArray[np.intp], config: FeatureConfig
) -> Aggregates:
    """Fold each group of consecutive rows (oldest first) into one aggregate."""
    n_rows, n_groups = len(aggregates), len(group_starts)
    result = Aggregates.empty(n_groups, config)
    if n_rows == 0:
        return result
    lengths = run_lengths(group_starts, n_rows)
    counters = aggregates.counters
    result.counters[:, ADDITIVE] = np.add.reduceat(counters[:, ADDITIVE], group_starts, axis=0)
    _combine_chains(result.counters, counters, np.repeat(np.arange(n_groups), lengths), config)
    group_of_row = np.repeat(np.arange(n_groups), lengths)
    k = config.kmv_k
    result.kmv_hash, result.kmv_count = kmv_union_groups(
        np.repeat(group_of_row, k),
        aggregates.kmv_hash.ravel(),
        aggregates.kmv_count.ravel(),
        n_groups,
        k,
    )
    result.segment_hist[:] = np.add.reduceat(aggregates.segment_hist, group_starts, axis=0)
    return result


def _combine_chains(
    out: Int64Array, counters: Int64Array, group_of_row: NDArray[np.intp], config: FeatureConfig
) -> None:
    chained = np.flatnonzero(counters[:, CHAIN_LEN] > 0)
    if len(chained) == 0:
        return
    rows, groups = counters[chained], group_of_row[chained]
    boundary_gap = rows[1:, FIRST_MS] - rows[:-1, LAST_MS]
    joined = (groups[1:] == groups[:-1]) & (boundary_gap >= 0)
    sequential = joined & is_sequential(rows[:-1, LAST_KEY], rows[1:, FIRST_KEY], config)
    joined_groups = groups[1:][joined]
    gaps = boundary_gap[joined]
    np.add.at(out[:, GAP_COUNT], joined_groups, 1)
    np.add.at(out[:, GAP_SUM_MS], joined_groups, gaps)
    np.add.at(out[:, GAP_SUMSQ_MS2], joined_groups, gaps * gaps)
    np.add.at(out[:, SEQUENTIAL_PAIRS], groups[1:][sequential], 1)
    # The earliest first call and the latest last call (ties: the later row
    # for the last call), which are the first and last rows unless chains overlap.
    # lexsort is stable: ties keep row order, as merge_row does.
    by_first = np.lexsort((rows[:, FIRST_MS], groups))
    by_last = np.lexsort((rows[:, LAST_MS], groups))
    first = by_first[run_starts(groups[by_first])]
    last_starts = run_starts(groups[by_last])
    last = by_last[last_starts + run_lengths(last_starts, len(rows)) - 1]
    out[groups[first], FIRST_MS] = rows[first, FIRST_MS]
    out[groups[first], FIRST_KEY] = rows[first, FIRST_KEY]
    out[groups[last], LAST_MS] = rows[last, LAST_MS]
    out[groups[last], LAST_KEY] = rows[last, LAST_KEY]


def merge_row(
    target: Aggregates, row: int, source: Aggregates, source_row: int, config: FeatureConfig
) -> None:
    """Merge ``source[source_row]`` into ``target[row]`` in place; the source is the later one.

    The arithmetic of :func:`combine` for two rows, without its grouping
    overhead: this is the streaming state's hot path.
    """
    into = target.counters[row]
    added = source.counters[source_row]
    chain_before = int(into[CHAIN_LEN])
    into[ADDITIVE] += added[ADDITIVE]
    if added[CHAIN_LEN] > 0:
        if chain_before == 0:
            into[FIRST_MS:] = added[FIRST_MS:]
        else:
            gap = int(added[FIRST_MS]) - int(into[LAST_MS])
            if gap >= 0:
                into[GAP_COUNT] += 1
                into[GAP_SUM_MS] += gap
                into[GAP_SUMSQ_MS2] += gap * gap
                into[SEQUENTIAL_PAIRS] += _pair_is_sequential(
                    int(into[LAST_KEY]), int(added[FIRST_KEY]), config
                )
            if added[FIRST_MS] < into[FIRST_MS]:
                into[FIRST_MS] = added[FIRST_MS]
                into[FIRST_KEY] = added[FIRST_KEY]
            if added[LAST_MS] >= into[LAST_MS]:
                into[LAST_MS] = added[LAST_MS]
                into[LAST_KEY] = added[LAST_KEY]
    if added[CALLS] > 0:
        target.kmv_hash[row], target.kmv_count[row] = kmv_union(
            target.kmv_hash[row],
            target.kmv_count[row],
            source.kmv_hash[source_row],
            source.kmv_count[source_row],
            config.kmv_k,
        )
        target.segment_hist[row] += source.segment_hist[source_row]


def _pair_is_sequential(previous: int, following: int, config: FeatureConfig) -> bool:
    # Scalar twin of is_sequential, for merge_row; tested against it.
    distance = abs(following - previous)
    return (
        segment_key(previous) == segment_key(following)
        and 0 < distance <= config.sequential_max_gap
    )
