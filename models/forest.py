"""The classifier's trees in flat arrays, walked by one compiled kernel per batch.

``callguard train`` fits a :class:`~sklearn.ensemble.HistGradientBoostingClassifier`
inside a :class:`~sklearn.calibration.CalibratedClassifierCV` (sigmoid, one
calibrated classifier). scikit-learn predicts tree by tree: for a batch of
rows it calls each of the 700 trees (100 rounds, 7 classes) from Python and
validates the input twice, about 4 ms a call whatever the batch size, on top
of about 18 us a row. The worker scores a few dozen to a few hundred rows a
message, so most of that time was overhead (a 10-row call took 8 ms, 810 us
a row; 1,000 rows 28 us a row).

:class:`CompiledForest` copies every tree's nodes into flat arrays once, when
a model is loaded, and :func:`_raw_scores`, compiled by numba and cached on
disk, walks all trees for all rows in one call. The sums and the sigmoid
calibration are done in the same order and with the same operations as
scikit-learn's, so the probabilities are equal to the bit (tests compare them
with ``model.predict_proba`` on scored rows and on rows with missing values).
A model it cannot reproduce exactly (another calibration, several calibrated
classifiers, categorical splits) is scored by scikit-learn:
:meth:`CompiledForest.of` returns ``None`` for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numba import njit
from numpy.typing import NDArray
from scipy.special import expit

__all__ = ["CompiledForest", "warm_up"]


# A node in one 64-bit word: the right child (the left one is the next node,
# as scikit-learn lays trees out depth first), the feature, whether missing
# values go left, whether it is a leaf. Its threshold, or a leaf's value, is
# the float of the same index: a node is two loads.
_RIGHT_BITS = 24
_FEATURE_SHIFT = 48
_MISSING_LEFT = 1 << 61
_LEAF = 1 << 62
_MAX_NODES = 1 << _RIGHT_BITS
_MAX_FEATURES = 1 << 8


@njit(cache=True, nogil=True)  # type: ignore[misc]  # numba ships no type information
def _raw_scores(
    matrix: NDArray[np.float64],
    node_word: NDArray[np.int64],
    node_float: NDArray[np.float64],
    roots: NDArray[np.int64],
    baseline: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Per row and class: the baseline plus each round's leaf value, rounds in order."""
    rows = matrix.shape[0]
    rounds, classes = roots.shape
    out = np.empty((rows, classes))
    for row in range(rows):
        for k in range(classes):
            out[row, k] = baseline[k]
    right_mask = (1 << _RIGHT_BITS) - 1
    # Tree by tree, each over every row: a tree's nodes stay in cache for the batch.
    # Each row's sum still takes the rounds in order, as scikit-learn's does.
    for step in range(rounds):
        for k in range(classes):
            root = roots[step, k]
            for row in range(rows):
                node = root
                word = node_word[node]
                while not word & _LEAF:
                    x = matrix[row, (word >> _FEATURE_SHIFT) & (_MAX_FEATURES - 1)]
                    if x <= node_float[node] or (np.isnan(x) and word & _MISSING_LEFT):
                        node += 1
                    else:
                        node = word & right_mask
                    word = node_word[node]
                out[row, k] += node_float[node]
    return out


