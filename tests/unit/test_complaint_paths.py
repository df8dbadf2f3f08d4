"""Rows without a complaint about the number, scored by the path that does not lean on them."""

from __future__ import annotations

import gc
import pickle
import weakref

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier

from features.vector import FEATURE_NAMES, WINDOW_FEATURE_NAMES
from models.called_evidence import CalledPaths, ScoreAlignment, with_called_missing
from models.complaint_paths import (
    COMPLAINT_FEATURES,
    ComplaintPaths,
    block_agreed,
    has_complaint,
    with_complaints_held,
)
from models.scoring import predict_proba

COMPLAINTS = [FEATURE_NAMES.index(name) for name in COMPLAINT_FEATURES]


def calibrated(matrix: np.ndarray, labels: np.ndarray) -> CalibratedClassifierCV:
    booster = HistGradientBoostingClassifier(max_iter=8, random_state=0)
    return CalibratedClassifierCV(booster, method="sigmoid", cv=3, ensemble=False).fit(
        matrix, labels
    )


def fitted_paths(matrix: np.ndarray, labels: np.ndarray) -> ComplaintPaths:
    """Both paths fitted on ``matrix`` (the second with complaints held at 0), aligned."""
    reported = calibrated(matrix, labels)
    unreported = calibrated(with_complaints_held(matrix, FEATURE_NAMES), labels)
    align = ScoreAlignment(source=(0.5, 0.8), target=(0.9, 0.95))
    return ComplaintPaths(reported, unreported, FEATURE_NAMES, align)


