"""The small sketches that keep per-caller memory bounded, and their errors.

**Callees: bottom-k (KMV) with counts.** Each aggregate keeps the ``k``
smallest distinct 32-bit callee hashes it has seen, each with a call count
(saturating at 255). Merging two sketches keeps the ``k`` smallest of the
union and adds the counts, so the result does not depend on how the calls
were split or ordered, and the counts of the kept callees are exact (a
callee among the ``k`` smallest of a union is among the ``k`` smallest of
every part it appears in). From it:

* distinct callees: exact while at most ``k`` distinct callees were seen;
  beyond, ``(k - 1) * 2**32 / h_k`` (``h_k`` the k-th smallest hash), an
  unbiased estimate with relative standard error about ``1 / sqrt(k - 2)``:
  27 % for k = 16, 18 % for k = 32. The estimate is clamped to
  ``[k, calls]``.
* the kept hashes are a uniform sample of the distinct callees, which the
  repeat-callee ratio and the reciprocity estimate use; both are exact while
  at most ``k`` distinct callees were seen, and beyond carry a binomial
  standard error of about ``sqrt(p (1 - p) / k)`` (at most 0.125 for k = 16).

**Segments: a hashed histogram** of ``B`` counters of calls per segment
hash. Entropy and distinct segments are exact while no two called segments
share a counter; with ``d`` segments the chance of a collision is about
``d (d - 1) / (2 B)``. Distinct segments are estimated by linear counting,
``B ln(B / empty)``, which saturates near ``B ln(2 B)`` (55 for B = 16):
beyond a dozen segments it says "many", not how many.

**Inbound callers: a Bloom filter** of ``m`` bits and 3 hash positions per
number (derived from the same 32-bit hash), in two generations. With ``n``
distinct inbound numbers in a generation the false-positive rate is about
``(1 - exp(-3 n / m)) ** 3``: for m = 512, 0.2 % at n = 20, 1.6 % at 50,
8.7 % at 100; a query checks two generations, so up to twice that. The
number of distinct inbound numbers is estimated from the share of bits set,
``n = -(m / 3) ln(1 - X / m)`` (:func:`bloom_cardinality`): within a few per
cent up to ``m / 3`` numbers, and capped at ``(m / 3) ln m`` (1,064 for
m = 512) when every bit is set.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from features.runs import run_lengths, run_starts

__all__ = [
    "BLOOM_HASHES",
    "EMPTY_HASH",
    "bloom_add",
    "bloom_cardinality",
    "bloom_contains",
    "filter_half",
    "inbound_numbers",
    "inbox_counts",
    "kmv_distinct",
    "kmv_repeat_share",
    "kmv_union",
    "kmv_union_groups",
    "segment_distinct",
    "segment_entropy",
]

EMPTY_HASH = np.uint32(0xFFFFFFFF)
BLOOM_HASHES = 3
_COUNT_CAP = 255
_HASH_SPACE = 2.0**32

UInt32Array = NDArray[np.uint32]
UInt8Array = NDArray[np.uint8]


def kmv_union_groups(
    groups: NDArray[np.intp],
    hashes: UInt32Array,
    counts: NDArray[np.integer],
    n_groups: int,
    k: int,
) -> tuple[UInt32Array, UInt8Array]:
    """Bottom-k sketches of many groups at once.

    ``groups[i]`` says which of ``n_groups`` sketches entry ``i`` (a hash seen
    ``counts[i]`` times) belongs to; empty-slot entries are ignored. Returns
    ``(n_groups, k)`` hashes (ascending, padded with :data:`EMPTY_HASH`) and
    counts (0 in padding).
    """
    keep = hashes != EMPTY_HASH
    groups, hashes, counts = groups[keep], hashes[keep], counts[keep]
    out_hashes = np.full((n_groups, k), EMPTY_HASH, dtype=np.uint32)
    out_counts = np.zeros((n_groups, k), dtype=np.uint8)
    if len(hashes) == 0:
        return out_hashes, out_counts
    groups, hashes, counts = _sum_by_group_and_hash(groups, hashes, counts, n_groups)
    group_first = run_starts(groups)
    rank = np.arange(len(groups)) - np.repeat(group_first, run_lengths(group_first, len(groups)))
    kept = rank < k
    out_hashes[groups[kept], rank[kept]] = hashes[kept]
    out_counts[groups[kept], rank[kept]] = np.minimum(counts[kept], _COUNT_CAP)
    return out_hashes, out_counts


def _sum_by_group_and_hash(
    groups: NDArray[np.intp], hashes: UInt32Array, counts: NDArray[np.integer], n_groups: int
) -> tuple[NDArray[np.intp], UInt32Array, NDArray[np.int64]]:
    """Distinct (group, hash) pairs, sorted, with their summed counts.

    One sort of a 64-bit key instead of a two-column lexsort. Counts of a
    byte (those of sketches, or 1 per call) ride in the key's low byte, so
    the sort carries them and no permutation is needed.
    """
    group_key = groups.astype(np.uint64) << np.uint64(32) | hashes.astype(np.uint64)
    if n_groups < 2**24 and 0 <= counts.min() and counts.max() <= _COUNT_CAP:
        packed = group_key << np.uint64(8) | counts.astype(np.uint64)
        packed.sort()
        group_key = packed >> np.uint64(8)
        summed = (packed & np.uint64(_COUNT_CAP)).astype(np.int64)
    else:
        order = np.argsort(group_key, kind="stable")
        group_key, summed = group_key[order], counts[order].astype(np.int64)
    distinct = run_starts(group_key)
    group_key = group_key[distinct]
    return (
        (group_key >> np.uint64(32)).astype(np.intp),
        (group_key & np.uint64(0xFFFFFFFF)).astype(np.uint32),
        np.add.reduceat(summed, distinct),
    )


def kmv_union(
    hashes_a: UInt32Array,
    counts_a: NDArray[np.integer],
    hashes_b: UInt32Array,
    counts_b: NDArray[np.integer],
    k: int,
) -> tuple[UInt32Array, UInt8Array]:
    """Bottom-k of the union of two sketches (or of a sketch and raw hashes)."""
    hashes = np.concatenate((hashes_a, hashes_b))
    counts = np.concatenate((counts_a, counts_b)).astype(np.int64)
    order = hashes.argsort(kind="stable")
    hashes, counts = hashes[order], counts[order]
    distinct = run_starts(hashes)
    summed = np.add.reduceat(counts, distinct)[:k]
    distinct = distinct[:k]
    out_hashes = np.full(k, EMPTY_HASH, dtype=np.uint32)
    out_counts = np.zeros(k, dtype=np.uint8)
    out_hashes[: len(distinct)] = hashes[distinct]
    # Padding sorts last with a count of 0, so it never displaces a hash.
    np.minimum(summed, _COUNT_CAP, out=summed)
    out_counts[: len(distinct)] = summed
    return out_hashes, out_counts


def kmv_distinct(hashes: UInt32Array, calls: NDArray[np.integer]) -> NDArray[np.float64]:
    """Distinct callees from bottom-k sketches ``(n, k)`` (see the module docstring)."""
    k = hashes.shape[1]
    used = np.count_nonzero(hashes != EMPTY_HASH, axis=1)
    kth = hashes[:, k - 1].astype(np.float64) + 1.0
    estimate = (k - 1) * _HASH_SPACE / kth
    ceiling = np.maximum(calls, k).astype(np.float64)
    return np.where(used < k, used, np.clip(estimate, k, ceiling)).astype(np.float64)


def kmv_repeat_share(counts: UInt8Array) -> NDArray[np.float64]:
    """Per row, the share of sampled distinct callees that were called at least twice."""
    used = np.count_nonzero(counts > 0, axis=1)
    repeated = np.count_nonzero(counts >= 2, axis=1)
    return _safe_ratio(repeated, used)


def segment_entropy(histogram: NDArray[np.integer]) -> NDArray[np.float64]:
    """Per row, Shannon entropy in bits of calls over (hashed) segments; 0 without calls."""
    counts = histogram.astype(np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    terms = np.zeros_like(shares)
    np.log2(shares, out=terms, where=shares > 0)
    return np.maximum(0.0, -(shares * terms).sum(axis=1))


def segment_distinct(histogram: NDArray[np.integer]) -> NDArray[np.float64]:
    """Per row, the linear-counting estimate of distinct segments from a hashed histogram."""
    bins = histogram.shape[1]
    empty = bins - np.count_nonzero(histogram, axis=1)
    estimate = bins * np.log(bins / np.maximum(empty, 0.5))
    return np.where(empty == bins, 0.0, estimate)


def _safe_ratio(
    numerator: NDArray[np.integer], denominator: NDArray[np.integer]
) -> NDArray[np.float64]:
    numerator_f = numerator.astype(np.float64)
    denominator_f = denominator.astype(np.float64)
    return np.divide(
        numerator_f, denominator_f, out=np.zeros_like(numerator_f), where=denominator_f != 0
    )


def _bloom_positions(hashes: UInt32Array, bits: int) -> NDArray[np.int64]:
    # Double hashing (Kirsch-Mitzenmacher) from the two halves of the hash.
    hashes = hashes.astype(np.int64)
    low, high = hashes & 0xFFFF, (hashes >> 16) | 1
    steps = np.arange(BLOOM_HASHES, dtype=np.int64)
    return (low[:, None] + steps[None, :] * high[:, None]) % bits


def bloom_add(words: NDArray[np.uint64], hashes: UInt32Array) -> None:
    """Set the bits of ``hashes`` in a filter of ``64 * len(words)`` bits, in place."""
    positions = _bloom_positions(hashes, 64 * len(words)).ravel()
    masks = np.left_shift(np.uint64(1), (positions % 64).astype(np.uint64))
    np.bitwise_or.at(words, positions // 64, masks)


def bloom_cardinality(words: NDArray[np.uint64]) -> NDArray[np.float64]:
    """Estimated distinct numbers in filters of ``64 * words.shape[-1]`` bits (last axis).

    ``-(m / k) ln(1 - X / m)`` with ``X`` bits set of ``m``; a full filter
    counts as one bit short of full, so the estimate stays finite.
    """
    bits = 64 * words.shape[-1]
    ones = np.minimum(np.bitwise_count(words).sum(axis=-1, dtype=np.int64), bits - 1)
    estimate: NDArray[np.float64] = -(bits / BLOOM_HASHES) * np.log1p(-ones / bits)
    return estimate


def filter_half(
    filter_generation: NDArray[np.int64], generation: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Which half of each two-generation inbound filter holds ``generation``, and whether one does.

    A filter holds its current generation (``filter_generation``) in its
    first half (0) and the one before in its second (1); ``half`` is 0
    where ``held`` is false. A filter that never held a call (the engines
    mark its generation with the int64 minimum: any negative number counts)
    holds no generation, and its mark is never subtracted from, so nothing
    overflows. The one rule both engines read their filters by, for
    reciprocity and for :func:`inbound_numbers`.

    >>> half, held = filter_half(np.array([7, 7, 7, -1]), np.array([7, 6, 5, 7]))
    >>> half.tolist(), held.tolist()
    ([0, 1, 0, 0], [True, True, False, False])
    """
    has_filter = filter_generation >= 0
    half = np.where(has_filter, filter_generation, generation + 2) - generation
    held = (half == 0) | (half == 1)
    return np.where(held, half, 0), held


