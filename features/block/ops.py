"""Grouped array operations behind :mod:`features.block.engine`.

The per-caller state applies its calls one caller and one bucket at a time
(:func:`features.aggregate.merge_row`); the block does the same arithmetic
for every (caller, slot) of a batch at once, with these groupings (and the
compiled passes of :mod:`features.block.ring_kernel`).
:func:`segmented_cummax`, a running maximum that restarts at each group, has
no twin in :mod:`features.aggregate`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from features.runs import run_lengths

__all__ = [
    "distinct_rows",
    "group_ids",
    "rank_in_group",
    "segmented_cummax",
]

Int64Array = NDArray[np.int64]


def group_ids(starts: NDArray[np.intp], size: int) -> NDArray[np.intp]:
    """The group of each row, from the groups' first rows."""
    return np.repeat(np.arange(len(starts)), run_lengths(starts, size))


def rank_in_group(starts: NDArray[np.intp], size: int) -> NDArray[np.intp]:
    """Each row's position within its group (0 for the first row)."""
    return np.arange(size) - np.repeat(starts, run_lengths(starts, size))


# distinct_rows sorts the rows instead of marking the pool when they are fewer than
# 1/_SORT_BELOW of it: the mask and its running count cost a pass over the pool (140 us
# a call for a 125-CDR message on 200,000 rows); sorting cost less up to about a third
# of the pool (20,000 rows of 50,000: 0.75 ms sorted, 1.3 ms marked).
_SORT_BELOW = 4


def distinct_rows(
    rows: NDArray[np.integer], size: int, *, inverse: bool = False
) -> tuple[Int64Array, NDArray[np.intp]]:
    """``np.unique(rows)`` for record indices below ``size``, by marking a mask.

    With ``inverse``, also each row's position in the result (else an empty
    array). Cheaper than a sort or a hash when the rows are many and
    ``size`` is the pool's capacity.

    >>> distinct_rows(np.array([5, 2, 5]), 8, inverse=True)[1].tolist()
    [1, 0, 1]
    """
    if len(rows) * _SORT_BELOW < size:
        # Few rows of a large pool: a sort of the rows costs less than a pass over the pool.
        if not inverse:
            return np.unique(rows).astype(np.int64, copy=False), np.empty(0, np.intp)
        unique, positions = np.unique(rows, return_inverse=True)
        return unique.astype(np.int64, copy=False), positions.astype(np.intp, copy=False)
    marked = np.zeros(size, dtype=bool)
    marked[rows] = True
    unique = np.flatnonzero(marked)
    if not inverse:
        return unique, np.empty(0, np.intp)
    position = np.cumsum(marked) - 1
    return unique, position[rows]


def segmented_cummax(values: Int64Array, starts: NDArray[np.intp]) -> Int64Array:
    """Running maximum of ``values`` that restarts at every group start.

    >>> segmented_cummax(np.array([3, 1, 4, 1, 2]), np.array([0, 3])).tolist()
    [3, 3, 4, 1, 2]
    """
    size = len(values)
    if size == 0:
        return values.copy()
    low, high = int(values.min()), int(values.max())
    span = high - low + 1
    groups = group_ids(starts, size)
    if span * len(starts) < 2**62:
        # Lift each group above the previous ones: one plain accumulate.
        lift = groups.astype(np.int64) * span
        return np.maximum.accumulate(values - low + lift) - lift + low
    result = values.copy()
    for start, length in zip(starts.tolist(), run_lengths(starts, size).tolist(), strict=True):
        np.maximum.accumulate(values[start : start + length], out=result[start : start + length])
    return result
