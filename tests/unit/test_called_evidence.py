"""Scoring with or without the features of calls received, as the feed shows them."""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier

from features.vector import FEATURE_NAMES
from models.called_evidence import (
    CALLED_FEATURES,
    CalledEvidence,
    CalledPaths,
    CalledPolicy,
    ScoreAlignment,
    called_of,
    called_shown_in_time_order,
    with_called_missing,
)
from models.registry import LoadedModel
from models.scoring import BatchScorer
from tests.unit.model_metadata import model_metadata

POLICY = CalledPolicy(window=50, min_rows=10, min_share=0.2)
COLUMNS = [FEATURE_NAMES.index(name) for name in CALLED_FEATURES]


def rows(count: int, called_share: float, seed: int = 0) -> np.ndarray:
    """Rows of random features; ``called_share`` of them with calls received."""
    rng = np.random.default_rng(seed)
    matrix = rng.uniform(0.0, 1.0, (count, len(FEATURE_NAMES))) * 20
    matrix[:, COLUMNS] = 0.0
    called = rng.uniform(0.0, 1.0, count) < called_share
    matrix[np.ix_(np.flatnonzero(called), COLUMNS)] = 0.5
    return matrix


def test_the_called_features_are_the_features_of_calls_received() -> None:
    assert set(CALLED_FEATURES) == {
        "short_reciprocity", "long_reciprocity", "short_inbound_ratio", "long_inbound_ratio"
    }


def test_a_feed_where_nobody_is_called_is_scored_without_them() -> None:
    evidence = CalledEvidence(FEATURE_NAMES, POLICY)
    matrix = rows(300, 0.0)
    served = evidence.mask(matrix)
    # Until min_rows rows have shown none, a row is scored as measured.
    np.testing.assert_array_equal(served[: POLICY.min_rows], matrix[: POLICY.min_rows])
    assert np.isnan(served[POLICY.min_rows :, COLUMNS]).all()
    others = [c for c in range(len(FEATURE_NAMES)) if c not in COLUMNS]
    np.testing.assert_array_equal(served[:, others], matrix[:, others])
    assert not np.isnan(matrix).any()  # the caller's matrix is left as measured


def test_a_feed_with_calls_received_shows_them_from_the_first_row() -> None:
    evidence = CalledEvidence(FEATURE_NAMES, POLICY)
    assert evidence.shown(rows(300, 0.5)).all()


def test_each_row_is_decided_by_the_rows_before_it_whatever_the_batches() -> None:
    matrix = np.vstack([rows(120, 0.6, seed=1), rows(200, 0.0, seed=2), rows(80, 0.6, seed=3)])
    whole = CalledEvidence(FEATURE_NAMES, POLICY).shown(matrix)
    evidence = CalledEvidence(FEATURE_NAMES, POLICY)
    cuts = [0, 1, 7, 50, 51, 173, 300, 399, 400]
    pieces = [evidence.shown(matrix[a:b]) for a, b in zip(cuts, cuts[1:], strict=False)]
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    # The window forgets: after a long stretch with nobody called the features go, then return.
    assert whole[100:120].all() and not whole[300:320].any() and whole[-1]


def test_each_row_sees_exactly_the_window_of_rows_before_it() -> None:
    rng = np.random.default_rng(12)
    sizes, shares = rng.integers(1, 90, 12), rng.uniform(0, 0.5, 12)
    matrix = np.vstack([rows(int(n), float(share), seed=int(n))
                        for n, share in zip(sizes, shares, strict=True)])
    received = matrix[:, FEATURE_NAMES.index("long_inbound_ratio")] > 0
    expected = []
    for row in range(len(matrix)):  # the rule, row by row
        prior = received[max(0, row - POLICY.window):row]
        count = len(prior)
        expected.append(count < POLICY.min_rows or prior.sum() >= POLICY.min_share * count)
    evidence = CalledEvidence(FEATURE_NAMES, POLICY)
    cuts = np.unique(np.concatenate([[0, len(matrix)], rng.integers(0, len(matrix), 15)]))
    got = np.concatenate(
        [evidence.shown(matrix[a:b]) for a, b in zip(cuts, cuts[1:], strict=False)]
    )
    np.testing.assert_array_equal(got, expected)
    assert evidence.recent_share == pytest.approx(received[-POLICY.window:].mean())


def test_offline_scoring_decides_in_event_time_order_and_keeps_positions() -> None:
    matrix = np.vstack([rows(60, 0.0, seed=4), rows(60, 0.8, seed=5)])
    end_ms = np.arange(len(matrix))
    order = np.random.default_rng(6).permutation(len(matrix))
    served = called_shown_in_time_order(matrix[order], end_ms[order], FEATURE_NAMES, POLICY)
    expected = CalledEvidence(FEATURE_NAMES, POLICY).mask(matrix)
    np.testing.assert_array_equal(served, expected[order])
    untouched = called_shown_in_time_order(
        rows(5, 0.0), np.arange(5), FEATURE_NAMES, CalledPolicy(window=5, min_rows=0, min_share=0)
    )
    assert not np.isnan(untouched).any()


