"""The compiled part of :func:`features.block.read.window_aggregates`: one window per row.

For each row, the parts of its window are folded as
:func:`features.aggregate.combine` folds them: the ring's slots whose bucket
lies in the window (oldest first), then the chain of the row's buffered
calls in the window, then the complaints held ahead of the watermark.
Counters that add are added; chains join when the next part's first call is
not before the previous chained part's last (the gap, and whether the pair
looks sequential, count); the earliest first call (ties: the earlier part)
and the latest last call (ties: the later part) are kept; the bottom-k
sketches are united (the ``k`` smallest distinct hashes, counts added and
saturating at 255) and the segment histograms added. numba compiles it
once and caches it beside this module; no Python object is touched inside.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

from features.aggregate import (
    CHAIN_LEN,
    COMPLAINTS,
    FIRST_KEY,
    FIRST_MS,
    GAP_COUNT,
    GAP_SUM_MS,
    GAP_SUMSQ_MS2,
    LAST_KEY,
    LAST_MS,
    SEQUENTIAL_PAIRS,
)
from features.block.inbox_kernel import bloom_position
from features.block.ring_kernel import join_chain, kmv_insert, sequential_pair

__all__ = ["called_back", "combine_windows"]

_EMPTY = np.uint32(0xFFFFFFFF)
_CAP = 255
_ADDITIVE_END = SEQUENTIAL_PAIRS + 1  # counters before it add on merge


@njit(cache=True, nogil=True)  # type: ignore[misc]  # numba ships no type information
def combine_windows(  # noqa: PLR0913, PLR0912, PLR0915 - one window's parts, in order
    rows: NDArray[np.int64],
    first: NDArray[np.int64],
    last: NDArray[np.int64],
    hop_ms: int,
    first_column: int,
    ring_length: int,
    bucket: NDArray[np.int64],
    slot: NDArray[np.int32],
    counters: NDArray[np.int64],
    kmv_hash: NDArray[np.uint32],
    kmv_count: NDArray[np.uint8],
    segment_hist: NDArray[np.uint32],
    pending_ms: NDArray[np.int64],
    pending_key: NDArray[np.uint64],
    pending_n: NDArray[np.uint8],
    complaints: NDArray[np.int64],
    max_gap: int,
    out_counters: NDArray[np.int64],
    out_hash: NDArray[np.uint32],
    out_count: NDArray[np.uint8],
    out_hist: NDArray[np.uint32],
) -> None:
    """Fold each row's window (buckets ``first[i]`` to ``last[i]``, excluded) into ``out_*[i]``.

    ``bucket``, ``slot``, ``pending_*``: the callers' columns; ``counters``
    and the sketch and histogram columns: the slot records'. ``complaints[i]``:
    the held complaints of row ``i`` that fall in the window. The ``out_*``
    rows start empty (zeros; sketches of empty hashes).
    """
    k = out_hash.shape[1]
    for i in range(len(rows)):
        row = rows[i]
        into = out_counters[i]
        chained = False
        last_ms = 0  # of the previous chained part
        last_key = 0
        for b in range(first[i], last[i]):
            cell = first_column + b % ring_length
            if bucket[row, cell] != b:
                continue
            record = slot[row, cell]
            part = counters[record]
            for c in range(_ADDITIVE_END):
                into[c] += part[c]
            if part[CHAIN_LEN] > 0:
                join_chain(into, chained, last_ms, last_key, part[FIRST_MS], part[LAST_MS],
                      part[FIRST_KEY], part[LAST_KEY], max_gap)
                chained, last_ms, last_key = True, part[LAST_MS], part[LAST_KEY]
            for h in range(segment_hist.shape[1]):
                out_hist[i, h] += segment_hist[record, h]
            _sketch_union(out_hash[i], out_count[i], kmv_hash[record], kmv_count[record], k)
        # The buffered calls in the window: one chain, after the slots.
        length = 0
        gaps = 0
        gap_sum = 0
        gap_sumsq = 0
        pairs = 0
        part_first_ms = 0
        part_first_key = 0
        previous_ms = 0
        previous_key = 0
        for p in range(pending_n[row]):
            call_ms = pending_ms[row, p]
            call_bucket = call_ms // hop_ms
            if call_bucket < first[i] or call_bucket >= last[i]:
                continue
            key = int(pending_key[row, p])
            if length == 0:
                part_first_ms, part_first_key = call_ms, key
            else:
                gap = call_ms - previous_ms
                gaps += 1
                gap_sum += gap
                gap_sumsq += gap * gap
                pairs += sequential_pair(previous_key, key, max_gap)
            previous_ms, previous_key = call_ms, key
            length += 1
        if length > 0:
            into[CHAIN_LEN] += length
            into[GAP_COUNT] += gaps
            into[GAP_SUM_MS] += gap_sum
            into[GAP_SUMSQ_MS2] += gap_sumsq
            into[SEQUENTIAL_PAIRS] += pairs
            join_chain(into, chained, last_ms, last_key, part_first_ms, previous_ms,
                  part_first_key, previous_key, max_gap)
        into[COMPLAINTS] += complaints[i]


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _sketch_union(
    hashes: NDArray[np.uint32],
    counts: NDArray[np.uint8],
    part_hashes: NDArray[np.uint32],
    part_counts: NDArray[np.uint8],
    k: int,
) -> None:
    """Unite a part's bottom-k sketch (ascending) into ``hashes``/``counts`` in place."""
    for j in range(k):
        value = part_hashes[j]
        if value == _EMPTY or not kmv_insert(hashes, counts, value, int(part_counts[j]), k):
            return  # padding, or beyond the k kept: so is the rest of the part


