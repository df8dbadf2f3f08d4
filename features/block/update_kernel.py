"""The compiled steps of :meth:`features.block.engine.CallerBlock.update` around the ring counts.

A message's calls reach the block in arrival order. Grouped by caller (a
stable sort by row, done by numpy in front), each caller's calls are taken
in turn:

- :func:`admit_calls`: which calls are new (their ``cdr_id`` fingerprint
  neither among the caller's recent ones nor repeated earlier in the
  message), the watermark each new call met, and with it whether the call is
  dropped (it ended more than the grace before that watermark), late or
  beyond the chain's settled point; the watermark moves on to the latest
  start, and the accepted calls' fingerprints join the caller's ring of
  recent ones.
- :func:`hold_back_calls`: the accepted calls join the caller's reorder
  buffer, kept sorted by (start, callee); those the watermark has settled
  (started more than the grace before it), and the oldest beyond the
  buffer's capacity, leave it, in order, for the chain
  (:func:`features.block.ring_kernel.chain_into_rings`).

The rules are those of ``features.reference.state.CallerState``; the
randomised parity tests compare the block with it bit for bit. numba
compiles both once and caches them beside this module; no Python object is
touched inside.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

__all__ = ["admit_calls", "hold_back_calls"]

# Up to this many calls of one caller in a message, repeats are found by comparing
# each call with the earlier ones; beyond it, by sorting the caller's fingerprints.
_SCAN_BELOW = 32


@njit(cache=True, nogil=True)  # type: ignore[misc]  # numba ships no type information
def _group_end(rows: NDArray[np.int64], order: NDArray[np.int64], first: int) -> int:
    """Where the group of ``order[first]``'s row ends in ``order`` (grouped by row)."""
    row, last = rows[order[first]], first + 1
    while last < len(order) and rows[order[last]] == row:
        last += 1
    return last


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _repeated(ids: NDArray[np.uint32], order: NDArray[np.int64], first: int, last: int,
              out: NDArray[np.bool_]) -> None:
    """``out[order[k]]``: a call of ``order[first:last]`` (arrival order) has an earlier twin id."""
    count = last - first
    if count <= _SCAN_BELOW:
        for k in range(first, last):
            call, twin = order[k], False
            for j in range(first, k):
                if ids[order[j]] == ids[call]:
                    twin = True
                    break
            out[call] = twin
        return
    group = order[first:last]
    by_id = group[np.argsort(ids[group], kind="mergesort")]  # stable: arrival order within an id
    out[by_id[0]] = False
    for k in range(1, count):
        out[by_id[k]] = ids[by_id[k]] == ids[by_id[k - 1]]


@njit(cache=True, nogil=True)  # type: ignore[misc]
def admit_calls(  # noqa: PLR0913 - the calls and the caller columns they change
    order: NDArray[np.int64],
    rows: NDArray[np.int64],
    ids: NDArray[np.uint32],
    start_ms: NDArray[np.int64],
    ended_ms: NDArray[np.int64],
    grace_ms: int,
    watermark: NDArray[np.int64],
    recent: NDArray[np.uint32],
    recent_n: NDArray[np.uint8],
    recent_next: NDArray[np.uint8],
    fresh: NDArray[np.bool_],
    dropped: NDArray[np.bool_],
    late: NDArray[np.bool_],
    unchained: NDArray[np.bool_],
) -> None:
    """Admit the calls ``order`` lists (grouped by row, arrival order within a row).

    Sets ``fresh``, ``dropped``, ``late`` and ``unchained`` at the listed
    calls (the others are left as they are) and moves each row's
    watermark and ring of recent ids on. The watermark is the latest call
    start; a call is dropped when it *ended* more than the grace before the
    watermark it met (a long call's record arrives after those of shorter
    calls that started later); a call kept that started more than the grace
    before it counts in every window but stays out of the gap and
    sequential chain, which is settled up to that point.
    """
    capacity = recent.shape[1]
    twin = np.zeros(len(rows), np.bool_)
    n = len(order)
    first = 0
    while first < n:
        row, last = rows[order[first]], _group_end(rows, order, first)
        _repeated(ids, order, first, last, twin)
        held = int(recent_n[row])
        met = watermark[row]
        for k in range(first, last):
            call = order[k]
            known = twin[call]
            if not known:
                for slot in range(held):  # the ring as it was before this message
                    if recent[row, slot] == ids[call]:
                        known = True
                        break
            fresh[call] = not known
            if known:
                continue
            start = start_ms[call]
            cutoff = met - grace_ms
            too_old = ended_ms[call] < cutoff
            dropped[call] = too_old
            late[call] = start < met and not too_old
            unchained[call] = start < cutoff and not too_old
            met = max(met, start)
        watermark[row] = met
        # Only calls that counted enter the ring: ids dropped as late (a resent
        # backlog) must not push out those of the latest calls.
        position, count = int(recent_next[row]), held
        for k in range(first, last):
            call = order[k]
            if fresh[call] and not dropped[call]:
                recent[row, position] = ids[call]
                position = (position + 1) % capacity
                count = min(count + 1, capacity)
        recent_next[row] = position
        recent_n[row] = count
        first = last


@njit(cache=True, nogil=True)  # type: ignore[misc]
def hold_back_calls(  # noqa: PLR0913 - the calls, the buffer and what leaves it
    order: NDArray[np.int64],
    rows: NDArray[np.int64],
    start_ms: NDArray[np.int64],
    callee: NDArray[np.uint64],
    grace_ms: int,
    watermark: NDArray[np.int64],
    pending_ms: NDArray[np.int64],
    pending_key: NDArray[np.uint64],
    pending_n: NDArray[np.uint8],
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.uint64]]:
    """Buffer the calls ``order`` lists (grouped by row); return those settled.

    The settled calls come out as (rows, start_ms, callee), sorted by row,
    start and callee: the order the chain takes them in.
    """
    capacity = pending_ms.shape[1]
    n = len(order)
    most = n + 0
    first = 0
    while first < n:  # room for every buffered call of the rows, too
        most += int(pending_n[rows[order[first]]])
        first = _group_end(rows, order, first)
    out_rows = np.empty(most, np.int64)
    out_ms = np.empty(most, np.int64)
    out_key = np.empty(most, np.uint64)
    out = 0
    first = 0
    while first < n:
        row, last = rows[order[first]], _group_end(rows, order, first)
        held = int(pending_n[row])
        total = held + last - first
        ms = np.empty(total, np.int64)
        key = np.empty(total, np.uint64)
        ms[:held] = pending_ms[row, :held]
        key[:held] = pending_key[row, :held]
        for k in range(first, last):
            ms[held + k - first] = start_ms[order[k]]
            key[held + k - first] = callee[order[k]]
        by_key = np.argsort(key, kind="mergesort")
        sorted_order = by_key[np.argsort(ms[by_key], kind="mergesort")]
        cutoff = watermark[row] - grace_ms
        below = 0
        for k in range(total):
            if ms[k] < cutoff:
                below += 1
        settled = max(below, total - capacity)
        for k in range(settled):
            index = sorted_order[k]
            out_rows[out] = row
            out_ms[out] = ms[index]
            out_key[out] = key[index]
            out += 1
        for k in range(settled, total):
            index = sorted_order[k]
            pending_ms[row, k - settled] = ms[index]
            pending_key[row, k - settled] = key[index]
        pending_n[row] = total - settled
        first = last
    return out_rows[:out], out_ms[:out], out_key[:out]
