"""The compiled part of :meth:`features.block.engine.CallerBlock.update`: calls into ring slots.

Each accepted call lands in the bucket of each window it falls in: the ring
cell of that bucket is claimed when the call's bucket is newer than the one
it holds (the slot record is cleared, or one is taken from the pool's free
stack), a call for an older bucket is dropped, and a call that lands adds
its flags to the slot's counters, its segment to the histogram and its
callee to the bottom-k sketch (:mod:`features.sketch`: the ``k`` smallest
distinct hashes, counts saturating at 255).

Calls go one by one, in the order given; the result is the one the numpy
version of this step gives (claims per cell by the newest bucket, then
:func:`features.sketch.kmv_union_groups`): a newer bucket clears what an
older one added, and a callee kept among the ``k`` smallest at the end was
among them from its first call on, so its count is whole. Only the slot
records a row's ring refers to differ, never what they hold. numba compiles
it once and caches it beside this module; no Python object is touched inside.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

from features.aggregate import (
    CHAIN_LEN,
    FIRST_KEY,
    FIRST_MS,
    GAP_COUNT,
    GAP_SUM_MS,
    GAP_SUMSQ_MS2,
    LAST_KEY,
    LAST_MS,
    SEQUENTIAL_PAIRS,
)

__all__ = [
    "chain_into_rings",
    "count_into_rings",
    "join_chain",
    "kmv_insert",
    "sequential_pair",
]

_EMPTY = np.uint32(0xFFFFFFFF)
_CAP = 255
_SHORT_CODE_LIMIT = 10_000_000  # as features.batch.segment_keys: service codes are their own
_SUFFIX = 10_000


@njit(cache=True, nogil=True)  # type: ignore[misc]  # numba ships no type information
def count_into_rings(  # noqa: PLR0913 - the columns one step touches
    start: int,
    rows: NDArray[np.int64],
    start_ms: NDArray[np.int64],
    flags: NDArray[np.int64],
    segment_bin: NDArray[np.intp],
    callee_hash: NDArray[np.uint32],
    hops_ms: NDArray[np.int64],
    ring_lengths: NDArray[np.int64],
    first_columns: NDArray[np.int64],
    ring_slots: int,
    held: NDArray[np.int64],
    records: NDArray[np.int32],
    counters: NDArray[np.int64],
    segment_hist: NDArray[np.uint32],
    kmv_hash: NDArray[np.uint32],
    kmv_count: NDArray[np.uint8],
    free: NDArray[np.int64],
    free_top: int,
) -> tuple[int, int]:
    """Count calls ``start:`` into their rings; ``(next call, free_top)``.

    ``held`` and ``records`` are the callers' ``bucket`` and ``slot``
    columns flattened (``row * ring_slots + column``). ``free[:free_top]``
    is the slot pool's stack of free records (fresh, at their fill values),
    popped from the top. Stops before a call that needs a record when the
    stack is empty: the caller grows the pool and calls again from there.
    """
    events = flags.shape[1]
    k = kmv_hash.shape[1]
    n = len(rows)
    for i in range(start, n):
        # A call needs at most one fresh record per window.
        if free_top < len(hops_ms):
            return i, free_top
        for w in range(len(hops_ms)):
            bucket = start_ms[i] // hops_ms[w]
            cell = rows[i] * ring_slots + first_columns[w] + bucket % ring_lengths[w]
            if bucket < held[cell]:
                continue  # an older bucket than the cell holds: dropped
            record = records[cell]
            if bucket > held[cell]:
                held[cell] = bucket
                if record >= 0:
                    counters[record, :] = 0
                    segment_hist[record, :] = 0
                    kmv_hash[record, :] = _EMPTY
                    kmv_count[record, :] = 0
                else:
                    free_top -= 1
                    record = free[free_top]
                    records[cell] = record
            for e in range(events):
                counters[record, e] += flags[i, e]
            segment_hist[record, segment_bin[i]] += 1
            if callee_hash[i] != _EMPTY:
                kmv_insert(kmv_hash[record], kmv_count[record], callee_hash[i], 1, k)
    return n, free_top


@njit(cache=True, nogil=True)  # type: ignore[misc]
def kmv_insert(
    hashes: NDArray[np.uint32], counts: NDArray[np.uint8], value: np.uint32, count: int, k: int
) -> bool:
    """Add ``count`` sightings of ``value`` to a bottom-k sketch (ascending, padded with empties).

    False when ``value`` is larger than the ``k`` kept (so is anything larger).
    """
    at = 0
    while at < k and hashes[at] < value:
        at += 1
    if at == k:
        return False
    if hashes[at] == value:
        counts[at] = min(_CAP, int(counts[at]) + count)
        return True
    for j in range(k - 1, at, -1):  # make room; the largest falls off
        hashes[j] = hashes[j - 1]
        counts[j] = counts[j - 1]
    hashes[at] = value
    counts[at] = min(_CAP, count)
    return True


@njit(cache=True, nogil=True)  # type: ignore[misc]
def join_chain(  # noqa: PLR0913
    into: NDArray[np.int64],
    chained: bool,
    previous_last_ms: int,
    previous_last_key: int,
    first_ms: int,
    last_ms: int,
    first_key: int,
    last_key: int,
    max_gap: int,
) -> None:
    """Join a part's chain (its sums already added to ``into``) to the chain before it.

    The gap from the previous chain's last call counts when it is not
    negative, with whether the pair looks sequential; the earliest first
    call (ties: the earlier) and the latest last call (ties: the later part)
    are kept. ``into`` holds the counters of :mod:`features.aggregate`.
    """
    if not chained:
        into[FIRST_MS], into[FIRST_KEY] = first_ms, first_key
        into[LAST_MS], into[LAST_KEY] = last_ms, last_key
        return
    gap = first_ms - previous_last_ms
    if gap >= 0:
        into[GAP_COUNT] += 1
        into[GAP_SUM_MS] += gap
        into[GAP_SUMSQ_MS2] += gap * gap
        into[SEQUENTIAL_PAIRS] += sequential_pair(previous_last_key, first_key, max_gap)
    if first_ms < into[FIRST_MS]:
        into[FIRST_MS], into[FIRST_KEY] = first_ms, first_key
    if last_ms >= into[LAST_MS]:
        into[LAST_MS], into[LAST_KEY] = last_ms, last_key


@njit(cache=True, nogil=True)  # type: ignore[misc]
def chain_into_rings(  # noqa: PLR0913 - the columns one step touches
    rows: NDArray[np.int64],
    start_ms: NDArray[np.int64],
    callee: NDArray[np.int64],
    short_hop_ms: int,
    max_gap: int,
    hops_ms: NDArray[np.int64],
    ring_lengths: NDArray[np.int64],
    first_columns: NDArray[np.int64],
    ring_slots: int,
    held: NDArray[np.int64],
    records: NDArray[np.int32],
    counters: NDArray[np.int64],
) -> None:
    """Chain settled calls (sorted by caller, time, callee) into the buckets that hold them.

    Calls of one caller and one short bucket form a part (their own gaps and
    sequential pairs); each part is merged, in order, into the chain of every
    window's bucket that still holds its first call's bucket, as
    :func:`features.aggregate.merge_row` merges a later row's chain
    (:func:`join_chain`, measured from the chain's latest call so far).
    """
    n = len(rows)
    i = 0
    while i < n:
        # One part: calls i..j-1 of one caller in one short bucket.
        row, bucket = rows[i], start_ms[i] // short_hop_ms
        gaps = 0
        gap_sum = 0
        gap_sumsq = 0
        pairs = 0
        j = i + 1
        while j < n and rows[j] == row and start_ms[j] // short_hop_ms == bucket:
            gap = start_ms[j] - start_ms[j - 1]
            gaps += 1
            gap_sum += gap
            gap_sumsq += gap * gap
            pairs += sequential_pair(callee[j - 1], callee[j], max_gap)
            j += 1
        for w in range(len(hops_ms)):
            window_bucket = start_ms[i] // hops_ms[w]
            cell = row * ring_slots + first_columns[w] + window_bucket % ring_lengths[w]
            if held[cell] != window_bucket:
                continue  # the bucket expired before the calls settled
            into = counters[records[cell]]
            chained = into[CHAIN_LEN] > 0
            into[CHAIN_LEN] += j - i
            into[GAP_COUNT] += gaps
            into[GAP_SUM_MS] += gap_sum
            into[GAP_SUMSQ_MS2] += gap_sumsq
            into[SEQUENTIAL_PAIRS] += pairs
            join_chain(into, chained, into[LAST_MS], into[LAST_KEY], start_ms[i],
                       start_ms[j - 1], callee[i], callee[j - 1], max_gap)
        i = j


@njit(cache=True, nogil=True)  # type: ignore[misc]
def sequential_pair(previous: int, following: int, max_gap: int) -> int:
    """1 if two successive callees look like sequential dialling (see ``is_sequential``)."""
    distance = abs(following - previous)
    same = _segment(previous) == _segment(following)
    return 1 if same and 0 < distance <= max_gap else 0


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _segment(key: int) -> int:
    return key if key < _SHORT_CODE_LIMIT else key // _SUFFIX
