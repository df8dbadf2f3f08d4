"""The compiled part of :meth:`features.block.engine.CallerBlock.note_inbound_rows`.

Calls to a number wait in its inbox (times and callers' hashes, ascending)
until the event clock passes them, then join its inbound Bloom filter by
generation (:mod:`features.sketch`). Given every number's waiting calls and
new ones, sorted by (row, time, hash), :func:`settle_inboxes` keeps each
row's newest ``capacity`` calls at or after the frontier in the inbox and
adds the older ones to the filter: the generations move on first (one step
shifts the current half into the previous one, two or more clear both),
then each call sets its bits in the half of its generation, or nowhere if
that is older than the previous one. numba compiles it once and caches it
beside this module; no Python object is touched inside.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

__all__ = ["bloom_position", "settle_inboxes"]


@njit(cache=True, nogil=True)  # type: ignore[misc]  # numba ships no type information
def bloom_position(value: np.uint32, index: int, bits: int) -> int:
    """The ``index``-th Bloom position of a 32-bit hash (as ``features.sketch``'s filters)."""
    low, high = int(value) & 0xFFFF, (int(value) >> 16) | 1
    return (low + index * high) % bits


@njit(cache=True, nogil=True)  # type: ignore[misc]
def settle_inboxes(  # noqa: PLR0913 - the inbox and the filter
    rows: NDArray[np.int64],
    time_ms: NDArray[np.int64],
    hashes: NDArray[np.uint32],
    frontier_ms: int,
    generation_ms: int,
    hashes_per_number: int,
    inbox_ms: NDArray[np.int64],
    inbox_hash: NDArray[np.uint32],
    inbox_n: NDArray[np.uint8],
    inbound: NDArray[np.uint64],
    inbound_generation: NDArray[np.int64],
) -> None:
    """Settle each row's calls (sorted by row, time, hash; a call twice counts once)."""
    capacity = inbox_ms.shape[1]
    words = inbound.shape[1] // 2
    bits = 64 * words
    n = len(rows)
    distinct = np.empty(n, np.int64)
    i = 0
    while i < n:
        row = rows[i]
        count = 0  # the group's distinct calls, as indices into the input
        j = i
        while j < n and rows[j] == row:
            if j == i or time_ms[j] != time_ms[j - 1] or hashes[j] != hashes[j - 1]:
                distinct[count] = j
                count += 1
            j += 1
        # Kept: the newest `capacity`, and only those at or after the frontier.
        first_kept = max(count - capacity, 0)
        while first_kept < count and time_ms[distinct[first_kept]] < frontier_ms:
            first_kept += 1
        if first_kept > 0:
            current = inbound_generation[row]
            newest = time_ms[distinct[first_kept - 1]] // generation_ms
            latest = max(current, newest)
            step = latest - max(current, latest - 2)
            if step == 1:
                inbound[row, words:] = inbound[row, :words]
                inbound[row, :words] = 0
            elif step >= 2:
                inbound[row, :] = 0
            inbound_generation[row] = latest
            for d in range(first_kept):
                call = distinct[d]
                age = latest - time_ms[call] // generation_ms
                if age > 1:
                    continue
                for s in range(hashes_per_number):
                    position = bloom_position(hashes[call], s, bits)
                    word = age * words + position // 64
                    inbound[row, word] |= np.uint64(1) << np.uint64(position % 64)
        for d in range(first_kept, count):
            call = distinct[d]
            inbox_ms[row, d - first_kept] = time_ms[call]
            inbox_hash[row, d - first_kept] = hashes[call]
        inbox_n[row] = count - first_kept
        i = j