def table(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random rows of mobile callers, a third with complaints, labels following a few features."""
    rng = np.random.default_rng(seed)
    windows = rng.uniform(0.0, 20.0, (count, len(WINDOW_FEATURE_NAMES)))
    matrix = np.hstack((windows, np.zeros((count, len(FEATURE_NAMES) - windows.shape[1]))))
    matrix[:, COMPLAINTS] = 0.0
    reported = rng.uniform(0.0, 1.0, count) < 1 / 3
    matrix[np.ix_(np.flatnonzero(reported), COMPLAINTS)] = rng.integers(1, 4, (reported.sum(), 1))
    labels = np.where(matrix[:, 0] > 10, "fraud", np.where(matrix[:, 1] > 14, "one_ring", "normal"))
    return matrix, labels


def test_the_complaint_features_are_the_complaints_of_both_windows() -> None:
    assert set(COMPLAINT_FEATURES) == {"short_complaints", "long_complaints"}
    assert set(COMPLAINT_FEATURES) <= set(FEATURE_NAMES)


def test_rows_go_by_their_complaints_alone() -> None:
    matrix, _ = table(12, seed=1)
    matrix[0, COMPLAINTS] = [0.0, 2.0]  # a complaint earlier in the day: reported
    matrix[1, COMPLAINTS] = [0.0, 0.0]
    chosen = has_complaint(matrix, FEATURE_NAMES)
    assert chosen[0] and not chosen[1]
    np.testing.assert_array_equal(chosen, (matrix[:, COMPLAINTS] > 0).any(axis=1))
    held = with_complaints_held(matrix, FEATURE_NAMES)
    assert (held[:, COMPLAINTS] == 0).all()
    others = [c for c in range(len(FEATURE_NAMES)) if c not in COMPLAINTS]
    np.testing.assert_array_equal(held[:, others], matrix[:, others])
    assert (matrix[chosen][:, COMPLAINTS] > 0).any()  # the caller's matrix is left as measured


def test_unreported_rows_take_the_second_path_aligned_compiled_or_not() -> None:
    matrix, labels = table(900, seed=2)
    paths = fitted_paths(matrix, labels)
    reported, unreported, align = paths.reported, paths.unreported, paths.alignment
    probe, _ = table(60, seed=3)
    chosen = has_complaint(probe, FEATURE_NAMES)
    assert chosen.any() and not chosen.all()
    proba = paths.predict_proba(probe)
    np.testing.assert_array_equal(proba[chosen], reported.predict_proba(probe[chosen]))
    second = unreported.predict_proba(probe[~chosen])
    normal = list(paths.classes_).index("normal")
    np.testing.assert_allclose(1 - proba[~chosen, normal], align.apply(1 - second[:, normal]))
    nuisance = [c for c in range(len(paths.classes_)) if c != normal]
    np.testing.assert_array_equal(  # the category is still the second path's
        proba[~chosen][:, nuisance].argmax(axis=1), second[:, nuisance].argmax(axis=1)
    )
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    compiled = pickle.loads(pickle.dumps(paths)).compiled()
    assert compiled is not None
    np.testing.assert_array_equal(compiled.predict_proba(probe), proba)


def test_each_complaint_path_keeps_its_own_path_without_calls_received() -> None:
    matrix, labels = table(900, seed=4)
    held = with_complaints_held(matrix, FEATURE_NAMES)
    inner_align = ScoreAlignment(source=(0.6, 0.7), target=(0.5, 0.8))
    reported = CalledPaths(calibrated(matrix, labels),
                           calibrated(CalledPaths.without_input(matrix, FEATURE_NAMES), labels),
                           FEATURE_NAMES, inner_align)
    unreported = CalledPaths(calibrated(held, labels),
                             calibrated(CalledPaths.without_input(held, FEATURE_NAMES), labels),
                             FEATURE_NAMES, inner_align)
    align = ScoreAlignment(source=(0.4, 0.9), target=(0.5, 0.8))
    paths = ComplaintPaths(reported, unreported, FEATURE_NAMES, align)
    probe, _ = table(80, seed=5)
    probe[::2] = with_called_missing(probe[::2], FEATURE_NAMES)
    chosen = has_complaint(probe, FEATURE_NAMES)
    proba = paths.predict_proba(probe)
    np.testing.assert_array_equal(proba[chosen], reported.predict_proba(probe[chosen]))
    normal = list(paths.classes_).index("normal")
    second = unreported.predict_proba(probe[~chosen])
    np.testing.assert_allclose(1 - proba[~chosen, normal], align.apply(1 - second[:, normal]))
    compiled = pickle.loads(pickle.dumps(paths)).compiled()
    assert compiled is not None
    np.testing.assert_array_equal(compiled.predict_proba(probe), proba)


def test_alignment_at_a_repeated_point_takes_the_higher_one() -> None:
    align = ScoreAlignment(source=(0.5, 0.5), target=(0.9, 0.95))
    np.testing.assert_allclose(align.apply(np.array([0.25, 0.5, 0.75, 1.0])),
                               [0.45, 0.95, 0.975, 1.0])


def test_a_row_without_complaints_blocks_only_when_the_first_path_would_too() -> None:
    matrix, labels = table(900, seed=6)
    reported = calibrated(matrix, labels)
    unreported = calibrated(with_complaints_held(matrix, FEATURE_NAMES), labels)
    block = 0.7
    paths = ComplaintPaths(reported, unreported, FEATURE_NAMES,
                           ScoreAlignment(source=(0.3, 0.3), target=(block, block)))
    probe, _ = table(300, seed=7)
    normal = list(paths.classes_).index("normal")
    scores = 1 - paths.predict_proba(probe)[:, normal]
    first = 1 - reported.predict_proba(probe)[:, normal]
    chosen = has_complaint(probe, FEATURE_NAMES)
    agreed = paths.block_agreed(probe, scores)
    np.testing.assert_array_equal(agreed, chosen | (scores < block) | (first >= block))
    assert not agreed.all()  # some rows reach block on the second path alone
    assert (scores[~agreed] >= block).all()
    # Asked for some rows only (those the population and calls let block), the others pass.
    asked = np.arange(len(probe)) % 2 == 0
    np.testing.assert_array_equal(paths.block_agreed(probe, scores, asked), agreed | ~asked)
    # A model of one path has nothing to agree with.
    assert block_agreed(reported, probe, scores).all()


def test_offline_scoring_compiles_the_paths_once_and_keeps_no_model_alive() -> None:
    matrix, labels = table(300, seed=5)
    paths = fitted_paths(matrix, labels)
    fresh = pickle.loads(pickle.dumps(paths))  # scored by scikit-learn: nothing compiled yet
    expected = fresh.predict_proba(matrix)
    np.testing.assert_array_equal(predict_proba(paths, matrix), expected)  # compiled, same bits
    assert paths._compiled is not None
    gone = weakref.ref(paths)
    del paths
    gc.collect()
    assert gone() is None  # training many models in one process keeps none of them
