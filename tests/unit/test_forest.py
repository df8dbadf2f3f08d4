"""The compiled forest gives scikit-learn's probabilities to the bit, or declines the model."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier

from models.forest import CompiledForest, warm_up


def _data(classes: int, rows: int = 900, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(rows, 6))
    labels = np.array([f"c{i}" for i in range(classes)])[
        np.digitize(matrix[:, 0] + 0.5 * matrix[:, 1] + rng.normal(0, 0.3, rows),
                    np.linspace(-1, 1, classes - 1))
    ]
    matrix[rng.random(matrix.shape) < 0.05] = np.nan  # missing values take their own branch
    return matrix, labels


def _model(classes: int, method: str = "sigmoid", ensemble: bool = False) -> tuple:
    matrix, labels = _data(classes)
    booster = HistGradientBoostingClassifier(max_iter=30, max_leaf_nodes=15, random_state=0)
    model = CalibratedClassifierCV(booster, method=method, cv=3, ensemble=ensemble)
    return model.fit(matrix, labels), matrix


@pytest.mark.parametrize("classes", [3, 7])
def test_probabilities_equal_scikit_learn_s_to_the_bit(classes: int) -> None:
    model, matrix = _model(classes)
    forest = CompiledForest.of(model)
    assert forest is not None and warm_up(forest) >= 0
    unseen, _ = _data(classes, rows=400, seed=11)
    for rows in (matrix, unseen, unseen[:1]):
        np.testing.assert_array_equal(forest.predict_proba(rows), model.predict_proba(rows))
    assert forest.predict_proba(unseen[:0]).shape == (0, classes)
    assert forest.predict_proba(unseen).sum(axis=1) == pytest.approx(1.0)


def test_models_it_cannot_reproduce_are_left_to_scikit_learn() -> None:
    assert CompiledForest.of(_model(3, method="isotonic")[0]) is None
    assert CompiledForest.of(_model(3, ensemble=True)[0]) is None  # three calibrated copies
    assert CompiledForest.of(_model(2)[0]) is None  # binary: one decision column
    assert CompiledForest.of(HistGradientBoostingClassifier(max_iter=2)) is None  # not calibrated
    assert warm_up(None) >= 0


def test_rows_of_another_width_are_refused() -> None:
    forest = CompiledForest.of(_model(3)[0])
    assert forest is not None
    with pytest.raises(ValueError, match="rows of 6 features"):
        forest.predict_proba(np.zeros((2, 5)))
