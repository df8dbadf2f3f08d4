"""The calling number's kind as features: one function, the same in the worker and offline."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

from contracts.numbers import normalise
from features.caller_number import CALLER_FEATURES, caller_number_dict, caller_number_features
from features.config import FeatureConfig
from features.emission import EmissionPolicy
from features.offline import compute_features
from features.vector import FEATURE_NAMES, WINDOW_FEATURE_NAMES
from models.operator_labels import label_training_rows, labels_frame
from streams.stages.block_stage import BlockFeatureStage
from streams.stages.reference.feature_stage import FeatureStage
from tests.unit.test_feature_stage import T0, cdr, routed

KINDS = {
    "13800138000": None,  # an ordinary mobile line: every feature 0
    "+86 170 1234 5678": "caller_virtual_operator",
    "16512345678": "caller_virtual_operator",
    "010-12345678": "caller_fixed_line",
    "0755-87654321": "caller_fixed_line",
    "95588": "caller_service_number",
    "96511": "caller_service_number",
    "12345": "caller_service_number",
    "400-812-3123": "caller_service_number",
    "+85291234567": "caller_international",
    "+639171234567": "caller_international",
}


@pytest.mark.parametrize(("raw", "kind"), KINDS.items())
def test_each_kind_of_number_sets_its_own_feature(raw: str, kind: str | None) -> None:
    number = normalise(raw, "CN")
    expected = {name: float(name == kind) for name in CALLER_FEATURES}
    assert caller_number_dict(number) == expected
    row = caller_number_features([number])[0]
    assert dict(zip(CALLER_FEATURES, row.tolist(), strict=True)) == expected


def test_the_feature_vector_ends_with_the_number_features() -> None:
    assert FEATURE_NAMES == (*WINDOW_FEATURE_NAMES, *CALLER_FEATURES)
    assert caller_number_features([]).shape == (0, len(CALLER_FEATURES))


def test_offline_rows_carry_their_callers_kind() -> None:
    callers = ["+8617012345678", "+861012345678", "95588", "+8613800138000"]
    count = 5 * len(callers)
    calls = pl.DataFrame({
        "caller": callers * 5,
        "callee": [f"+8613900{i:06d}" for i in range(count)],
        "start_ms": [T0 + i * 20_000 for i in range(count)],
        "duration_s": [0.0] * count,
        "disposition": ["NO_ANSWER"] * count,
        "ring_s": [2.0] * count,
    })
    table = compute_features(calls, FeatureConfig(), at=[T0 + 600_000])
    assert sorted(table["caller"].to_list()) == sorted(callers)
    for row in table.iter_rows(named=True):
        assert {name: row[name] for name in CALLER_FEATURES} == caller_number_dict(row["caller"])


@pytest.mark.parametrize("stage_type", [BlockFeatureStage, FeatureStage])
def test_the_worker_scores_each_row_with_its_callers_kind(stage_type: type) -> None:
    virtual, mobile = "+8617012345678", "+8613800138000"
    records = [cdr(i, caller=virtual if i % 2 else mobile, at=T0 + i * 30_000) for i in range(20)]
    later = [cdr(99, caller="+8613999999999", at=T0 + 3_600_000)]
    stage, table = stage_type(FeatureConfig(), EmissionPolicy(min_calls=5)), {}
    stage.apply(routed(records), 0, table)
    _, emission = stage.apply(routed(later), 1, table)
    matrix = emission.matrix()
    assert sorted(emission.numbers) == [mobile, virtual]
    assert matrix.shape == (2, len(FEATURE_NAMES))
    for number, row in zip(emission.numbers, matrix, strict=True):
        assert dict(zip(FEATURE_NAMES[-len(CALLER_FEATURES):], row[-len(CALLER_FEATURES):].tolist(),
                        strict=True)) == caller_number_dict(number)
        assert stage.snapshot(number, table)["features"]["caller_virtual_operator"] == float(
            number == virtual)
    assert np.array_equal(matrix[:, : len(WINDOW_FEATURE_NAMES)], np.vstack(emission.rows))


def test_an_operator_label_from_before_the_number_features_gets_them_from_its_number() -> None:
    label = {
        "decision_id": "d1", "number": "+8617012345678", "label": "fraud", "action": "confirm",
        "actor": "op:li", "reason": "", "event_time": datetime(2018, 7, 2, tzinfo=UTC),
        "model_version": "v", "category": "fraud", "score": 0.99,
        "feature_names": list(WINDOW_FEATURE_NAMES),
        "feature_values": [1.0] * len(WINDOW_FEATURE_NAMES),
    }
    rows = label_training_rows(labels_frame([label]))
    assert rows.height == 1
    assert rows.select(CALLER_FEATURES).row(0) == (0.0, 0.0, 1.0, 0.0)
    assert rows.select(WINDOW_FEATURE_NAMES).row(0) == (1.0,) * len(WINDOW_FEATURE_NAMES)
    # A snapshot that lacks window features is still left out.
    partial = label | {"feature_names": ["short_call_volume"], "feature_values": [1.0]}
    assert label_training_rows(labels_frame([partial])).is_empty()
