"""Training-time checks and caller-level figures, on small explicit tables."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from models.caller_metrics import caller_metrics
from models.training_checks import (
    permutation_importances,
    require_categories,
    separation_warnings,
    single_feature_separation,
)


def test_training_refuses_a_category_below_its_minimum_and_names_it() -> None:
    labels = np.array(["normal"] * 50 + ["fraud"] * 12 + ["one_ring"] * 40)
    with pytest.raises(ValueError, match=r"fraud \(12 rows\)") as refused:
        require_categories(labels, ["fraud", "one_ring", "debt_collection"], 30)
    assert "debt_collection (0 rows)" in str(refused.value)
    assert "one_ring" not in str(refused.value)
    require_categories(labels, ["one_ring"], 30)  # enough rows: no refusal


def test_a_feature_that_alone_separates_the_table_is_warned_about() -> None:
    rng = np.random.default_rng(1)
    labels = np.array(["normal"] * 200 + ["finance_marketing"] * 200)
    segments = np.r_[rng.uniform(2, 9, 200), np.full(200, 1.0)]  # one segment: nuisance only
    noisy = rng.normal(0, 1, 400)
    separation = single_feature_separation(
        np.column_stack([segments, noisy]), labels, ["short_distinct_segments", "noise"]
    )
    assert separation["short_distinct_segments"] == 1.0
    assert separation["noise"] < 0.7
    warnings = separation_warnings(separation)
    assert len(warnings) == 1 and warnings[0].startswith("short_distinct_segments alone")


def test_permutation_importance_finds_the_feature_the_model_uses() -> None:
    rng = np.random.default_rng(2)
    labels = np.array(["normal"] * 300 + ["one_ring"] * 300)
    useful = np.r_[rng.uniform(0, 0.4, 300), rng.uniform(0.6, 1, 300)]
    matrix = np.column_stack([useful, rng.normal(size=600)])
    model = HistGradientBoostingClassifier(max_iter=20).fit(matrix, labels)
    importances = permutation_importances(model, matrix, labels, ["one_ring_ratio", "noise"])
    assert importances["one_ring_ratio"] > 0.2
    assert abs(importances["noise"]) < 0.05


def test_caller_metrics_judge_numbers_not_rows() -> None:
    minute = 60_000
    roster = pl.DataFrame(
        {
            "caller": ["a", "b", "c", "legit", "ordinary", "quiet"],
            "category": ["fraud", "fraud", "one_ring", None, None, "one_ring"],
            "kind": ["nuisance", "nuisance", "nuisance", "legit_bulk", "ordinary", "nuisance"],
            "first_call_ms": [0, 0, 0, 0, 0, 0],
        }
    )
    rows = pl.DataFrame(
        {
            "caller": ["a", "a", "b", "c", "c", "legit", "ordinary"],
            "end_ms": [5 * minute, 10 * minute, 5 * minute, 5 * minute, 20 * minute,
                       5 * minute, 5 * minute],
            # c's later row falls after its campaign: it does not count as a catch.
            "label": ["fraud", "fraud", "fraud", "one_ring", "normal", "normal", "normal"],
        }
    )
    scores = np.array([0.2, 0.95, 0.1, 0.3, 0.99, 0.97, 0.1])
    figures = caller_metrics(rows, scores, {"watch": 0.8, "block": 0.9}, roster, "x")
    assert figures["x.recall.fraud"] == 0.5  # a caught at its second row, b never
    assert figures["x.recall.one_ring"] == 0.0  # c only after its campaign; quiet never scored
    assert figures["x.callers.one_ring"] == 2
    assert figures["x.legit_flagged_share"] == 1.0
    assert figures["x.ordinary_flagged_share"] == 0.0
    assert figures["x.block_precision"] == 0.5  # a and legit
    assert figures["x.minutes_to_first_flag_median"] == 10.0
