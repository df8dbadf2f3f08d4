"""The features: one pure function each, from one window's aggregate.

Every function takes an :class:`~features.aggregate.Aggregates` whose rows
are windows (each window's buckets already combined) and returns one float
per row, so the streaming state (one row) and the offline path (a row per
caller and window end) run the same code. Ratios with an empty denominator
are 0. :data:`FEATURE_NAMES` fixes the
order of the feature vector: the per-window names below, first for the
short window (``short_`` prefix), then for the long one (``long_``)
(:data:`WINDOW_FEATURE_NAMES`, what the feature engines compute), then the
calling number's own kind (:data:`features.caller_number.CALLER_FEATURES`,
added where a row meets its number).
"""

from __future__ import annotations

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
from features.caller_number import CALLER_FEATURES
from features.sketch import kmv_distinct, kmv_repeat_share, segment_distinct, segment_entropy

__all__ = [
    "FEATURE_NAMES",
    "WINDOW_FEATURE_NAMES",
    "WINDOW_FEATURES",
    "answer_rate",
    "call_volume",
    "complaints",
    "distinct_callee_ratio",
    "distinct_callees",
    "distinct_segments",
    "PER_WINDOW",
    "gap_cv",
    "gap_mean_s",
    "inbound_ratio",
    "mean_talk_s",
    "night_call_ratio",
    "one_ring_ratio",
    "reciprocity",
    "repeat_callee_ratio",
    "segment_entropy_bits",
    "sequential_score",
    "short_call_ratio",
    "window_features",
]


Column = NDArray[np.float64]


def _ratio(numerator: NDArray[np.generic], denominator: NDArray[np.generic]) -> Column:
    top = np.asarray(numerator, dtype=np.float64)
    bottom = np.asarray(denominator, dtype=np.float64)
    return np.divide(top, bottom, out=np.zeros_like(top), where=bottom != 0)


def call_volume(agg: Aggregates) -> Column:
    """``calls``: calls placed in the window, whatever their outcome."""
    return agg.counters[:, CALLS].astype(np.float64)


def answer_rate(agg: Aggregates) -> Column:
    """``answered / calls``."""
    return _ratio(agg.counters[:, ANSWERED], agg.counters[:, CALLS])


def short_call_ratio(agg: Aggregates) -> Column:
    """``answered calls with talk time < short_call_s / answered calls``."""
    return _ratio(agg.counters[:, SHORT_ANSWERED], agg.counters[:, ANSWERED])


def one_ring_ratio(agg: Aggregates) -> Column:
    """``unanswered calls with 0 < ring_s < one_ring_s / calls``.

    Calls whose ring time is unknown, or that never rang, are not one-ring.
    """
    return _ratio(agg.counters[:, ONE_RING], agg.counters[:, CALLS])


def night_call_ratio(agg: Aggregates) -> Column:
    """``calls starting in [night_start_hour, night_end_hour) local time / calls``.

    Local time is the configured zone (Asia/Shanghai, UTC+8, no DST).
    """
    return _ratio(agg.counters[:, NIGHT], agg.counters[:, CALLS])


def mean_talk_s(agg: Aggregates) -> Column:
    """``sum of talk time / answered calls``, in seconds (talk time rounded to ms)."""
    return _ratio(agg.counters[:, TALK_MS], agg.counters[:, ANSWERED]) / 1000.0


def distinct_callees(agg: Aggregates) -> Column:
    """Distinct callees: exact up to ``kmv_k``, then the bottom-k estimate.

    Relative standard error about ``1 / sqrt(kmv_k - 2)`` beyond ``kmv_k``
    (27 % for 16); see :mod:`features.sketch`.
    """
    return kmv_distinct(agg.kmv_hash, agg.counters[:, CALLS])


def distinct_callee_ratio(agg: Aggregates) -> Column:
    """``distinct_callees / calls`` (1 for a caller who never calls anyone twice)."""
    return _ratio(distinct_callees(agg), agg.counters[:, CALLS])


def repeat_callee_ratio(agg: Aggregates) -> Column:
    """``distinct callees called at least twice / distinct callees``.

    Exact up to ``kmv_k`` distinct callees, then measured on the sketch's
    uniform sample of ``kmv_k`` callees (standard error <= 0.125 for 16).
    """
    return kmv_repeat_share(agg.kmv_count)


