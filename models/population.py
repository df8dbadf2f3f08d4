"""The second signal: how far a caller's behaviour lies in the population's suspicious tails.

The classifier learns categories from labels, and labels come from whatever
traffic it was trained on; a campaign of a shape it never saw can fall
between its classes. This signal needs no label: it compares each caller
with the population of scored callers that are not nuisance (ordinary
subscribers and legitimate bulk callers), feature by feature, in the
direction that nuisance calling pushes a feature whatever its shape: callees
who never call back, callees never called before, calls not answered or cut
short, one-ring calls, complaints, volume.

For each feature of :data:`SUSPICIOUS` the *tail share* is the share of the
population at least as extreme in the suspicious direction; the
:func:`PopulationReference.anomaly` of a row is the mean over those features
of ``-log10(tail share)``, each capped at :data:`_MAX_BITS` (4: rarer than one
in 10,000). 0 means typical; 2 means, on average, beyond the 1% tail.

How it combines with the classifier (:class:`ReviewRule`): a caller whose
classifier score is below the ``watch`` threshold but at least the rule's
``score_floor``, *and* whose anomaly is at least its ``anomaly_floor``, is
put on ``watch`` (never ``block``): two independent signals that agree send
a caller the classifier alone is unsure of to the review queue, and the
reasons say which tails it lies in (:meth:`PopulationReference.reasons`).
Training chooses the rule on the validation callers
(:func:`choose_review_rule`) under the same precision and false-flag limits
as the ``watch`` threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "SUSPICIOUS",
    "PopulationReference",
    "ReviewRule",
    "choose_review_rule",
    "effective_scores",
    "population_of",
]

# Feature -> +1 when high values are suspicious, -1 when low ones are; and an
# operator's wording of the suspicious tail.
SUSPICIOUS: Mapping[str, tuple[int, str]] = {
    "long_reciprocity": (-1, "few callees call back"),
    "long_distinct_callee_ratio": (+1, "almost every call to a new number"),
    "long_distinct_callees": (+1, "many different numbers called"),
    "long_answer_rate": (-1, "few calls answered"),
    "long_short_call_ratio": (+1, "answered calls cut short"),
    "long_one_ring_ratio": (+1, "calls that ring once"),
    "long_complaints": (+1, "complaints"),
    "long_call_volume": (+1, "many calls"),
}
_QUANTILES = 1001
_MAX_BITS = 4.0


@dataclass(frozen=True)
class PopulationReference:
    """Quantiles of each suspicious feature over the non-nuisance population of scored rows.

    >>> rng = np.random.default_rng(0)
    >>> normal = rng.uniform(0, 1, (5000, 2))
    >>> ref = PopulationReference.fit(normal, ["long_reciprocity", "long_call_volume"])
    >>> rows = np.array([[0.5, 0.5], [0.0001, 0.9999]])
    >>> ref.anomaly(rows, ["long_reciprocity", "long_call_volume"]).round(1).tolist()
    [0.3, 3.7]
    """

    features: tuple[str, ...]
    quantiles: NDArray[np.float64]  # (features, _QUANTILES)
    population: int

    @classmethod
    def fit(cls, normal: NDArray[np.float64], feature_names: Sequence[str]) -> PopulationReference:
        """The reference from normal rows (columns in ``feature_names`` order)."""
        used = [name for name in feature_names if name in SUSPICIOUS]
        columns = [list(feature_names).index(name) for name in used]
        if len(normal) == 0:
            raise ValueError("the population reference needs at least one normal row")
        grid = np.linspace(0.0, 1.0, _QUANTILES)
        quantiles = np.quantile(normal[:, columns], grid, axis=0).T
        return cls(tuple(used), np.ascontiguousarray(quantiles), int(len(normal)))

    def tail_bits(
        self, matrix: NDArray[np.float64], feature_names: Sequence[str]
    ) -> NDArray[np.float64]:
        """``(rows, features)``: ``-log10`` of each value's tail share, capped at 4."""
        names = list(feature_names)
        floor = max(1.0 / (self.population + 1), 10.0**-_MAX_BITS)
        bits = np.zeros((len(matrix), len(self.features)))
        for position, name in enumerate(self.features):
            direction, _ = SUSPICIOUS[name]
            values = matrix[:, names.index(name)]
            grid = self.quantiles[position]
            if direction > 0:  # share of the population at or above the value
                share = 1.0 - np.searchsorted(grid, values, side="left") / _QUANTILES
            else:  # share at or below it
                share = np.searchsorted(grid, values, side="right") / _QUANTILES
            bits[:, position] = np.where(
                np.isnan(values), 0.0, -np.log10(np.maximum(share, floor))
            )
        return np.minimum(bits, _MAX_BITS)

    def anomaly(
        self, matrix: NDArray[np.float64], feature_names: Sequence[str]
    ) -> NDArray[np.float64]:
        """Mean capped tail bits per row: 0 typical, 4 beyond every tail.

        A missing feature (NaN, such as the features of calls received when the
        feed shows none) is left out of its row's mean.

        >>> ref = PopulationReference.fit(np.linspace(0, 1, 101)[:, None] * [1, 1],
        ...                               ["long_reciprocity", "long_call_volume"])
        >>> ref.anomaly(np.array([[np.nan, 1.0], [1.0, 1.0]]),
        ...             ["long_reciprocity", "long_call_volume"]).round(1).tolist()
        [2.0, 1.0]
        """
        if not self.features:
            return np.zeros(len(matrix))
        names = list(feature_names)
        values = np.asarray(matrix, dtype=np.float64)[:, [names.index(n) for n in self.features]]
        present = np.maximum((~np.isnan(values)).sum(axis=1), 1)
        return np.asarray(self.tail_bits(matrix, feature_names).sum(axis=1) / present)

    def reasons(
        self, matrix: NDArray[np.float64], feature_names: Sequence[str], top: int = 3
    ) -> list[tuple[str, ...]]:
        """Per row: the tails the caller lies furthest in, in words, most extreme first."""
        bits = self.tail_bits(matrix, feature_names)
        order = np.argsort(-bits, axis=1, kind="stable")[:, :top]
        reasons = []
        for row, columns in enumerate(order):
            texts = []
            for column in columns:
                if bits[row, column] < 2.0:  # within the commonest 1%: not worth saying
                    break
                share = 10.0 ** -bits[row, column]
                name = self.features[column]
                texts.append(
                    f"unlike {100 * (1 - share):.1f}% of callers: {SUSPICIOUS[name][1]} "
                    f"({name.removeprefix('long_').replace('_', ' ')} "
                    f"{matrix[row, list(feature_names).index(name)]:.2f} in 24 h)"
                )
            reasons.append(tuple(texts))
        return reasons

    def to_json(self) -> dict[str, Any]:
        """What the registry stores (``extra['population']``)."""
        return {
            "features": list(self.features),
            "quantiles": self.quantiles.tolist(),
            "population": self.population,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PopulationReference:
        """The reference :meth:`to_json` stored."""
        return cls(
            tuple(data["features"]),
            np.asarray(data["quantiles"], dtype=np.float64).reshape(len(data["features"]), -1),
            int(data["population"]),
        )


@dataclass(frozen=True)
class ReviewRule:
    """Watch a caller whose score is at least ``score_floor`` and anomaly ``anomaly_floor``.

    A rule that never fires has ``score_floor`` 1.0 (see :data:`NEVER`).
    ``block_anomaly``: a ``block`` also needs the population to agree, the
    caller's anomaly at least this; a score at ``block`` with less is a
    ``watch`` (0: the classifier alone decides). ``block_min_calls``: a
    ``block`` also needs this many calls in the long window; with fewer, a
    block-level score is a ``watch`` (0: no minimum).
    """

    score_floor: float
    anomaly_floor: float
    block_anomaly: float = 0.0
    block_min_calls: float = 0.0

    def fires(
        self, scores: NDArray[np.float64], anomaly: NDArray[np.float64]
    ) -> NDArray[np.bool_]:
        """Rows the rule puts on watch (whatever the classifier's own tier)."""
        return np.asarray((scores >= self.score_floor) & (anomaly >= self.anomaly_floor))

    def to_json(self) -> dict[str, float]:
        """What the registry stores (``extra['population']['review']``)."""
        return {"score_floor": self.score_floor, "anomaly_floor": self.anomaly_floor,
                "block_anomaly": self.block_anomaly, "block_min_calls": self.block_min_calls}


NEVER = ReviewRule(1.0, 1e9)
_SCORE_FLOORS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
_ANOMALY_FLOORS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)


