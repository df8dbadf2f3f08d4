"""The features: one pure function each, from one window's aggregate.

Every function takes an :class:`~features.aggregate.Aggregates` and the row
holding the window (its buckets already combined), and returns a float.
Ratios with an empty denominator are 0. :data:`FEATURE_NAMES` fixes the
order of the feature vector: the per-window names below, first for the
short window (``short_`` prefix), then for the long one (``long_``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from features.aggregate import (
    ANSWERED,
    CALLS,
    COMPLAINTS,
    GAP_COUNT,
    GAP_SUM_MS,
    GAP_SUMSQ_MS2,
    NIGHT,
    ONE_RING,
    SEQUENTIAL_PAIRS,
    SHORT_ANSWERED,
    TALK_MS,
    Aggregates,
)
from features.sketch import kmv_distinct, kmv_repeat_share, segment_distinct, segment_entropy

__all__ = [
    "FEATURE_NAMES",
    "WINDOW_FEATURES",
    "answer_rate",
    "call_volume",
    "complaints",
    "distinct_callee_ratio",
    "distinct_callees",
    "distinct_segments",
    "feature_row",
    "gap_cv",
    "gap_mean_s",
    "mean_talk_s",
    "night_call_ratio",
    "one_ring_ratio",
    "reciprocity",
    "repeat_callee_ratio",
    "segment_entropy_bits",
    "sequential_score",
    "short_call_ratio",
]


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else 0.0


def call_volume(agg: Aggregates, row: int = 0) -> float:
    """``calls``: calls placed in the window, whatever their outcome."""
    return float(agg.counters[row, CALLS])


def answer_rate(agg: Aggregates, row: int = 0) -> float:
    """``answered / calls``."""
    return _ratio(agg.counters[row, ANSWERED], agg.counters[row, CALLS])


def short_call_ratio(agg: Aggregates, row: int = 0) -> float:
    """``answered calls with talk time < short_call_s / answered calls``."""
    return _ratio(agg.counters[row, SHORT_ANSWERED], agg.counters[row, ANSWERED])


def one_ring_ratio(agg: Aggregates, row: int = 0) -> float:
    """``unanswered calls with 0 < ring_s < one_ring_s / calls``.

    Calls whose ring time is unknown, or that never rang, are not one-ring.
    """
    return _ratio(agg.counters[row, ONE_RING], agg.counters[row, CALLS])


def night_call_ratio(agg: Aggregates, row: int = 0) -> float:
    """``calls starting in [night_start_hour, night_end_hour) local time / calls``.

    Local time is the configured zone (Asia/Shanghai, UTC+8, no DST).
    """
    return _ratio(agg.counters[row, NIGHT], agg.counters[row, CALLS])


def mean_talk_s(agg: Aggregates, row: int = 0) -> float:
    """``sum of talk time / answered calls``, in seconds (talk time rounded to ms)."""
    return _ratio(agg.counters[row, TALK_MS], agg.counters[row, ANSWERED]) / 1000.0


def distinct_callees(agg: Aggregates, row: int = 0) -> float:
    """Distinct callees: exact up to ``kmv_k``, then the bottom-k estimate.

    Relative standard error about ``1 / sqrt(kmv_k - 2)`` beyond ``kmv_k``
    (27 % for 16); see :mod:`features.sketch`.
    """
    return kmv_distinct(agg.kmv_hash[row], int(agg.counters[row, CALLS]))


def distinct_callee_ratio(agg: Aggregates, row: int = 0) -> float:
    """``distinct_callees / calls`` (1 for a caller who never calls anyone twice)."""
    return _ratio(distinct_callees(agg, row), agg.counters[row, CALLS])


def repeat_callee_ratio(agg: Aggregates, row: int = 0) -> float:
    """``distinct callees called at least twice / distinct callees``.

    Exact up to ``kmv_k`` distinct callees, then measured on the sketch's
    uniform sample of ``kmv_k`` callees (standard error <= 0.125 for 16).
    """
    return kmv_repeat_share(agg.kmv_count[row])


def distinct_segments(agg: Aggregates, row: int = 0) -> float:
    """Distinct callee segments (号段): ``B ln(B / empty counters)`` (linear counting).

    From a histogram of ``B = segment_bins`` hashed counters; about 1.03 for
    one segment with B = 16, saturating near ``B ln(2B)`` (55).
    """
    return segment_distinct(agg.segment_hist[row])


def segment_entropy_bits(agg: Aggregates, row: int = 0) -> float:
    """``-sum(p_i log2 p_i)`` over the share ``p_i`` of calls to each segment counter.

    0 when every call goes to one segment; at most ``log2(segment_bins)``.
    """
    return segment_entropy(agg.segment_hist[row])


def sequential_score(agg: Aggregates, row: int = 0) -> float:
    """``sequential pairs / successive pairs`` of calls in event-time order.

    A pair is sequential when both callees share a segment and their numbers
    differ by 1 to ``sequential_max_gap``.
    """
    return _ratio(agg.counters[row, SEQUENTIAL_PAIRS], agg.counters[row, GAP_COUNT])


def gap_mean_s(agg: Aggregates, row: int = 0) -> float:
    """``sum of gaps / number of gaps`` between successive call starts, in seconds."""
    return _ratio(agg.counters[row, GAP_SUM_MS], agg.counters[row, GAP_COUNT]) / 1000.0


def gap_cv(agg: Aggregates, row: int = 0) -> float:
    """Coefficient of variation of the gaps: ``std / mean`` (population std).

    ``std = sqrt(sum(g^2) / n - mean^2)``; 0 with no gap or a zero mean. Low
    values mean machine-regular dialling.
    """
    count = int(agg.counters[row, GAP_COUNT])
    total = int(agg.counters[row, GAP_SUM_MS])
    if count == 0 or total == 0:
        return 0.0
    mean = total / count
    variance = max(0.0, int(agg.counters[row, GAP_SUMSQ_MS2]) / count - mean * mean)
    return math.sqrt(variance) / mean


def complaints(agg: Aggregates, row: int = 0) -> float:
    """Complaints received about the caller, by their report time, in the window."""
    return float(agg.counters[row, COMPLAINTS])


def reciprocity(called_back: int, sampled: int) -> float:
    """``sampled callees who called the caller / sampled callees``.

    The sample is the window's bottom-k callee sketch, i.e. every distinct
    callee up to ``kmv_k``; "called the caller" means within the inbound
    horizon (see :mod:`features.state` and :mod:`features.offline`).
    """
    return _ratio(called_back, sampled)


FeatureFunction = Callable[[Aggregates, int], float]

WINDOW_FEATURES: dict[str, FeatureFunction] = {
    "call_volume": call_volume,
    "answer_rate": answer_rate,
    "short_call_ratio": short_call_ratio,
    "one_ring_ratio": one_ring_ratio,
    "night_call_ratio": night_call_ratio,
    "mean_talk_s": mean_talk_s,
    "distinct_callees": distinct_callees,
    "distinct_callee_ratio": distinct_callee_ratio,
    "repeat_callee_ratio": repeat_callee_ratio,
    "distinct_segments": distinct_segments,
    "segment_entropy": segment_entropy_bits,
    "sequential_score": sequential_score,
    "gap_mean_s": gap_mean_s,
    "gap_cv": gap_cv,
    "complaints": complaints,
}
_PER_WINDOW = (*WINDOW_FEATURES, "reciprocity")
FEATURE_NAMES: tuple[str, ...] = tuple(
    f"{window}_{name}" for window in ("short", "long") for name in _PER_WINDOW
)


def feature_row(agg: Aggregates, row: int, reciprocity_value: float) -> NDArray[np.float64]:
    """One window's features in ``_PER_WINDOW`` order (half of :data:`FEATURE_NAMES`)."""
    values = [function(agg, row) for function in WINDOW_FEATURES.values()]
    values.append(reciprocity_value)
    return np.asarray(values, dtype=np.float64)
