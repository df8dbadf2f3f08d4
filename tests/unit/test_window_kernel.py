"""The compiled window fold equals combine() over the same parts, gathered with numpy."""

from __future__ import annotations

import numpy as np
import pytest

from features.aggregate import COMPLAINTS, Aggregates, chain_calls, combine
from features.block.engine import CallerBlock
from features.block.read import window_aggregates
from features.config import FeatureConfig
from tests.unit.test_block import CONFIGS, fed_block, live_rows


def combined_with_numpy(block: CallerBlock, rows: np.ndarray, end_ms: np.ndarray, index: int):
    """Each row's window as combine() folds its parts.

    Slots by bucket, then the buffered calls' chain, then the held complaints.
    """
    config = block.config
    spec = config.windows[index]
    first_column = 0 if index == 0 else config.windows[0].slots
    columns, pools = block.callers.columns, block.slots.columns
    short_hop_ms = config.short_hop_s * 1000
    out = Aggregates.empty(len(rows), config)
    for i, row in enumerate(rows.tolist()):
        last = -(-int(end_ms[i]) // spec.hop_ms)
        first = last - spec.buckets_per_window
        ring = columns["bucket"][row, first_column:first_column + spec.slots]
        inside = np.flatnonzero((ring >= first) & (ring < last))
        inside = inside[np.argsort(ring[inside])]
        records = columns["slot"][row, first_column + inside]
        parts = Aggregates(pools["counters"][records], pools["kmv_hash"][records],
                           pools["kmv_count"][records], pools["segment_hist"][records])
        pending = columns["pending_ms"][row, : columns["pending_n"][row]]
        keys = columns["pending_key"][row, : columns["pending_n"][row]]
        kept = (pending // spec.hop_ms >= first) & (pending // spec.hop_ms < last)
        if kept.any():
            parts = parts.concatenate(
                chain_calls(pending[kept], keys[kept], np.array([0]), config)
            )
        held = columns["held_bucket"][row, : columns["held_n"][row]]
        end = min(last * spec.hop_ms, int(end_ms[i]))
        low, high = first * spec.hop_ms // short_hop_ms, -(-end // short_hop_ms)
        landed = (held >= low) & (held < high)
        if landed.any():
            complaint = Aggregates.empty(1, config)
            held_count = columns["held_count"][row, : len(held)]
            complaint.counters[0, COMPLAINTS] = held_count[landed].sum()
            parts = parts.concatenate(complaint)
        if len(parts):
            one = combine(parts, np.array([0]), config)
            out.counters[i], out.kmv_hash[i] = one.counters[0], one.kmv_hash[0]
            out.kmv_count[i], out.segment_hist[i] = one.kmv_count[0], one.segment_hist[0]
    return out


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("seed", [1, 4])
def test_the_window_fold_equals_combine(name: str, seed: int) -> None:
    config: FeatureConfig = CONFIGS[name]
    block, _ = fed_block(config, seed)
    # Counts above one in the sketches: some callees called again in another bucket.
    counts = block.slots.columns["kmv_count"]
    counts[counts > 0] = np.minimum(counts[counts > 0].astype(np.int64) * 7, 255).astype(np.uint8)
    rows = live_rows(block)
    end_ms = block.default_end_ms(rows)
    assert block.callers.columns["pending_n"][rows].any()  # buffered calls: a chain part
    # Complaints held ahead of the watermark (released by the time the stream ends):
    # every third row holds some for its last short bucket and the one after.
    columns, short_ms = block.callers.columns, config.short_hop_s * 1000
    held_rows = rows[::3]
    last_bucket = (end_ms[::3] - 1) // short_ms
    columns["held_n"][held_rows] = 2
    columns["held_bucket"][held_rows, 0] = last_bucket
    columns["held_bucket"][held_rows, 1] = last_bucket + 1
    columns["held_count"][held_rows, 0] = 3
    columns["held_count"][held_rows, 1] = 5
    for index, name_of_window in enumerate(("short", "long")):
        got = window_aggregates(block, rows, end_ms, name_of_window)
        expected = combined_with_numpy(block, rows, end_ms, index)
        np.testing.assert_array_equal(got.counters, expected.counters)
        np.testing.assert_array_equal(got.kmv_hash, expected.kmv_hash)
        np.testing.assert_array_equal(got.kmv_count, expected.kmv_count)
        np.testing.assert_array_equal(got.segment_hist, expected.segment_hist)
