"""Internal messages cut below the broker's record limit, losing and reordering nothing."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import orjson
import pytest

from contracts.by_caller import RoutedBatch, decode_routed, encode_routed, encode_routed_parts
from features.config import FeatureConfig
from streams.pipeline.deadletter import SourcePosition
from streams.pipeline.ingest import RawMessage, ingest_cdrs
from streams.stages.block_stage import BlockFeatureStage
from streams.stages.caller_features import (
    Emission,
    decode_features,
    encode_features,
    encode_features_parts,
)

T0 = 1_709_251_200_000


def routed(calls: int = 3000, partitions: int = 1) -> RoutedBatch:
    """One partition's batch: a few busy callers ringing many numbers (inbound notes too)."""
    rng = np.random.default_rng(5)
    records = [
        {
            "cdr_id": f"c{i}",
            "caller": f"+86139{int(rng.integers(0, 40)):08d}",
            "callee": f"+86139{int(rng.integers(0, 400)):08d}",
            "start_time": T0 + i * 700,
            "duration_s": float(rng.integers(0, 90)),
            "disposition": "ANSWERED" if rng.random() < 0.5 else "NO_ANSWER",
        }
        for i in range(calls)
    ]
    outcome = ingest_cdrs(
        [RawMessage(orjson.dumps(records), SourcePosition("raw", 0, 0))],
        partitions=partitions, default_region="CN", max_message_bytes=10**8,
        max_original_bytes=10**6, now_ms=0,
    )
    return outcome.by_partition[0]


def concatenated(parts: list[bytes]) -> dict[str, dict[str, list]]:
    joined: dict[str, dict[str, list]] = {}
    for raw in parts:
        batch = decode_routed(raw)
        for name in ("calls", "inbound", "complaints", "appeals"):
            part = getattr(batch, name)
            for column in fields(part):
                joined.setdefault(name, {}).setdefault(column.name, []).extend(
                    getattr(part, column.name))
    return joined


def test_a_small_batch_stays_one_message():
    batch = routed(50)
    assert encode_routed_parts(batch) == [encode_routed(batch)]


def test_a_large_batch_is_cut_below_the_limit_with_every_record_in_order():
    batch = routed(3000)
    whole = encode_routed(batch)
    parts = encode_routed_parts(batch, max_bytes=len(whole) // 5)
    assert len(parts) >= 5
    assert all(len(part) <= len(whole) // 5 for part in parts)
    assert concatenated(parts) == concatenated([whole])
    # Each part is a stretch of event time: its notes are no later than its last call
    # (the last part excepted) and later than the calls of the parts before it.
    decoded = [decode_routed(part) for part in parts]
    reached = np.maximum.accumulate([max(p.calls.start_ms) for p in decoded])
    for index, part in enumerate(decoded):
        if part.inbound.time_ms and index < len(decoded) - 1:
            assert max(part.inbound.time_ms) <= reached[index]
        if part.inbound.time_ms and index > 0:
            assert min(part.inbound.time_ms) > reached[index - 1]


def test_applying_the_parts_gives_the_rows_and_features_of_the_whole_message():
    batch = routed(3000)  # 35 minutes of calls: rows emitted at several cuts
    config = FeatureConfig()
    whole_stage, parts_stage = BlockFeatureStage(config), BlockFeatureStage(config)
    whole_table: dict[str, bytes] = {}
    parts_table: dict[str, bytes] = {}
    _, whole_rows = whole_stage.apply(batch, 0, whole_table)
    parts = encode_routed_parts(batch, max_bytes=len(encode_routed(batch)) // 4)
    parts_rows = Emission()
    for offset, raw in enumerate(parts):
        parts_rows.extend(parts_stage.apply(decode_routed(raw), offset, parts_table)[1])
    assert len(whole_rows) > 20
    assert sorted(zip(whole_rows.numbers, whole_rows.window_end_ms, map(tuple, whole_rows.rows),
                      strict=True)) == sorted(
        zip(parts_rows.numbers, parts_rows.window_end_ms, map(tuple, parts_rows.rows),
            strict=True))
    assert set(whole_table) == set(parts_table)
    for number in whole_table:
        assert whole_stage.snapshot(number, whole_table)["features"] == (
            parts_stage.snapshot(number, parts_table)["features"]), number


def test_a_large_emission_is_cut_by_callers():
    rng = np.random.default_rng(1)
    emission = Emission(
        [f"+86139{i:08d}" for i in range(900)],
        [T0] * 900,
        list(rng.random((900, 32))),
    )
    whole = encode_features(emission)
    parts = encode_features_parts(emission, max_bytes=len(whole) // 3)
    assert len(parts) >= 3 and all(len(p) <= len(whole) // 3 for p in parts)
    decoded = [decode_features(p) for p in parts]
    assert [n for d in decoded for n in d["numbers"]] == emission.numbers
    assert np.array_equal(np.array([r for d in decoded for r in d["rows"]]), emission.matrix())



@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1, 2]",
        b'{"other": {}}',
        b'{"calls": "not columns"}',
        b'{"calls": {"cdr_id": ["a"]}}',
        b'{"inbound": {"number": "x", "from_number": "y", "time_ms": "z"}}',
        b'{"inbound": {"number": ["x"], "from_number": [], "time_ms": [1]}}',
        b'{"inbound": {"number": "AAAA", "from_number": "AAAA", "time_ms": [1]}}',
        b'{"inbound": {"number": "not base64!", "from_number": [], "time_ms": []}}',
        # keys that are no number (0, negative, too long), texts that are not normalised
        b'{"inbound": {"number": "AAAAAAAAAAA=", "from_number": "AAAAAAAAAAA=", "time_ms": [1]}}',
        b'{"inbound": {"number": [8613800138000], "from_number": [1], "time_ms": [1]}}',
        b'{"inbound": {"number": ["13800138000"], "from_number": ["+1"], "time_ms": [1]}}',
        b'{"inbound": {"number": [1.5], "from_number": [1], "time_ms": [1]}}',
    ],
)
def test_a_foreign_message_is_refused_with_a_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError, match="cdr.by_caller|JSON|unexpected|invalid|expected"):
        decode_routed(raw)