@njit(cache=True, nogil=True)  # type: ignore[misc]
def called_back(  # noqa: PLR0913 - the filter, the inbox and the window
    rows: NDArray[np.int64],
    sampled_hashes: NDArray[np.uint32],
    end_ms: NDArray[np.int64],
    wanted: NDArray[np.int64],
    filter_generation: NDArray[np.int64],
    inbound: NDArray[np.uint64],
    inbox_ms: NDArray[np.int64],
    inbox_hash: NDArray[np.uint32],
    inbox_n: NDArray[np.uint8],
    generation_ms: int,
    hashes_per_number: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Per row, how many sampled callees called the caller back, and how many were sampled.

    A callee called back when every one of its Bloom positions is set in a
    half of the caller's inbound filter that holds generation ``wanted[i]``
    or the one before (as :func:`features.sketch.filter_half` reads it), or
    when it waits in the inbox with a time from the start of generation
    ``wanted[i] - 1`` to ``end_ms[i]`` (:func:`features.sketch.inbox_counts`).
    """
    n = len(rows)
    back = np.zeros(n, np.int64)
    sampled = np.zeros(n, np.int64)
    words = inbound.shape[1] // 2
    bits = 64 * words
    for i in range(n):
        row = rows[i]
        current = filter_generation[row]
        halves = np.full(2, -1, np.int64)  # the halves holding wanted and wanted - 1
        for g in range(2):
            generation = wanted[i] - g
            half = (current if current >= 0 else generation + 2) - generation
            if half == 0 or half == 1:
                halves[g] = half
        oldest_ms = (wanted[i] - 1) * generation_ms
        for j in range(sampled_hashes.shape[1]):
            value = sampled_hashes[i, j]
            if value == _EMPTY:
                continue
            sampled[i] += 1
            found = False
            for g in range(2):
                if halves[g] < 0:
                    continue
                every = True
                for s in range(hashes_per_number):
                    position = bloom_position(value, s, bits)
                    word = inbound[row, halves[g] * words + position // 64]
                    if (word >> np.uint64(position % 64)) & np.uint64(1) == 0:
                        every = False
                        break
                if every:
                    found = True
                    break
            if not found:
                for e in range(inbox_n[row]):
                    at = inbox_ms[row, e]
                    if inbox_hash[row, e] == value and oldest_ms <= at < end_ms[i]:
                        found = True
                        break
            if found:
                back[i] += 1
    return back, sampled
