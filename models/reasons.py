"""Reasons: the features that set a caller apart from normal traffic, in an operator's words.

Training records, for every feature, the 1st, 50th and 99th percentiles of
the ``normal`` rows (:func:`reference_from_table`); they travel in the
model's metadata. :func:`explain` measures how far beyond the normal range
each feature of a scored caller lies (in units of the normal spread, in the
direction that is suspicious for that feature), keeps the furthest, one per
kind of feature (short or long window, whichever is further), and phrases
each with its values, e.g. "short-call ratio 0.93 over 212 calls in 10 min".

These are the reasons an operator can check against the call records; they
describe what is unusual, not the model's internal attribution.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from features.config import FeatureConfig
from features.vector import FEATURE_NAMES
from models.registry_metadata import NORMAL_CLASS, ModelMetadata

__all__ = [
    "REFERENCE_PREFIX",
    "FeatureRange",
    "Reference",
    "explain",
    "reference_from_metadata",
    "reference_from_table",
    "reference_metrics",
]

REFERENCE_PREFIX = "reference."
_QUANTILES = {"p01": 0.01, "p50": 0.5, "p99": 0.99}


@dataclass(frozen=True)
class FeatureRange:
    """Percentiles of one feature over normal callers."""

    p01: float
    p50: float
    p99: float


Reference = Mapping[str, FeatureRange]
Direction = Literal["high", "low", "both"]


@dataclass(frozen=True)
class _Template:
    direction: Direction
    floor: float  # smallest spread that counts, so a constant normal value is not infinitely far
    phrase: Callable[[float, float, str], str]  # (value, calls in window, window) -> words


def _plural(count: float, word: str) -> str:
    return f"{count:.0f} {word}{'' if round(count) == 1 else 's'}"


def _entropy(value: float, calls: float, window: str) -> str:
    return f"callee number segments spread with {value:.1f} bits of entropy in {window}"


_TEMPLATES: dict[str, _Template] = {
    "call_volume": _Template("high", 1.0, lambda v, n, w: f"{_plural(v, 'call')} in {w}"),
    "answer_rate": _Template(
        "low", 0.05, lambda v, n, w: f"only {v:.0%} of {_plural(n, 'call')} answered in {w}"
    ),
    "short_call_ratio": _Template(
        "high", 0.05, lambda v, n, w: f"short-call ratio {v:.2f} over {_plural(n, 'call')} in {w}"
    ),
    "one_ring_ratio": _Template(
        "high",
        0.05,
        lambda v, n, w: (
            f"{v:.0%} of {_plural(n, 'call')} in {w} unanswered with under "
            f"3 s of ringing (one-ring)"
        ),
    ),
    "night_call_ratio": _Template(
        "high",
        0.05,
        lambda v, n, w: f"{v:.0%} of {_plural(n, 'call')} in {w} at night (22:00-07:00)",
    ),
    "mean_talk_s": _Template(
        "low", 1.0, lambda v, n, w: f"answered calls lasted {v:.0f} s on average in {w}"
    ),
    "distinct_callees": _Template(
        "high", 1.0, lambda v, n, w: f"{_plural(v, 'different number')} called in {w}"
    ),
    "distinct_callee_ratio": _Template(
        "high",
        0.05,
        lambda v, n, w: f"{v:.0%} of {_plural(n, 'call')} in {w} went to a different number",
    ),
    "repeat_callee_ratio": _Template(
        "low", 0.05, lambda v, n, w: f"only {v:.0%} of callees in {w} were called more than once"
    ),
    "distinct_segments": _Template(
        "high", 1.0, lambda v, n, w: f"callees spread over {v:.0f} number segments in {w}"
    ),
    "segment_entropy": _Template("both", 0.1, _entropy),
    "sequential_score": _Template(
        "high",
        0.05,
        lambda v, n, w: (
            f"{v:.0%} of successive calls in {w} dialled in sequence through a number segment"
        ),
    ),
    "gap_mean_s": _Template(
        "low", 1.0, lambda v, n, w: f"a call every {v:.0f} s on average in {w}"
    ),
    "gap_cv": _Template(
        "low",
        0.05,
        lambda v, n, w: f"machine-regular dialling in {w}: gaps between calls vary by only {v:.0%}",
    ),
    "complaints": _Template("high", 1.0, lambda v, n, w: f"{_plural(v, 'complaint')} in {w}"),
    "reciprocity": _Template(
        "low",
        0.05,
        lambda v, n, w: f"only {v:.0%} of callees in {w} ever called this number",
    ),
}


def _window_words(seconds: int) -> str:
    """``600 -> '10 min'``, ``86400 -> '24 h'``."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def reference_from_table(table: pl.DataFrame) -> dict[str, FeatureRange]:
    """Percentiles of every feature over the ``normal`` rows of a training table."""
    normal = table.filter(pl.col("label") == NORMAL_CLASS)
    if normal.is_empty():
        raise ValueError("the table has no normal rows to take a reference from")
    stats = normal.select(
        pl.col(name).quantile(q, interpolation="linear").alias(f"{name}|{key}")
        for name in FEATURE_NAMES
        for key, q in _QUANTILES.items()
    ).row(0, named=True)
    return {
        name: FeatureRange(*(float(stats[f"{name}|{key}"]) for key in _QUANTILES))
        for name in FEATURE_NAMES
    }


