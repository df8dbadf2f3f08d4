"""Reasons: the features that set a caller apart from normal traffic, in an operator's words.

Training records, for every feature, the 1st, 50th and 99th percentiles of
the ``normal`` rows (:func:`reference_from_table`); they travel in the
model's metadata. :func:`explain` measures how far beyond the normal range
each feature of a scored caller lies (in units of the normal spread, in the
direction that is suspicious for that feature), keeps the furthest, one per
kind of feature (short or long window, whichever is further), and phrases
each with its values, e.g. "short-call ratio 0.93 over 212 calls in 10 min".

Given the category a caller is flagged as, the reasons speak of the
behaviour that category names: the kinds of feature that characterise it
(:data:`CATEGORY_KINDS`; one-ring ratio, answer rate and night calls for
``one_ring``) come first when they stand out, then the other features that
stand out, and last those that name another category's behaviour
(a one-ring ratio for a marketing flag): a ``finance_marketing`` flag leads
with a one-ring reason only when nothing else stands out. For
``debt_collection`` calling the same numbers again and again is the
suspicious direction of the callee features (:data:`CATEGORY_TEMPLATES`).

A caller on a number of the kinds call centres and fraudsters dial from
(a 95/96/12xxx or 400/800 service number, a virtual-operator range, a number
abroad: :data:`CALLER_KIND_PHRASES`) gets that fact as one more reason after
the behavioural ones, since the model weighs it (``features.caller_number``).

These are the reasons an operator can check against the call records; they
describe what is unusual, not the model's internal attribution.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
from numpy.typing import NDArray

from features.config import FeatureConfig
from features.vector import FEATURE_NAMES
from models.registry_metadata import NORMAL_CLASS, ModelMetadata

__all__ = [
    "CALLER_KIND_PHRASES",
    "CATEGORY_KINDS",
    "CATEGORY_TEMPLATES",
    "REFERENCE_PREFIX",
    "SIGNATURE_KINDS",
    "Explainer",
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
    value += 0.0  # turns -0.0 into 0.0
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
    "inbound_ratio": _Template(
        "low",
        0.05,
        lambda v, n, w: (
            f"called by {v:.0%} as many numbers as it called in {w} (people are called "
            f"about as often as they call)"
        ),
    ),
}


# The calling number's kinds worth naming, in an operator's words; an
# ordinary mobile or fixed line is what people call from and is not named.
CALLER_KIND_PHRASES: dict[str, str] = {
    "caller_service_number": "calls from a service number (95/96/12xxx or 400/800)",
    "caller_virtual_operator": "calls from a virtual-operator number (170/171, 165/167)",
    "caller_international": "calls from a number abroad",
}


_MARKETING_KINDS = (
    "distinct_callees",
    "distinct_segments",
    "short_call_ratio",
    "answer_rate",
    "sequential_score",
)
_MARKETING = frozenset({"finance_marketing", "other_marketing", "real_estate"})

# The kinds of feature that characterise each category, i.e. the behaviour its
# name stands for; a flag of that category leads with those that stand out.
CATEGORY_KINDS: dict[str, tuple[str, ...]] = {
    "one_ring": ("one_ring_ratio", "answer_rate", "night_call_ratio"),
    "debt_collection": (
        "repeat_callee_ratio",
        "distinct_callee_ratio",
        "reciprocity",
        "call_volume",
    ),
    "finance_marketing": _MARKETING_KINDS,
    "other_marketing": _MARKETING_KINDS,
    "real_estate": _MARKETING_KINDS,
    "fraud": ("distinct_callees", "answer_rate", "mean_talk_s", "call_volume"),
}

# Kinds that name one behaviour: for a flag of any other category they come
# after every other feature that stands out.
SIGNATURE_KINDS: dict[str, frozenset[str]] = {
    "one_ring_ratio": frozenset({"one_ring"}),
    "sequential_score": _MARKETING,
}

# Where a category's suspicious direction differs from the usual one: a debt
# collector calls the same few numbers again and again, a marketer sprays.
CATEGORY_TEMPLATES: dict[str, dict[str, _Template]] = {
    "debt_collection": {
        "repeat_callee_ratio": _Template(
            "high",
            0.05,
            lambda v, n, w: f"{v:.0%} of callees in {w} were called more than once",
        ),
        "distinct_callee_ratio": _Template(
            "low",
            0.05,
            lambda v, n, w: (
                f"{_plural(n, 'call')} in {w} went to only {_plural(v * n, 'different number')}"
            ),
        ),
    },
}

# Rank of a reason for a flag's category: its own kinds, then the rest, then
# kinds that name another category; a kind that does not stand out after all.
_OWN, _OTHER, _FOREIGN, _INSIDE = 0, 1, 2, 3


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
    """The reference as flat metrics entries (``reference.<feature>.p99``)."""
    return {
        f"{REFERENCE_PREFIX}{name}.{key}": getattr(bounds, key)
        for name, bounds in reference.items()
        for key in _QUANTILES
    }


def reference_extra(reference: Reference) -> dict[str, dict[str, float]]:
    """The reference as the registry stores it: ``extra['reference']``."""
    return {
        name: {key: getattr(bounds, key) for key in _QUANTILES}
        for name, bounds in reference.items()
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
    category: str | None = None,
) -> tuple[str, ...]:
    """Up to ``top`` reasons, furthest beyond the normal range first.

    Then the calling number's kind when it is one of :data:`CALLER_KIND_PHRASES`.
    Only features beyond the normal 1st-99th percentile range are given;
    when none is, the single most unusual one is, so every decision carries
    at least one reason (if the reference covers any feature it measured). With a
    ``category``, the features that characterise it come first (module doc).

    >>> ref = {name: FeatureRange(0.0, 0.1, 0.3) for name in FEATURE_NAMES}
    >>> row = dict.fromkeys(FEATURE_NAMES, 0.1) | {"short_short_call_ratio": 0.93,
    ...                                            "short_call_volume": 212}
    >>> explain(row, ref, top=2)
    ('212 calls in 10 min', 'short-call ratio 0.93 over 212 calls in 10 min')
    >>> explain(row, ref, top=2, category="finance_marketing")
    ('short-call ratio 0.93 over 212 calls in 10 min', '212 calls in 10 min')
    """
    names = tuple(features)
    matrix = np.array([[float(features[name]) for name in names]], dtype=np.float64)
    categories = None if category is None else [category]
    return Explainer(names, reference, top=top, config=config).explain(matrix, categories)[0]


class Explainer:
    """:func:`explain` for a batch of rows: the ranking is vectorised with numpy.

    Built once per model (its feature order and reference), then called per batch.
    Categories it has no profile for (``normal``, or one added later) are
    explained as without a category: furthest beyond the normal range first.
    """

    def __init__(
        self,
        feature_names: Sequence[str],
        reference: Reference,
        top: int = 3,
        *,
        config: FeatureConfig | None = None,
    ) -> None:
        config = config or FeatureConfig()
        windows = {
            "short": _window_words(config.short_window_s),
            "long": _window_words(config.long_window_s),
        }
        names = list(feature_names)
        self.top = top
        self._columns: list[int] = []
        self._window_words: list[str] = []
        self._volume_columns: list[int] = []
        kinds: list[str] = []
        for column, name in enumerate(names):
            window, _, base = name.partition("_")
            if base not in _TEMPLATES or name not in reference or window not in windows:
                continue
            volume = f"{window}_call_volume"
            self._columns.append(column)
            self._window_words.append(windows[window])
            self._volume_columns.append(names.index(volume) if volume in names else -1)
            kinds.append(base)
        # Row 0 of every per-category table is "no category"; the profiles follow.
        self._category_ids = {category: i + 1 for i, category in enumerate(CATEGORY_KINDS)}
        profiles: list[str | None] = [None, *CATEGORY_KINDS]
        self._templates = [[_template(kind, category) for kind in kinds] for category in profiles]
        self._groups = np.array(
            [[_group(kind, category) for kind in kinds] for category in profiles], dtype=np.int64
        ).reshape(len(profiles), len(kinds))
        bounds = [reference[names[column]] for column in self._columns]
        self._p01 = np.array([b.p01 for b in bounds])
        self._p50 = np.array([b.p50 for b in bounds])
        self._p99 = np.array([b.p99 for b in bounds])
        shape = self._groups.shape
        floors = np.array([[t.floor for t in row] for row in self._templates]).reshape(shape)
        self._high_spread = np.maximum(self._p99 - self._p50, floors)
        self._low_spread = np.maximum(self._p50 - self._p01, floors)
        self._use_high = np.array(
            [[t.direction in ("high", "both") for t in row] for row in self._templates], dtype=bool
        ).reshape(shape)
        self._use_low = np.array(
            [[t.direction in ("low", "both") for t in row] for row in self._templates], dtype=bool
        ).reshape(shape)
        self._kind_ids = np.unique(np.array(kinds, dtype=str), return_inverse=True)[1]
        self._caller_kinds = [
            (column, CALLER_KIND_PHRASES[name])
            for column, name in enumerate(names)
            if name in CALLER_KIND_PHRASES
        ]

    def excess(
        self, matrix: NDArray[np.float64], categories: Sequence[str] | None = None
    ) -> NDArray[np.float64]:
        """Per row and explained feature: normal spreads beyond the normal range (<= 0 inside).

        ``categories``: one per row; a category's own suspicious directions apply.
        """
        values = np.asarray(matrix, dtype=np.float64)[:, self._columns]
        profile = self._profile_ids(categories, len(values))
        with np.errstate(invalid="ignore"):
            high = np.where(
                self._use_high[profile], (values - self._p99) / self._high_spread[profile], -np.inf
            )
            low = np.where(
                self._use_low[profile], (self._p01 - values) / self._low_spread[profile], -np.inf
            )
        return np.where(np.isfinite(values), np.maximum(high, low), -np.inf)

    def explain(
        self, matrix: NDArray[np.float64], categories: Sequence[str] | None = None
    ) -> list[tuple[str, ...]]:
        """Reasons for each row of ``matrix`` (columns in the order given at construction).

        ``categories``: the category each row is flagged as, or ``None`` to
        rank by distance from normal traffic alone.
        """
        matrix = np.asarray(matrix, dtype=np.float64)
        if not self._columns:
            return [self._number_kind(row) for row in matrix]
        profile = self._profile_ids(categories, len(matrix))
        excess = self.excess(matrix, categories)
        rank = self._groups[profile] + np.where(excess > 0, 0, _INSIDE)
        # lexsort: the last key sorts first; both keys keep ties in column order.
        order = np.lexsort((-excess, rank), axis=1)
        reasons = []
        for row in range(len(matrix)):
            # One reason per kind: the short and long twins compete for one place.
            kinds_seen: set[int] = set()
            picked: list[int] = []
            for position in order[row]:
                kind = int(self._kind_ids[position])
                if kind in kinds_seen:
                    continue
                kinds_seen.add(kind)
                picked.append(int(position))
                if len(picked) == self.top:
                    break
            # Nothing beyond the normal range: the most unusual feature measured (a
            # missing one, such as calls received the feed does not show, says nothing).
            measured = [p for p in picked if np.isfinite(matrix[row, self._columns[p]])]
            beyond = [p for p in picked if excess[row, p] > 0] or measured[:1]
            templates = self._templates[profile[row]]
            behaviour = tuple(self._phrase(matrix[row], p, templates) for p in beyond)
            reasons.append(behaviour + self._number_kind(matrix[row]))
        return reasons

    def _number_kind(self, row: NDArray[np.float64]) -> tuple[str, ...]:
        """The calling number's kind, when it is one worth naming (at most one is set)."""
        return tuple(phrase for column, phrase in self._caller_kinds if row[column] > 0.5)

    def _profile_ids(self, categories: Sequence[str] | None, rows: int) -> NDArray[np.intp]:
        if categories is None:
            return np.zeros(rows, dtype=np.intp)
        if len(categories) != rows:
            raise ValueError(f"{len(categories)} categories for {rows} rows")
        return np.array([self._category_ids.get(c, 0) for c in categories], dtype=np.intp)

    def _phrase(
        self, row: NDArray[np.float64], position: int, templates: Sequence[_Template]
    ) -> str:
        volume_column = self._volume_columns[position]
        calls = float(row[volume_column]) if volume_column >= 0 else 0.0
        value = float(row[self._columns[position]])
        return templates[position].phrase(value, calls, self._window_words[position])


def _template(kind: str, category: str | None) -> _Template:
    overrides = CATEGORY_TEMPLATES.get(category, {}) if category is not None else {}
    return overrides.get(kind, _TEMPLATES[kind])


def _group(kind: str, category: str | None) -> int:
    if category is None:
        return _OTHER
    if kind in CATEGORY_KINDS[category]:
        return _OWN
    named = SIGNATURE_KINDS.get(kind)
    return _FOREIGN if named is not None and category not in named else _OTHER
