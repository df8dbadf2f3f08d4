"""Reasons: a template for every feature, values in the words, the right direction, ranking."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from features.vector import FEATURE_NAMES, PER_WINDOW
from models.reasons import (
    Explainer,
    FeatureRange,
    explain,
    reference_from_metadata,
    reference_from_table,
    reference_metrics,
)
from models.registry import ModelMetadata

# Normal traffic: ratios around 0.5 (0.1 to 0.9), counts around 10 (2 to 20).
RATIO = FeatureRange(0.1, 0.5, 0.9)
COUNT = FeatureRange(2.0, 10.0, 20.0)
COUNTS = {"call_volume", "distinct_callees", "distinct_segments", "complaints",
          "mean_talk_s", "gap_mean_s", "segment_entropy"}
REFERENCE = {
    name: COUNT if name.partition("_")[2] in COUNTS else RATIO for name in FEATURE_NAMES
}
LOW_IS_SUSPICIOUS = {"answer_rate", "mean_talk_s", "repeat_callee_ratio", "gap_mean_s",
                     "gap_cv", "reciprocity"}


def normal_row() -> dict[str, float]:
    return {name: REFERENCE[name].p50 for name in FEATURE_NAMES}


@pytest.mark.parametrize("base", PER_WINDOW)
@pytest.mark.parametrize("window,words", [("short", "10 min"), ("long", "24 h")])
def test_every_feature_has_a_template_with_value_and_window(
    base: str, window: str, words: str
) -> None:
    name = f"{window}_{base}"
    bounds = REFERENCE[name]
    extreme = bounds.p01 / 10 if base in LOW_IS_SUSPICIOUS else bounds.p99 * 3
    if base == "segment_entropy":
        extreme = bounds.p99 * 3
    row = normal_row() | {name: extreme}
    reasons = explain(row, REFERENCE, top=3)
    assert len(reasons) == 1, reasons
    assert words in reasons[0]
    shown = f"{extreme:.0%}" if bounds is RATIO else f"{extreme:.0f}"
    if base == "segment_entropy":
        shown = f"{extreme:.1f}"
    if base == "short_call_ratio":
        shown = f"{extreme:.2f}"
    assert shown in reasons[0], reasons[0]


def test_suspicious_direction_only() -> None:
    # A high answer rate and a low call volume are not reasons.
    row = normal_row() | {"short_answer_rate": 1.0, "short_call_volume": 0.0}
    explainer = Explainer(FEATURE_NAMES, REFERENCE)
    matrix = pl.DataFrame([row]).select(FEATURE_NAMES).to_numpy()
    assert (explainer.excess(matrix) <= 0).all()


def test_the_issue_example_and_ranking() -> None:
    row = normal_row() | {
        "short_short_call_ratio": 0.93,
        "short_call_volume": 212,
        "short_one_ring_ratio": 0.95,
    }
    reasons = explain(row, REFERENCE, top=3)
    assert reasons[0] == "212 calls in 10 min"
    assert "short-call ratio 0.93 over 212 calls in 10 min" in reasons
    assert any("one-ring" in reason and "95%" in reason for reason in reasons)


def test_short_and_long_twins_give_one_reason() -> None:
    row = normal_row() | {"short_call_volume": 300, "long_call_volume": 90}
    reasons = explain(row, REFERENCE, top=3)
    assert reasons == ("300 calls in 10 min",)


def test_nothing_unusual_still_gives_one_reason() -> None:
    assert len(explain(normal_row(), REFERENCE, top=3)) == 1


def test_top_limits_and_unknown_features_are_ignored() -> None:
    row = normal_row() | {f"short_{base}": 1e6 for base in ("call_volume", "complaints",
                                                              "distinct_callees")}
    row["unknown_feature"] = 1e9
    assert len(explain(row, REFERENCE, top=2)) == 2


def test_batch_explainer_matches_single_rows() -> None:
    rows = [normal_row() | {"short_call_volume": 50.0 * i, "long_gap_cv": 0.01 * i}
            for i in range(6)]
    matrix = pl.DataFrame(rows).select(FEATURE_NAMES).to_numpy()
    batch = Explainer(FEATURE_NAMES, REFERENCE).explain(matrix)
    assert batch == [explain(row, REFERENCE) for row in rows]


def test_reference_from_table_uses_normal_rows_only() -> None:
    values = [float(v) for v in range(101)]
    table = pl.DataFrame(
        {name: values + [1e9] for name in FEATURE_NAMES}
        | {"label": ["normal"] * 101 + ["fraud"]}
    )
    reference = reference_from_table(table)
    assert reference["short_call_volume"] == FeatureRange(1.0, 50.0, 99.0)


def test_reference_round_trips_through_metadata_metrics() -> None:
    metadata = ModelMetadata(
        version="20261122T143000Z-00000000",
        created_at=datetime(2026, 11, 22, tzinfo=UTC),
        feature_names=FEATURE_NAMES,
        classes=("fraud", "normal"),
        thresholds={"block": 0.9, "watch": 0.6},
        metrics={"pr_auc": 0.99} | reference_metrics(REFERENCE),
        training_data_sha256="0" * 64,
        library_versions={},
        artefact_sha256="0" * 64,
    )
    assert reference_from_metadata(metadata) == REFERENCE