def distinct_segments(agg: Aggregates) -> Column:
    """Distinct callee segments (号段): ``B ln(B / empty counters)`` (linear counting).

    From a histogram of ``B = segment_bins`` hashed counters; about 1.03 for
    one segment with B = 16, saturating near ``B ln(2B)`` (55).
    """
    return segment_distinct(agg.segment_hist)


def segment_entropy_bits(agg: Aggregates) -> Column:
    """``-sum(p_i log2 p_i)`` over the share ``p_i`` of calls to each segment counter.

    0 when every call goes to one segment; at most ``log2(segment_bins)``.
    """
    return segment_entropy(agg.segment_hist)


def sequential_score(agg: Aggregates) -> Column:
    """``sequential pairs / successive pairs`` of calls in event-time order.

    A pair is sequential when both callees share a segment and their numbers
    differ by 1 to ``sequential_max_gap``.
    """
    return _ratio(agg.counters[:, SEQUENTIAL_PAIRS], agg.counters[:, GAP_COUNT])


def gap_mean_s(agg: Aggregates) -> Column:
    """``sum of gaps / number of gaps`` between successive call starts, in seconds."""
    return _ratio(agg.counters[:, GAP_SUM_MS], agg.counters[:, GAP_COUNT]) / 1000.0


def gap_cv(agg: Aggregates) -> Column:
    """Coefficient of variation of the gaps: ``std / mean`` (population std).

    ``std = sqrt(sum(g^2) / n - mean^2)``; 0 with no gap or a zero mean. Low
    values mean machine-regular dialling.
    """
    mean = _ratio(agg.counters[:, GAP_SUM_MS], agg.counters[:, GAP_COUNT])
    mean_square = _ratio(agg.counters[:, GAP_SUMSQ_MS2], agg.counters[:, GAP_COUNT])
    std = np.sqrt(np.maximum(0.0, mean_square - mean * mean))
    return _ratio(std, mean)


def complaints(agg: Aggregates) -> Column:
    """Complaints received about the caller, by their report time, in the window."""
    return agg.counters[:, COMPLAINTS].astype(np.float64)


def reciprocity(called_back: NDArray[np.integer], sampled: NDArray[np.integer]) -> Column:
    """``sampled callees who called the caller / sampled callees``.

    The sample is the window's bottom-k callee sketch, i.e. every distinct
    callee up to ``kmv_k``; "called the caller" means within the inbound
    horizon (see :mod:`features.reference.state` and :mod:`features.offline`).
    """
    return _ratio(called_back, sampled)


def inbound_ratio(inbound_callers: NDArray[np.floating], agg: Aggregates) -> Column:
    """``numbers that called the caller / distinct callees`` of the window.

    The numbers are those that called the caller within the inbound horizon
    (this inbound generation and the one before, up to the window's end),
    estimated from the caller's inbound filter in the stream
    (:func:`features.sketch.bloom_cardinality`) and counted exactly offline.
    People are called as well as calling: an ordinary subscriber hears from
    about as many numbers as it dials, a line that only dials out hears from
    almost nobody, whatever it dials and however it is answered.
    """
    return _ratio(np.asarray(inbound_callers, dtype=np.float64), distinct_callees(agg))


FeatureFunction = Callable[[Aggregates], Column]

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
PER_WINDOW = (*WINDOW_FEATURES, "reciprocity", "inbound_ratio")
WINDOW_FEATURE_NAMES: tuple[str, ...] = tuple(
    f"{window}_{name}" for window in ("short", "long") for name in PER_WINDOW
)
FEATURE_NAMES: tuple[str, ...] = (*WINDOW_FEATURE_NAMES, *CALLER_FEATURES)


def window_features(
    agg: Aggregates, reciprocity_values: Column, inbound_callers: Column
) -> NDArray[np.float64]:
    """``(n, 17)``: each row's features for one window, in ``PER_WINDOW`` order.

    The short window's features fill the first half of
    :data:`WINDOW_FEATURE_NAMES`, the long window's the second half.
    """
    columns = [function(agg) for function in WINDOW_FEATURES.values()]
    columns.append(np.asarray(reciprocity_values, dtype=np.float64))
    columns.append(inbound_ratio(inbound_callers, agg))
    return np.column_stack(columns)
