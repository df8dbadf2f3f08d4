"""Batch scoring: one predict_proba per batch, same as row by row, order kept, shapes checked."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from features.caller_number import CALLER_FEATURES
from features.vector import FEATURE_NAMES, WINDOW_FEATURE_NAMES
from models.decisions import DecisionPolicy
from models.reasons import CALLER_KIND_PHRASES, FeatureRange
from models.registry import LoadedModel
from models.scoring import BatchScorer, nuisance_scores
from tests.unit.model_metadata import model_metadata

CLASSES = ("fraud", "normal", "one_ring")


class CountingModel:
    """Wraps a classifier and counts predict_proba calls."""

    def __init__(self, model: Any) -> None:
        self.model, self.calls = model, 0

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.model.predict_proba(matrix)


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    """Window features anywhere in 0-50; the calling number's kind one-hot (or mobile)."""
    rng = np.random.default_rng(3)
    window = rng.uniform(0, 1, size=(40, len(WINDOW_FEATURE_NAMES))) * 50
    kinds = np.eye(len(CALLER_FEATURES) + 1)[rng.integers(0, len(CALLER_FEATURES) + 1, 40)]
    return np.hstack([window, kinds[:, : len(CALLER_FEATURES)]])


@pytest.fixture()
def scorer(rows: np.ndarray) -> BatchScorer:
    labels = np.array(CLASSES)[np.arange(len(rows)) % 3]
    model = HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(rows, labels)
    metadata = model_metadata(CLASSES, metrics={"reference.short_call_volume.p01": 1.0,
                                                "reference.short_call_volume.p50": 6.0,
                                                "reference.short_call_volume.p99": 12.0})
    return BatchScorer(LoadedModel(CountingModel(model), metadata))


def test_batch_equals_row_by_row_and_keeps_order(scorer: BatchScorer, rows: np.ndarray) -> None:
    numbers = [f"+86138{i:08d}" for i in range(len(rows))]
    batch = scorer.score(numbers, 1_000, rows)
    single = [scorer.score([n], 1_000, rows[i : i + 1])[0] for i, n in enumerate(numbers)]
    assert [s.number for s in batch] == numbers
    assert batch == single


def test_one_predict_call_per_batch(scorer: BatchScorer, rows: np.ndarray) -> None:
    scorer.score([str(i) for i in range(len(rows))], list(range(len(rows))), rows)
    assert scorer.model.calls == 1


def test_score_fields(scorer: BatchScorer, rows: np.ndarray) -> None:
    score = scorer.score(["+8613800138000"], [5_000], rows[:1])[0]
    proba = scorer.model.model.predict_proba(rows[:1])[0]
    assert score.category == ("fraud" if proba[0] >= proba[2] else "one_ring")
    assert score.probability == pytest.approx(1 - proba[1])  # classes: fraud, normal, one_ring
    assert score.window_end_ms == 5_000 and score.model_version == scorer.metadata.version
    assert list(score.features) == list(FEATURE_NAMES)
    assert score.features["short_call_volume"] == rows[0, 0]
    assert score.reasons and "calls in 10 min" in score.reasons[0]


def test_category_is_never_normal_even_when_normal_wins() -> None:
    proba = np.array([[0.05, 0.9, 0.05], [0.02, 0.95, 0.03]])
    scores, index = nuisance_scores(proba, CLASSES)
    assert list(np.array(CLASSES)[index]) == ["fraud", "one_ring"]
    assert scores.round(9).tolist() == [0.1, 0.05]  # 1 - P(normal)


def test_wrong_shapes_are_refused(scorer: BatchScorer, rows: np.ndarray) -> None:
    with pytest.raises(ValueError, match=f"takes rows of {len(FEATURE_NAMES)} features"):
        scorer.score(["a"], 0, rows[:1, :31])
    with pytest.raises(ValueError, match="2 numbers for 1 feature rows"):
        scorer.score(["a", "b"], 0, rows[:1])
    with pytest.raises(ValueError, match="1 window ends for 2 numbers"):
        scorer.score(["a", "b"], [0], rows[:2])


def test_empty_batch_makes_no_call(scorer: BatchScorer) -> None:
    assert scorer.score([], 0, np.zeros((0, len(FEATURE_NAMES)))) == []
    assert scorer.model.calls == 0


def test_explicit_reference_overrides_metadata(scorer: BatchScorer, rows: np.ndarray) -> None:
    reference = {name: FeatureRange(0.0, 0.0, 0.0) for name in FEATURE_NAMES}
    loaded = LoadedModel(scorer.model, scorer.metadata)
    custom = BatchScorer(loaded, reference=reference, top_reasons=5)
    reasons = custom.score(["a"], 0, rows[:1])[0].reasons
    behaviour = [reason for reason in reasons if reason not in CALLER_KIND_PHRASES.values()]
    assert len(behaviour) == 5


def test_class_probabilities_are_the_nuisance_columns(
    scorer: BatchScorer, rows: np.ndarray
) -> None:
    scores = scorer.score(["a", "b"], 0, rows[:2])
    proba = scorer.model.model.predict_proba(rows[:2])
    for score, row in zip(scores, proba, strict=True):
        assert score.class_probabilities == pytest.approx({"fraud": row[0], "one_ring": row[2]})
        best = max(score.class_probabilities, key=score.class_probabilities.__getitem__)
        assert score.category == best


def test_reasons_for_another_category_rank_its_features_first(scorer: BatchScorer) -> None:
    reference = {name: FeatureRange(0.0, 0.05, 0.2) for name in FEATURE_NAMES}
    custom = BatchScorer(LoadedModel(scorer.model, scorer.metadata), reference=reference)
    row = np.full((1, len(FEATURE_NAMES)), 0.05)
    values = {"long_one_ring_ratio": 0.95, "long_sequential_score": 0.5}
    for name, value in values.items():
        row[0, FEATURE_NAMES.index(name)] = value
    score = custom.score(["a"], 0, row)[0]
    assert score.reasons == custom.explainer.explain(row, [score.category])[0]
    as_one_ring = custom.reasons_for(score, "one_ring")
    as_marketer = custom.reasons_for(score, "finance_marketing")
    assert "one-ring" in as_one_ring[0] and "in sequence" in as_marketer[0]
    assert custom.reasons_for(score, score.category) == score.reasons


def test_a_threshold_of_one_flags_nothing_even_at_certainty() -> None:
    # Training sets block to 1.0 when no threshold meets its precision target.
    certain = np.array([[0.0, 1.0], [0.0, 1.0]])
    scores, _ = nuisance_scores(certain, ["normal", "fraud"])
    assert (scores < 1.0).all() and (scores > 0.999).all()
    policy = DecisionPolicy(block_threshold=1.0, watch_threshold=1.0)
    assert policy.tier(float(scores[0])) is None