def test_with_called_missing_touches_only_those_features() -> None:
    matrix = rows(4, 1.0)
    missing = with_called_missing(matrix, FEATURE_NAMES)
    assert np.isnan(missing[:, COLUMNS]).all()
    assert np.isnan(missing).sum() == 4 * len(COLUMNS) and not np.isnan(matrix).any()


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"min_rows": 60}, "min_rows <= window"), ({"window": 0}, "window >= 1"),
     ({"min_share": 1.5}, "min_share must be in")],
)
def test_an_impossible_policy_is_refused(changes: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CalledPolicy(**({"window": 50, "min_rows": 10, "min_share": 0.2} | changes))


def test_the_scorer_hides_them_from_the_model_and_publishes_them_as_measured() -> None:
    train = rows(400, 0.5, seed=7)
    train = np.vstack([train, with_called_missing(train, FEATURE_NAMES)])
    labels = np.where(np.arange(len(train)) % 2 == 0, "fraud", "normal")
    labels[train[:, FEATURE_NAMES.index("long_inbound_ratio")] > 0] = "normal"
    model = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(train, labels)
    metadata = model_metadata(
        ("fraud", "normal"),
        # Normal callers hear back from a fifth to nine tenths of their callees.
        metrics={"reference.long_reciprocity.p01": 0.2, "reference.long_reciprocity.p50": 0.5,
                 "reference.long_reciprocity.p99": 0.9},
        extra={"called": POLICY.to_json()},
    )
    assert called_of(metadata) == POLICY
    scorer = BatchScorer(LoadedModel(model, metadata))
    scorer.score([f"+8613900{i:06d}" for i in range(30)], 1_000, rows(30, 0.0, seed=12))
    nobody = rows(30, 0.0, seed=8)
    scores = scorer.score([f"+8613800{i:06d}" for i in range(30)], 1_000, nobody)
    hidden = with_called_missing(nobody, FEATURE_NAMES)
    expected = model.predict_proba(hidden)[:, list(model.classes_).index("normal")]
    np.testing.assert_allclose([1 - s.probability for s in scores], expected, atol=1e-9)
    assert all(s.features["long_inbound_ratio"] == 0.0 for s in scores)
    assert scorer.called is not None and scorer.called.recent_share == 0.0
    assert scorer.called.hiding
    # Its reasons, also as another category, leave out what the model did not see ...
    called_reason = "ever called this number"
    assert not any(called_reason in r for s in scores for r in s.reasons)
    assert not any(called_reason in r for r in scorer.reasons_for(scores[0], "one_ring"))
    # ... which a model without the second path would give.
    plain = BatchScorer(LoadedModel(model, replace(metadata, extra={})))
    assert any(called_reason in r for r in plain.reasons_for(scores[0], "one_ring"))


def test_alignment_maps_each_paths_thresholds_onto_the_others() -> None:
    align = ScoreAlignment(source=(0.4, 0.7), target=(0.95, 0.99))
    scores = np.linspace(0.0, 0.999, 500)
    mapped = align.apply(scores)
    assert (np.diff(mapped) >= 0).all()
    assert ((mapped >= 0.95) == (scores >= 0.4)).all()
    assert ((mapped >= 0.99) == (scores >= 0.7)).all()
    # A path that found no threshold (1.0) never reaches the other's.
    never = ScoreAlignment(source=(1.0, 1.0), target=(0.9, 0.95))
    assert (never.apply(scores) < 0.9).all()


def calibrated(matrix: np.ndarray, labels: np.ndarray) -> CalibratedClassifierCV:
    booster = HistGradientBoostingClassifier(max_iter=8, random_state=0)
    return CalibratedClassifierCV(booster, method="sigmoid", cv=3, ensemble=False).fit(
        matrix, labels
    )


def test_called_paths_send_hidden_rows_the_second_way_compiled_or_not() -> None:
    matrix = rows(600, 0.5, seed=9)
    labels = np.array(["fraud", "normal", "one_ring"])[np.arange(len(matrix)) % 3]
    measured = calibrated(matrix, labels)
    without = calibrated(CalledPaths.without_input(matrix, FEATURE_NAMES), labels)
    align = ScoreAlignment(source=(0.5, 0.8), target=(0.9, 0.95))
    paths = CalledPaths(measured, without, FEATURE_NAMES, align)
    probe = rows(40, 0.5, seed=10)
    probe[::2] = with_called_missing(probe[::2], FEATURE_NAMES)
    proba = paths.predict_proba(probe)
    np.testing.assert_array_equal(proba[1::2], measured.predict_proba(probe[1::2]))
    second = without.predict_proba(CalledPaths.without_input(probe[::2], FEATURE_NAMES))
    normal = list(paths.classes_).index("normal")
    np.testing.assert_allclose(1 - proba[::2, normal], align.apply(1 - second[:, normal]))
    nuisance = [c for c in range(len(paths.classes_)) if c != normal]
    np.testing.assert_array_equal(  # the category is still the second path's
        proba[::2][:, nuisance].argmax(axis=1), second[:, nuisance].argmax(axis=1)
    )
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    compiled = pickle.loads(pickle.dumps(paths)).compiled()
    assert compiled is not None
    np.testing.assert_array_equal(compiled.predict_proba(probe), proba)
