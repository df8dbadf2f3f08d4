"""CallerBlock equals the per-caller path (FeatureStage + CallerState) message for message."""

from __future__ import annotations

import numpy as np
import pytest

from features.block import CallerBlock
from features.config import FeatureConfig
from streams.feature_stage import FeatureStage
from tests.unit.test_block_support import apply_to_block, random_messages, reference_record

CONFIGS = {
    "default": FeatureConfig(),
    "tiny buffer": FeatureConfig(reorder_capacity=2, kmv_k=4, segment_bins=4),
    "long grace": FeatureConfig(grace_s=400, reorder_capacity=3, inbound_generation_s=3600),
}


def assert_same_features(
    block: CallerBlock, table: dict[str, bytes], config: FeatureConfig
) -> None:
    assert set(table) == {
        block.number(row)
        for row in range(block.callers.capacity)
        if block._numbers[row] is not None
    }
    numbers = sorted(table)
    rows = np.array([block.row(number) for number in numbers])
    got = block.features(rows)
    for index, number in enumerate(numbers):
        record = reference_record(table, number, config)
        assert block.column("last_offset")[rows[index]] == record.last_offset, number
        assert block.column("watermark")[rows[index]] == record.state.watermark_ms, number
        np.testing.assert_array_equal(got[index], record.state.features(), err_msg=number)
    # A window one short hop earlier, where the ring still holds it.
    hop = config.short_hop_s * 1000
    ends = block.default_end_ms(rows) - hop
    for index, number in enumerate(numbers):
        state = reference_record(table, number, config).state
        try:
            expected = state.features(int(ends[index]))
        except ValueError:
            with pytest.raises(ValueError):
                block.features(rows[index : index + 1], ends[index : index + 1])
            continue
        np.testing.assert_array_equal(
            block.features(rows[index : index + 1], ends[index : index + 1])[0],
            expected,
            err_msg=number,
        )


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_block_equals_the_per_caller_stage(name: str, seed: int) -> None:
    config = CONFIGS[name]
    stage, table = FeatureStage(config), {}
    block = CallerBlock(config, capacity=4)  # grows while the test runs
    for step, message in enumerate(random_messages(seed)):
        stats, _ = stage.apply(message.batch, message.offset, table)
        counts = apply_to_block(block, message)
        for key in ("accepted", "duplicates", "replayed", "late_accepted", "late_dropped"):
            assert counts.get(key, 0) == getattr(stats, key), (step, key)
        assert counts.get("complaints", 0) == stats.complaints, step
        assert counts.get("inbound", 0) == stats.inbound, step
        if step % 7 == 6:
            assert_same_features(block, table, config)
    assert_same_features(block, table, config)
