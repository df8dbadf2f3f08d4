"""Reasons: a template for every feature, values in the words, the right direction, ranking."""

from __future__ import annotations

import polars as pl
import pytest

from features.caller_number import CALLER_FEATURES
from features.vector import FEATURE_NAMES, PER_WINDOW
from models.reasons import (
    CALLER_KIND_PHRASES,
    Explainer,
    FeatureRange,
    explain,
    reference_from_metadata,
    reference_from_table,
    reference_metrics,
)
from tests.unit.model_metadata import model_metadata

# Normal traffic: ratios around 0.5 (0.1 to 0.9), counts around 10 (2 to 20).
RATIO = FeatureRange(0.1, 0.5, 0.9)
COUNT = FeatureRange(2.0, 10.0, 20.0)
COUNTS = {"call_volume", "distinct_callees", "distinct_segments", "complaints",
          "mean_talk_s", "gap_mean_s", "segment_entropy"}
REFERENCE = {
    name: COUNT if name.partition("_")[2] in COUNTS else RATIO for name in FEATURE_NAMES
}
LOW_IS_SUSPICIOUS = {"answer_rate", "mean_talk_s", "repeat_callee_ratio", "gap_mean_s",
                     "gap_cv", "reciprocity", "inbound_ratio"}


def normal_row() -> dict[str, float]:
    """Every window feature at its normal median, from an ordinary mobile number."""
    return {name: REFERENCE[name].p50 for name in FEATURE_NAMES} | dict.fromkeys(
        CALLER_FEATURES, 0.0
    )


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
    metadata = model_metadata(
        ("fraud", "normal"), metrics={"pr_auc": 0.99} | reference_metrics(REFERENCE)
    )
    assert reference_from_metadata(metadata) == REFERENCE


# Closer to real normal traffic for the category tests: one-ring calls are rare.
CALLER_REFERENCE = REFERENCE | {
    f"{window}_{base}": bounds
    for window in ("short", "long")
    for base, bounds in {
        "one_ring_ratio": FeatureRange(0.0, 0.02, 0.15),
        "answer_rate": FeatureRange(0.2, 0.7, 0.95),
        "night_call_ratio": FeatureRange(0.0, 0.05, 0.3),
        "call_volume": FeatureRange(1.0, 8.0, 60.0),
        "distinct_callees": FeatureRange(1.0, 5.0, 40.0),
    }.items()
}


def caller_row(**values: float) -> dict[str, float]:
    """A normal caller by :data:`CALLER_REFERENCE`, with ``values`` changed."""
    return {name: CALLER_REFERENCE[name].p50 for name in FEATURE_NAMES} | values


def one_ring_row() -> dict[str, float]:
    return caller_row(long_one_ring_ratio=0.95, long_answer_rate=0.02,
                      long_night_call_ratio=0.6, long_call_volume=2400.0,
                      long_distinct_callees=2300.0)


def marketing_row() -> dict[str, float]:
    # The demo's finance marketer: rejected calls ring briefly, so one-ring stands out most.
    return caller_row(long_one_ring_ratio=0.95, long_call_volume=198.0,
                      long_distinct_callees=150.0, long_short_call_ratio=0.97)


def test_one_ring_flag_leads_with_one_ring() -> None:
    reasons = explain(one_ring_row(), CALLER_REFERENCE, category="one_ring")
    assert reasons[0] == "95% of 2400 calls in 24 h unanswered with under 3 s of ringing (one-ring)"
    assert "only 2% of 2400 calls answered in 24 h" in reasons


def test_marketing_flag_does_not_lead_with_one_ring() -> None:
    row = marketing_row()
    assert "one-ring" in explain(row, CALLER_REFERENCE)[0]  # furthest from normal by itself
    reasons = explain(row, CALLER_REFERENCE, category="finance_marketing")
    assert reasons == ("150 different numbers called in 24 h",
                       "short-call ratio 0.97 over 198 calls in 24 h",
                       "198 calls in 24 h")


def test_another_category_s_behaviour_comes_after_any_other_reason() -> None:
    row = caller_row(long_one_ring_ratio=0.95, long_call_volume=198.0)
    reasons = explain(row, CALLER_REFERENCE, category="other_marketing")
    assert reasons[0] == "198 calls in 24 h" and "one-ring" in reasons[1]
    # ...and leads only when nothing else stands out.
    alone = caller_row(long_one_ring_ratio=0.95)
    assert "one-ring" in explain(alone, CALLER_REFERENCE, category="real_estate")[0]


def test_debt_collection_speaks_of_the_same_numbers_again_and_again() -> None:
    row = caller_row(long_repeat_callee_ratio=0.97, long_distinct_callee_ratio=0.02,
                     long_call_volume=50.0)
    # By themselves, calling the same numbers again is not unusual: a marketer sprays.
    assert not any("more than once" in reason for reason in explain(row, CALLER_REFERENCE))
    reasons = explain(row, CALLER_REFERENCE, category="debt_collection")
    assert reasons == ("50 calls in 24 h went to only 1 different number",
                       "97% of callees in 24 h were called more than once")


def test_batch_with_categories_matches_single_rows_and_unknown_is_plain() -> None:
    rows = [one_ring_row(), marketing_row(), marketing_row()]
    categories = ["one_ring", "finance_marketing", "normal"]
    matrix = pl.DataFrame(rows).select(FEATURE_NAMES).to_numpy()
    batch = Explainer(FEATURE_NAMES, CALLER_REFERENCE).explain(matrix, categories)
    assert batch == [explain(row, CALLER_REFERENCE, category=category)
                     for row, category in zip(rows, categories, strict=True)]
    assert batch[2] == explain(marketing_row(), CALLER_REFERENCE)
    with pytest.raises(ValueError, match="1 categories for 3 rows"):
        Explainer(FEATURE_NAMES, CALLER_REFERENCE).explain(matrix, ["fraud"])


@pytest.mark.parametrize("kind", sorted(CALLER_KIND_PHRASES))
def test_the_calling_number_s_kind_is_named_after_the_behaviour(kind: str) -> None:
    row = normal_row() | {"short_call_volume": 300.0, kind: 1.0}
    reasons = explain(row, REFERENCE, top=3, category="fraud")
    assert reasons == ("300 calls in 10 min", CALLER_KIND_PHRASES[kind])
    matrix = pl.DataFrame([row]).select(FEATURE_NAMES).to_numpy()
    assert Explainer(FEATURE_NAMES, REFERENCE, top=1).explain(matrix) == [reasons]


def test_ordinary_mobile_and_fixed_lines_are_not_named() -> None:
    for row in (normal_row(), normal_row() | {"caller_fixed_line": 1.0}):
        reasons = explain(row | {"short_call_volume": 300.0}, REFERENCE, top=3)
        assert reasons == ("300 calls in 10 min",)


def test_a_model_without_window_features_still_names_the_number() -> None:
    explainer = Explainer(CALLER_FEATURES, {})
    matrix = [[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    assert explainer.explain(matrix) == [(CALLER_KIND_PHRASES["caller_virtual_operator"],), ()]
