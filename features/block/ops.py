"""Grouped array operations behind :mod:`features.block.engine`.

The per-caller state applies its calls one caller and one bucket at a time
(:func:`features.aggregate.merge_row`); the block does the same arithmetic
for every (caller, slot) of a batch at once. Two pieces have no twin in
:mod:`features.aggregate`:

* :func:`segmented_cummax` -- a running maximum that restarts at each group;
* :func:`fold_chains` -- the *sequential* merge of call chains into a slot,
  which is what :func:`~features.aggregate.merge_row` computes when it is
  applied once per chained group. It differs from
  :func:`~features.aggregate.combine` only when chains overlap (calls chained
  early by a full reorder buffer): the boundary gap is measured from the
  latest call chained so far, not from the previous part's last call.
"""

from __future__ import annotations

import numpy as np
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
    is_sequential,
)
from features.config import FeatureConfig
from features.runs import run_lengths, run_starts

__all__ = [
    "distinct_rows",
    "fold_chains",
    "group_ids",
    "lex_order",
    "rank_in_group",
    "segmented_cummax",
]

Int64Array = NDArray[np.int64]
_CHAIN_SUMS = slice(CHAIN_LEN, SEQUENTIAL_PAIRS + 1)


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


def lex_order(*keys: NDArray[np.integer]) -> NDArray[np.intp]:
    """``np.lexsort(keys)`` (last key primary, ties in input order), for integer keys.

    The most significant keys that fit together in 64 bits (by their value
    ranges) are packed into one key for one stable argsort. If keys are
    left over, they only matter between rows whose packed keys tie; without
    such ties the order is already lexsort's, else lexsort decides.

    >>> lex_order(np.array([2, 1, 0]), np.array([1, 0, 1])).tolist()
    [1, 2, 0]
    """
    size = len(keys[-1])
    if size == 0:
        return np.empty(0, np.intp)
    packed = np.zeros(size, dtype=np.uint64)
    bits_used = 0
    for index in range(len(keys) - 1, -1, -1):
        key = keys[index]
        low, high = int(key.min()), int(key.max())
        bits = (high - low).bit_length()
        if bits_used + bits > 64:
            break
        offset = key.astype(np.uint64) - np.uint64(low % 2**64)  # mod 2**64: exact below 2**64
        packed = (packed << np.uint64(bits)) | offset if bits else packed
        bits_used += bits
    else:
        return np.argsort(packed, kind="stable")
    order = np.argsort(packed, kind="stable")
    ordered = packed[order]
    if not (ordered[1:] == ordered[:-1]).any():
        return order
    return np.lexsort(keys)


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


def fold_chains(
    targets: NDArray[np.intp], items: Int64Array, config: FeatureConfig
) -> tuple[NDArray[np.intp], Int64Array]:
    """Merge chains one after another, as repeated ``merge_row`` calls would.

    ``items``: counter rows (the layout of :mod:`features.aggregate`) with a
    non-empty chain, grouped by ``targets`` (equal targets adjacent, in merge
    order). Returns the distinct targets and, for each, the chain columns
    (``CHAIN_LEN`` .. ``LAST_KEY``) of the merged chain; the event counters of
    the result are zero.
    """
    starts = run_starts(targets)
    size = len(items)
    merged = np.zeros((len(starts), items.shape[1]), dtype=np.int64)
    merged[:, _CHAIN_SUMS] = np.add.reduceat(items[:, _CHAIN_SUMS], starts, axis=0)
    first_of_group = np.zeros(size, dtype=bool)
    first_of_group[starts] = True
    # The chain's latest call before each item, and whose it is (ties: the later item).
    running_last = segmented_cummax(items[:, LAST_MS], starts)
    owner = np.where(items[:, LAST_MS] == running_last, np.arange(size), -1)
    owner = np.maximum.accumulate(owner)
    joins = np.flatnonzero(~first_of_group)
    before = owner[joins - 1]
    gaps = items[joins, FIRST_MS] - items[before, LAST_MS]
    joined = gaps >= 0
    joins, before, gaps = joins[joined], before[joined], gaps[joined]
    join_group = group_ids(starts, size)[joins]
    sequential = is_sequential(items[before, LAST_KEY], items[joins, FIRST_KEY], config)
    merged[:, GAP_COUNT] += np.bincount(join_group, minlength=len(starts))
    merged[:, GAP_SUM_MS] += _group_sum(join_group, gaps, len(starts))
    merged[:, GAP_SUMSQ_MS2] += _group_sum(join_group, gaps * gaps, len(starts))
    merged[:, SEQUENTIAL_PAIRS] += np.bincount(
        join_group, weights=sequential, minlength=len(starts)
    ).astype(np.int64)
    ends = starts + run_lengths(starts, size) - 1
    last = owner[ends]
    merged[:, LAST_MS] = items[last, LAST_MS]
    merged[:, LAST_KEY] = items[last, LAST_KEY]
    # The earliest first call; ties keep the earlier item.
    running_first = -segmented_cummax(-items[:, FIRST_MS], starts)
    first_owner = np.where(
        first_of_group | (items[:, FIRST_MS] < _shift(running_first, first_of_group)),
        np.arange(size),
        -1,
    )
    first = np.maximum.accumulate(first_owner)[ends]
    merged[:, FIRST_MS] = items[first, FIRST_MS]
    merged[:, FIRST_KEY] = items[first, FIRST_KEY]
    return targets[starts], merged


def _shift(values: Int64Array, first_of_group: NDArray[np.bool_]) -> Int64Array:
    """Each row's predecessor value within its group (the row's own at a group start)."""
    shifted = np.empty_like(values)
    shifted[0] = values[0]
    shifted[1:] = values[:-1]
    shifted[first_of_group] = values[first_of_group]
    return shifted


def _group_sum(groups: NDArray[np.intp], values: Int64Array, n_groups: int) -> Int64Array:
    """Exact integer sums per group (bincount's float weights would round)."""
    sums = np.zeros(n_groups, dtype=np.int64)
    np.add.at(sums, groups, values)
    return sums