def effective_scores(
    scores: NDArray[np.float64],
    anomaly: NDArray[np.float64],
    watch: float,
    rule: ReviewRule,
) -> NDArray[np.float64]:
    """Scores with the rule applied: a row it fires on counts at least as ``watch``.

    >>> effective_scores(
    ...     np.array([0.6, 0.6, 0.99]), np.array([1.0, 0.1, 0.0]), 0.95, ReviewRule(0.5, 0.5)
    ... ).tolist()
    [0.95, 0.6, 0.99]
    """
    return np.where(rule.fires(scores, anomaly), np.maximum(scores, watch), scores)


def may_block(
    anomaly: NDArray[np.float64],
    rule: ReviewRule,
    long_calls: NDArray[np.float64] | None = None,
) -> NDArray[np.bool_]:
    """Rows whose anomaly (and long-window calls) let a block-level score block (else: watch).

    >>> rule = ReviewRule(1.0, 1e9, block_anomaly=0.5, block_min_calls=20)
    >>> may_block(np.array([0.2, 0.7, 0.7]), rule, np.array([30, 30, 10])).tolist()
    [False, True, False]
    """
    allowed = anomaly >= rule.block_anomaly
    if long_calls is not None:
        allowed &= np.asarray(long_calls) >= rule.block_min_calls
    return np.asarray(allowed)