def reference_metrics(reference: Reference) -> dict[str, float]:
    """The reference as flat metrics entries (``reference.<feature>.p99``) for the registry."""
    return {
        f"{REFERENCE_PREFIX}{name}.{key}": getattr(bounds, key)
        for name, bounds in reference.items()
        for key in _QUANTILES
    }


def reference_from_metadata(metadata: ModelMetadata) -> dict[str, FeatureRange]:
    """The reference stored with a model: ``extra['reference']`` or the metrics entries."""
    stored = metadata.extra.get("reference")
    if isinstance(stored, Mapping):
        return {str(name): FeatureRange(**dict(bounds)) for name, bounds in stored.items()}
    flat = {
        key.removeprefix(REFERENCE_PREFIX): value
        for key, value in metadata.metrics.items()
        if key.startswith(REFERENCE_PREFIX)
    }
    names = {key.rsplit(".", 1)[0] for key in flat}
    return {
        name: FeatureRange(*(flat[f"{name}.{key}"] for key in _QUANTILES))
        for name in names
        if all(f"{name}.{key}" in flat for key in _QUANTILES)
    }


def explain(
    features: Mapping[str, float],
    reference: Reference,
    top: int = 3,
    *,
    config: FeatureConfig | None = None,
) -> tuple[str, ...]:
    """Up to ``top`` reasons, furthest beyond the normal range first.

    Only features beyond the normal 1st-99th percentile range are given;
    when none is, the single most unusual one is, so every decision carries
    at least one reason (if the reference covers any feature).

    >>> ref = {name: FeatureRange(0.0, 0.1, 0.3) for name in FEATURE_NAMES}
    >>> row = dict.fromkeys(FEATURE_NAMES, 0.1) | {"short_short_call_ratio": 0.93,
    ...                                            "short_call_volume": 212}
    >>> explain(row, ref, top=2)
    ('212 calls in 10 min', 'short-call ratio 0.93 over 212 calls in 10 min')
    """
    config = config or FeatureConfig()
    windows = {
        "short": _window_words(config.short_window_s),
        "long": _window_words(config.long_window_s),
    }
    best: dict[str, tuple[float, str]] = {}
    for name, value in features.items():
        window, _, base = name.partition("_")
        template = _TEMPLATES.get(base)
        bounds = reference.get(name)
        if template is None or bounds is None or window not in windows:
            continue
        excess = _excess(float(value), bounds, template)
        if base not in best or excess > best[base][0]:
            calls = float(features.get(f"{window}_call_volume", 0.0))
            best[base] = (excess, template.phrase(float(value), calls, windows[window]))
    ranked = sorted(best.values(), key=lambda item: -item[0])
    beyond = [words for excess, words in ranked if excess > 0]
    return tuple(beyond[:top]) if beyond else tuple(words for _, words in ranked[:1])


def _excess(value: float, bounds: FeatureRange, template: _Template) -> float:
    """How far ``value`` lies beyond the normal range, in normal spreads (<= 0 inside it)."""
    if not np.isfinite(value):
        return -np.inf
    high = (value - bounds.p99) / max(bounds.p99 - bounds.p50, template.floor)
    low = (bounds.p01 - value) / max(bounds.p50 - bounds.p01, template.floor)
    if template.direction == "high":
        return high
    if template.direction == "low":
        return low
    return max(high, low)
