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

__all__ = ["count_into_rings"]

_EMPTY = np.uint32(0xFFFFFFFF)
_CAP = 255


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
            _kmv_add(kmv_hash[record], kmv_count[record], callee_hash[i], k)
    return n, free_top


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _kmv_add(
    hashes: NDArray[np.uint32], counts: NDArray[np.uint8], value: np.uint32, k: int
) -> None:
    """Add one sighting of ``value`` to a bottom-k sketch (ascending, padded with empties)."""
    if value == _EMPTY:
        return
    at = 0
    while at < k and hashes[at] < value:
        at += 1
    if at == k:
        return  # larger than the k kept
    if hashes[at] == value:
        if counts[at] < _CAP:
            counts[at] += 1
        return
    for j in range(k - 1, at, -1):  # make room; the largest falls off
        hashes[j] = hashes[j - 1]
        counts[j] = counts[j - 1]
    hashes[at] = value
    counts[at] = 1