def choose_review_rule(
    callers: Sequence[str] | NDArray[np.str_],
    scores: NDArray[np.float64],
    anomaly: NDArray[np.float64],
    is_nuisance: NDArray[np.bool_],
    is_legit_bulk: NDArray[np.bool_],
    *,
    watch: float,
    target_precision: float,
    max_legit_flag_rate: float,
    max_ordinary_flag_rate: float,
) -> ReviewRule:
    """The rule flagging most nuisance callers on the validation rows within the limits.

    A caller is flagged when any of its rows reaches ``watch`` or the rule
    fires on it. Limits, by caller: precision at least ``target_precision``;
    no more legitimate bulk callers, and no more ordinary callers, flagged than
    the classifier's ``watch`` threshold alone flags plus ``max_false_flag_rate``
    of them (rounded down: with fewer than ``1 / rate`` callers, none). Ties go
    to the stricter rule. :data:`NEVER` when no rule adds a caller.
    """
    ids = np.unique(np.asarray(callers), return_inverse=True)[1]
    count = int(ids.max()) + 1 if len(ids) else 0
    nuisance = np.bincount(ids, weights=is_nuisance, minlength=count) > 0
    legit = (np.bincount(ids, weights=is_legit_bulk, minlength=count) > 0) & ~nuisance
    ordinary = ~nuisance & ~legit

    def flagged(rows: NDArray[np.bool_]) -> NDArray[np.bool_]:
        return np.bincount(ids, weights=rows, minlength=count) > 0

    base = flagged(scores >= watch)
    allowed_legit = base[legit].sum() + int(max_legit_flag_rate * legit.sum())
    allowed_ordinary = base[ordinary].sum() + int(max_ordinary_flag_rate * ordinary.sum())
    best, best_caught = NEVER, int(base[nuisance].sum())
    for score_floor in sorted(_SCORE_FLOORS, reverse=True):
        for anomaly_floor in sorted(_ANOMALY_FLOORS, reverse=True):
            rule = ReviewRule(score_floor, anomaly_floor)
            hit = base | flagged(rule.fires(scores, anomaly))
            caught = int(hit[nuisance].sum())
            if (
                caught <= best_caught
                or hit[legit].sum() > allowed_legit
                or hit[ordinary].sum() > allowed_ordinary
                or caught / max(int(hit.sum()), 1) < target_precision
            ):
                continue
            best, best_caught = rule, caught
    return best


def population_of(metadata: Any) -> tuple[PopulationReference | None, ReviewRule]:
    """The reference and review rule a registered model carries (``extra['population']``).

    Models registered without one get ``(None, NEVER)``: no second signal.
    """
    stored = getattr(metadata, "extra", {}).get("population")
    if not stored:
        return None, NEVER
    review = stored.get("review", {})
    rule = ReviewRule(
        float(review.get("score_floor", NEVER.score_floor)),
        float(review.get("anomaly_floor", NEVER.anomaly_floor)),
        float(review.get("block_anomaly", NEVER.block_anomaly)),
        float(review.get("block_min_calls", NEVER.block_min_calls)),
    )
    return PopulationReference.from_json(stored), rule