def inbox_counts(
    time_ms: NDArray[np.int64],
    end_ms: int | NDArray[np.int64],
    wanted: int | NDArray[np.int64],
    generation_ms: int,
) -> NDArray[np.bool_]:
    """Which calls waiting in an inbox count for a window ending at ``end_ms``.

    Those from the start of inbound generation ``wanted - 1`` up to
    ``end_ms`` (excluded): the span :func:`filter_half`'s two generations
    cover, read by reciprocity and :func:`inbound_numbers` in both engines.
    ``end_ms`` and ``wanted`` broadcast against ``time_ms``.
    """
    return (time_ms < end_ms) & (time_ms >= (wanted - 1) * generation_ms)


def inbound_numbers(
    filters: NDArray[np.uint64],
    filter_generation: NDArray[np.int64],
    wanted: NDArray[np.int64],
    time_ms: NDArray[np.int64],
    hashes: NDArray[np.uint32],
    live: NDArray[np.bool_],
    generation_ms: int,
) -> NDArray[np.float64]:
    """Per row: estimated numbers that called in generations ``wanted`` and ``wanted - 1``.

    ``filters``: ``(rows, 2 * words)``, each row's inbound filter, its current
    generation (``filter_generation``) first, then the one before.
    ``time_ms``, ``hashes``, ``live``: ``(rows, slots)``, the calls waiting
    in each row's inbox and which of them count. Each generation's estimate
    (:func:`bloom_cardinality`) is taken on its half of the filter with the
    waiting calls of that generation added, so it is the same whether a call
    still waits or has joined the filter: the result does not depend on when
    the stream merged the inbox.
    """
    rows = filters.shape[0]
    words = filters.shape[1] // 2
    index = np.arange(rows)
    total = np.zeros(rows)
    waiting_generation = time_ms // generation_ms
    for back in (0, 1):
        generation = wanted - back
        half, held = filter_half(filter_generation, generation)
        bits = np.zeros((rows, words), np.uint64)
        start = half * words
        bits[held] = filters[index[held, None], start[held, None] + np.arange(words)]
        row, slot = np.nonzero(live & (waiting_generation == generation[:, None]))
        if len(row):
            positions = _bloom_positions(hashes[row, slot], 64 * words)
            masks = np.left_shift(np.uint64(1), (positions % 64).astype(np.uint64))
            np.bitwise_or.at(bits, (row[:, None], positions // 64), masks)
        total += bloom_cardinality(bits)
    return total


def bloom_contains(words: NDArray[np.uint64], hashes: UInt32Array) -> NDArray[np.bool_]:
    """Whether each hash may be in the filter (false positives, never negatives)."""
    positions = _bloom_positions(hashes, 64 * len(words))
    bits = (words[positions // 64] >> (positions % 64).astype(np.uint64)) & np.uint64(1)
    return np.all(bits == 1, axis=1)
