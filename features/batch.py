"""Columnar CDR batches: what the feature core reads, computed once per batch.

A :class:`CallBatch` holds one row per CDR as numpy columns, with every
per-call quantity the aggregates need already derived (flags, talk time in
ms, callee hash, segment bin), so that aggregation is pure vector arithmetic.
Build one per message batch with :meth:`CallBatch.from_cdrs` or
:meth:`CallBatch.from_arrays`, then :func:`split_by_caller` hands each
caller its rows.

Numbers enter as *callee keys*: the digits of the normalised number read as
one integer (``'+8613800138000'`` -> ``8613800138000``, ``'95588'`` ->
``95588``). Keys keep number order, which the sequential-dialling feature
needs, and fit in 63 bits (E.164 has at most 15 digits).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from contracts.by_caller import CdrColumns
from contracts.cdr import CDR, Disposition
from contracts.number_keys import as_keys, feature_keys
from features.config import FeatureConfig
from features.runs import run_lengths, run_starts

__all__ = [
    "EVENT_COLUMNS",
    "CallBatch",
    "call_batch",
    "callee_keys",
    "key_hash32",
    "mix64",
    "segment_key",
    "segment_keys",
    "split_by_caller",
]

# Per-call counters, in the order of CallBatch.flags and of the first
# columns of features.aggregate's counter table.
EVENT_COLUMNS = ("calls", "answered", "short_answered", "one_ring", "night", "talk_ms")

_SHORT_CODE_LIMIT = 10_000_000  # keys below this are service codes: their own segment
_SUFFIX = 10_000  # the last 4 digits are the subscriber part of a segment
_HASH_SENTINEL = np.uint32(0xFFFFFFFF)  # reserved: marks an empty sketch slot
_SEGMENT_SALT = np.uint64(0x5EC7E5EC7E5EC7E5)
_HOUR_MS = 3_600_000
_TALK_MS = EVENT_COLUMNS.index("talk_ms")

Int64Array = NDArray[np.int64]
UInt64Array = NDArray[np.uint64]


def callee_keys(numbers: Iterable[str]) -> UInt64Array:
    """The integer keys of normalised numbers (digits only, ``+`` dropped).

    >>> callee_keys(["+8613800138000", "95588"]).tolist()
    [8613800138000, 95588]
    """
    numbers = numbers if isinstance(numbers, Sequence) else list(numbers)
    try:
        # int() reads one leading "+" itself; only odd input needs the strip.
        return np.fromiter(map(int, numbers), dtype=np.uint64, count=len(numbers))
    except ValueError:
        return np.fromiter((int(number.lstrip("+")) for number in numbers), dtype=np.uint64)


def segment_keys(keys: UInt64Array) -> UInt64Array:
    """The segment (号段) of each key, as an integer.

    Equals ``contracts.numbers.segment_of`` with the country code in front
    (``+8613800138000`` -> ``861380013``); a service code is its own segment.
    """
    keys = np.asarray(keys, dtype=np.uint64)
    return np.where(keys < _SHORT_CODE_LIMIT, keys, keys // np.uint64(_SUFFIX))


def segment_key(key: int) -> int:
    """Scalar twin of :func:`segment_keys`, for per-pair code paths."""
    return key if key < _SHORT_CODE_LIMIT else key // _SUFFIX


def mix64(values: UInt64Array) -> UInt64Array:
    """SplitMix64 finaliser: a fast, well-mixed, process-independent 64-bit hash."""
    z = np.asarray(values, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def key_hash32(keys: UInt64Array) -> NDArray[np.uint32]:
    """32-bit hash of numbers for the sketches; never the empty-slot sentinel."""
    high = (mix64(keys) >> np.uint64(32)).astype(np.uint32)
    return np.minimum(high, _HASH_SENTINEL - np.uint32(1))


@dataclass(frozen=True, slots=True)
class CallBatch:
    """Calls as columns; rows in any order (the aggregates sort what they need).

    ``flags`` is ``(n, 6)`` int64 in :data:`EVENT_COLUMNS` order: 1 per call,
    answered, answered and shorter than ``short_call_s``, one-ring, placed
    at night, talk time in whole milliseconds.
    """

    start_ms: Int64Array
    callee: UInt64Array
    callee_hash: NDArray[np.uint32]
    segment_bin: NDArray[np.intp]
    flags: Int64Array

    def __len__(self) -> int:
        return len(self.start_ms)

    @property
    def ended_ms(self) -> Int64Array:
        """When each call ended as far as the record says: start plus talk time.

        Ring time before an answer is not in the record's talk time, so this
        is at or before the true end (lateness judged on it errs towards
        dropping, never towards accepting a stale call).
        """
        return self.start_ms + self.flags[:, _TALK_MS]

    @classmethod
    def from_arrays(
        cls,
        config: FeatureConfig,
        *,
        start_ms: ArrayLike,
        callee: ArrayLike,
        duration_s: ArrayLike,
        answered: ArrayLike,
        ring_s: ArrayLike,
    ) -> CallBatch:
        """Derive every per-call column; ``ring_s`` is NaN where unknown."""
        start = np.asarray(start_ms, dtype=np.int64)
        keys = np.asarray(callee, dtype=np.uint64)
        talk_s = np.asarray(duration_s, dtype=np.float64)
        picked_up = np.asarray(answered, dtype=bool)
        ringing_s = np.asarray(ring_s, dtype=np.float64)
        flags = np.empty((len(start), len(EVENT_COLUMNS)), dtype=np.int64)
        flags[:, 0] = 1
        flags[:, 1] = picked_up
        flags[:, 2] = picked_up & (talk_s < config.short_call_s)
        with np.errstate(invalid="ignore"):  # NaN ring times compare False
            flags[:, 3] = ~picked_up & (ringing_s > 0) & (ringing_s < config.one_ring_s)
        flags[:, 4] = _is_night(start, config)
        flags[:, 5] = np.rint(np.where(picked_up, talk_s, 0.0) * 1000.0).astype(np.int64)
        segment_hash = mix64(segment_keys(keys) ^ _SEGMENT_SALT)
        return cls(
            start_ms=start,
            callee=keys,
            callee_hash=key_hash32(keys),
            segment_bin=(segment_hash % np.uint64(config.segment_bins)).astype(np.intp),
            flags=flags,
        )

    @classmethod
    def from_cdrs(cls, cdrs: Sequence[CDR], config: FeatureConfig) -> CallBatch:
        """Columns from validated :class:`~contracts.cdr.CDR` values."""
        count = len(cdrs)
        return cls.from_arrays(
            config,
            start_ms=np.fromiter((cdr.start_ms for cdr in cdrs), np.int64, count),
            callee=callee_keys(cdr.callee for cdr in cdrs),
            duration_s=np.fromiter((cdr.duration_s for cdr in cdrs), np.float64, count),
            answered=np.fromiter(
                (cdr.disposition is Disposition.ANSWERED for cdr in cdrs), bool, count
            ),
            ring_s=np.fromiter(
                (np.nan if cdr.ring_s is None else cdr.ring_s for cdr in cdrs), np.float64, count
            ),
        )

    def take(self, rows: NDArray[np.integer] | NDArray[np.bool_] | slice) -> CallBatch:
        """The batch restricted to ``rows`` (indices, a mask or a slice), in that order."""
        return CallBatch(
            start_ms=self.start_ms[rows],
            callee=self.callee[rows],
            callee_hash=self.callee_hash[rows],
            segment_bin=self.segment_bin[rows],
            flags=self.flags[rows],
        )


def _is_night(start_ms: Int64Array, config: FeatureConfig) -> NDArray[np.bool_]:
    local_hour = ((start_ms + config.utc_offset_ms) // _HOUR_MS) % 24
    start, end = config.night_start_hour, config.night_end_hour
    if start > end:  # the night wraps past midnight, e.g. 22:00-07:00
        return (local_hour >= start) | (local_hour < end)
    return (local_hour >= start) & (local_hour < end)


def split_by_caller(
    callers: Sequence[str] | NDArray[np.str_], batch: CallBatch
) -> list[tuple[str, CallBatch]]:
    """Each caller's rows of ``batch``, in arrival order, callers sorted.

    One sort for the whole batch, so the agent does not filter per caller.
    """
    names = np.asarray(callers)
    if len(names) != len(batch):
        raise ValueError(f"{len(names)} callers for a batch of {len(batch)} calls")
    if len(names) == 0:
        return []
    order = np.argsort(names, kind="stable")
    sorted_names = names[order]
    starts = run_starts(sorted_names)
    ends = starts + run_lengths(starts, len(order))
    return [
        (str(sorted_names[start]), batch.take(order[start:end]))
        for start, end in zip(starts, ends, strict=True)
    ]


def call_batch(calls: CdrColumns, config: FeatureConfig) -> CallBatch:
    """A ``cdr.by_caller`` message's calls as the feature core's columns (both stages)."""
    return CallBatch.from_arrays(
        config,
        start_ms=np.asarray(calls.start_ms, np.int64),
        callee=feature_keys(as_keys(calls.callee)),
        duration_s=np.asarray(calls.duration_s, np.float64),
        answered=np.asarray(calls.disposition) == "ANSWERED",
        ring_s=np.array([np.nan if r is None else r for r in calls.ring_s], np.float64),
    )