@dataclass(frozen=True)
class CompiledForest:
    """Every tree of a fitted, sigmoid-calibrated booster, as flat node arrays.

    Node ``i`` of the forest is ``node_word[i]`` (its right child, its
    feature, whether missing values go left, whether it is a leaf; its left
    child is node ``i + 1``) and ``node_float[i]``, its threshold (``x <=
    threshold`` goes left) or a leaf's value. ``roots[r, k]`` is the root of round
    ``r``'s tree for class ``k``; ``a`` and ``b`` are the per-class sigmoid
    calibrators (``1 / (1 + exp(a * raw + b))``), ``columns`` where each
    class lands in the probability matrix.
    """

    node_word: NDArray[np.int64]
    node_float: NDArray[np.float64]
    roots: NDArray[np.int64]
    baseline: NDArray[np.float64]
    a: NDArray[np.float64]
    b: NDArray[np.float64]
    columns: NDArray[np.intp]
    n_classes: int
    n_features: int

    @classmethod
    def of(cls, model: Any) -> CompiledForest | None:
        """The compiled form of ``model``, or ``None`` when only scikit-learn can score it."""
        calibrated = getattr(model, "calibrated_classifiers_", None)
        if calibrated is None or len(calibrated) != 1:
            return None
        (one,) = calibrated
        booster = one.estimator
        if one.method != "sigmoid" or type(booster).__name__ != "HistGradientBoostingClassifier":
            return None
        if booster.is_categorical_ is not None or getattr(booster, "_preprocessor", None):
            return None
        classes = np.asarray(one.classes)
        if len(classes) < 3 or booster.n_trees_per_iteration_ != len(classes):
            return None  # binary models keep scikit-learn's one-column path
        nodes = [predictor.nodes for rounds in booster._predictors for predictor in rounds]
        if any(bool(tree["is_categorical"].any()) for tree in nodes):
            return None
        starts = np.cumsum([0] + [len(tree) for tree in nodes[:-1]])
        joined = np.concatenate(nodes)
        if len(joined) > _MAX_NODES or booster.n_features_in_ > _MAX_FEATURES:
            return None
        offsets = np.repeat(starts, [len(tree) for tree in nodes])
        is_leaf = joined["is_leaf"].astype(bool)
        index = np.arange(len(joined))
        left = joined["left"].astype(np.int64) + offsets
        if not (left[~is_leaf] == index[~is_leaf] + 1).all():
            return None  # not laid out depth first: the walk takes the next node as left
        word = (joined["right"].astype(np.int64) + offsets) * ~is_leaf
        word |= joined["feature_idx"].astype(np.int64) << _FEATURE_SHIFT
        word |= np.where(joined["missing_go_to_left"].astype(bool), _MISSING_LEFT, 0)
        word |= np.where(is_leaf, _LEAF, 0)
        sorted_classes = np.sort(classes)
        return cls(
            node_word=word.astype(np.int64),
            node_float=np.where(is_leaf, joined["value"], joined["num_threshold"]).astype(
                np.float64
            ),
            roots=starts.astype(np.int64).reshape(len(booster._predictors), len(classes)),
            baseline=np.asarray(booster._baseline_prediction, dtype=np.float64).reshape(-1),
            a=np.array([float(c.a_) for c in one.calibrators]),
            b=np.array([float(c.b_) for c in one.calibrators]),
            columns=np.searchsorted(sorted_classes, np.asarray(booster.classes_)).astype(np.intp),
            n_classes=len(classes),
            n_features=int(booster.n_features_in_),
        )

    def predict_proba(self, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
        """What ``model.predict_proba(matrix)`` gives, to the bit (a column per class)."""
        matrix = np.ascontiguousarray(matrix, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != self.n_features:
            raise ValueError(f"expected rows of {self.n_features} features, got {matrix.shape}")
        raw = _raw_scores(matrix, self.node_word, self.node_float, self.roots, self.baseline)
        proba = np.zeros((len(matrix), self.n_classes))
        for k, column in enumerate(self.columns):
            proba[:, column] = expit(-(self.a[k] * raw[:, k] + self.b[k]))
        denominator = np.sum(proba, axis=1)[:, np.newaxis]
        uniform = np.full_like(proba, 1 / self.n_classes)
        proba = np.divide(proba, denominator, out=uniform, where=denominator != 0)
        proba[(1.0 < proba) & (proba <= 1.0 + 1e-5)] = 1.0
        return proba


class _Predictor(Protocol):
    @property
    def n_features(self) -> int: ...

    def predict_proba(self, matrix: NDArray[np.float64]) -> NDArray[np.float64]: ...


def warm_up(forest: _Predictor | None) -> float:
    """Compile (or load from the disk cache) the kernel with one row; seconds it took."""
    started = time.perf_counter()
    if forest is not None:
        forest.predict_proba(np.zeros((1, forest.n_features)))
    return time.perf_counter() - started
