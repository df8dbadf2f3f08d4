"""Checks on what a model learns: every category present, no one-feature rule, importances.

A classifier trained on simulated traffic can reach perfect hold-out figures
by learning one quirk of the simulator (say, "nuisance callers dial one
number segment") and then miss most real nuisance callers, who do not share
the quirk. These checks make that visible at training time:

- :func:`require_categories`: a category with too few training rows is not
  learnt; training refuses and names it, instead of serving a model that
  cannot recognise it.
- :func:`single_feature_separation`: the ROC-AUC of each feature alone,
  nuisance against normal. A feature at or above :data:`SEPARATION_WARNING`
  separates the training table by itself, and the model will likely rely on
  it alone: a warning in the report and the model card.
- :func:`permutation_importances`: how much the hold-out PR-AUC drops when
  one feature's column is shuffled; a model leaning on one feature shows one
  large drop and many zeros.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import average_precision_score, roc_auc_score

from models.dataset import NORMAL
from models.scoring import nuisance_scores, predict_proba

__all__ = [
    "NUISANCE_CATEGORIES",
    "SEPARATION_WARNING",
    "permutation_importances",
    "require_categories",
    "separation_warnings",
    "single_feature_separation",
]

# The categories callguard flags (the simulator's and the 12321 centre's classes).
NUISANCE_CATEGORIES: tuple[str, ...] = (
    "finance_marketing",
    "debt_collection",
    "real_estate",
    "other_marketing",
    "one_ring",
    "fraud",
)
SEPARATION_WARNING = 0.99


def require_learned(pr_auc: float, floor: float) -> None:
    """Refuse (ValueError) a classifier whose in-distribution PR-AUC is below ``floor``.

    A model that cannot tell nuisance from normal on rows drawn like its own
    training rows learned nothing worth serving: its fit diverged or the
    table's labels do not follow its features. Thresholds chosen on such a
    model still reach their precision by flagging almost nothing, so without
    this check it would look merely cautious.
    """
    if not pr_auc >= floor:
        raise ValueError(
            f"the classifier did not learn to separate nuisance from normal: PR-AUC "
            f"{pr_auc:.4f} on its own hold-out, below {floor}. Check the training table's "
            "labels and row counts per category, or lower TrainingOptions.learning_rate"
        )


def require_categories(
    labels: NDArray[np.str_], categories: Iterable[str], min_rows: int
) -> None:
    """Refuse (ValueError) when a wanted category has fewer than ``min_rows`` rows in ``labels``.

    The message names every such category with its row count.

    >>> require_categories(np.array(["fraud"] * 3 + ["normal"] * 9), ["fraud"], 3)
    >>> require_categories(np.array(["normal"] * 9), ["fraud"], 3)
    Traceback (most recent call last):
    ...
    ValueError: too few training rows to learn fraud (0 rows): each needs at least 3; ...
    """
    names, counts = np.unique(labels, return_counts=True)
    have = dict(zip(names.tolist(), counts.tolist(), strict=True))
    short = [(name, have.get(name, 0)) for name in sorted(set(categories), key=_category_order)]
    short = [(name, rows) for name, rows in short if rows < min_rows]
    if short:
        listed = ", ".join(f"{name} ({rows} rows)" for name, rows in short)
        raise ValueError(
            f"too few training rows to learn {listed}: each needs at least {min_rows}; "
            "train on more campaigns of them or a longer period (callguard train --simulate "
            "small or default, or more --data), or from Python lower "
            "TrainingOptions.min_class_rows"
        )


def single_feature_separation(
    matrix: NDArray[np.float64],
    labels: NDArray[np.str_],
    feature_names: Sequence[str],
    weights: NDArray[np.float64] | None = None,
) -> dict[str, float]:
    """Per feature: ROC-AUC of the feature alone, nuisance against normal, in [0.5, 1].

    An AUC below 0.5 means the feature separates the other way round; it is
    folded (``max(auc, 1 - auc)``), since a model can use either direction.

    >>> matrix = np.array([[0.0, 5.0], [0.1, 1.0], [0.9, 4.0], [1.0, 2.0]])
    >>> labels = np.array(["normal", "normal", "fraud", "fraud"])
    >>> single_feature_separation(matrix, labels, ["a", "b"])
    {'a': 1.0, 'b': 0.5}
    """
    is_nuisance = labels != NORMAL
    if is_nuisance.all() or not is_nuisance.any():
        return {}
    separation = {}
    for column, name in enumerate(feature_names):
        auc = float(roc_auc_score(is_nuisance, matrix[:, column], sample_weight=weights))
        separation[name] = max(auc, 1.0 - auc)
    return separation


def separation_warnings(separation: Mapping[str, float]) -> list[str]:
    """A sentence per feature that alone separates the table (AUC >= :data:`SEPARATION_WARNING`)."""
    return [
        f"{name} alone separates nuisance from normal rows (ROC-AUC {auc:.4f}): the model may "
        "hinge on it; check that real traffic of every category varies in it"
        for name, auc in sorted(separation.items(), key=lambda item: -item[1])
        if auc >= SEPARATION_WARNING
    ]


def permutation_importances(
    model: Any,
    matrix: NDArray[np.float64],
    labels: NDArray[np.str_],
    feature_names: Sequence[str],
    *,
    seed: int = 0,
    max_rows: int = 20_000,
) -> dict[str, float]:
    """Per feature: drop of the PR-AUC (any nuisance against normal) when its column is shuffled.

    Measured on at most ``max_rows`` rows (a stable sample), one shuffle per
    feature; one ``predict_proba`` call per feature.
    """
    rng = np.random.default_rng(seed)
    if len(labels) > max_rows:
        keep = np.sort(rng.choice(len(labels), max_rows, replace=False))
        matrix, labels = matrix[keep], labels[keep]
    is_nuisance = labels != NORMAL
    if is_nuisance.all() or not is_nuisance.any():
        return {}
    classes = [str(label) for label in model.classes_]

    def pr_auc(values: NDArray[np.float64]) -> float:
        scores, _ = nuisance_scores(predict_proba(model, values), classes)
        return float(average_precision_score(is_nuisance, scores))

    baseline = pr_auc(matrix)
    importances = {}
    for column, name in enumerate(feature_names):
        shuffled = matrix.copy()
        shuffled[:, column] = rng.permutation(shuffled[:, column])
        importances[name] = baseline - pr_auc(shuffled)
    return importances


def _category_order(name: str) -> tuple[int, str]:
    known = NUISANCE_CATEGORIES
    return (known.index(name) if name in known else len(known), name)
