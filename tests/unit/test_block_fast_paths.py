"""The shortcuts of the block's hot path give what the plain numpy calls give.

``distinct_rows`` stands in for ``np.unique``; ``CallerBlock.window_calls``
stands in for the ``call_volume`` column of a feature vector; ``callee_keys`` reads numbers
with ``int`` directly; ``kmv_union_groups`` packs its sort key. Each is
checked against the call it replaces, on random input and on the edges
(empty input, counts too large to pack).
"""

from __future__ import annotations

import numpy as np
import pytest

from features.batch import callee_keys
from features.block.engine import CallerBlock
from features.block.ops import distinct_rows
from features.sketch import EMPTY_HASH, kmv_union_groups
from features.vector import FEATURE_NAMES
from tests.unit.test_block import CONFIGS
from tests.unit.test_block_support import apply_to_block, random_messages


def test_distinct_rows_is_unique_with_inverse() -> None:
    # Rows many against the pool (a mask) or few (a sort): the same answer and types.
    rng = np.random.default_rng(7)
    for pool in (64, 10_000):
        for size in (0, 1, 5, 300):
            rows = rng.integers(0, pool, size)
            unique, inverse = distinct_rows(rows, pool, inverse=True)
            expected, expected_inverse = np.unique(rows, return_inverse=True)
            np.testing.assert_array_equal(unique, expected)
            np.testing.assert_array_equal(inverse, expected_inverse.ravel())
            assert unique.dtype == np.int64 and inverse.dtype == np.intp
            alone = distinct_rows(rows, pool)[0]
            np.testing.assert_array_equal(alone, expected)
            assert alone.dtype == np.int64


def test_callee_keys_read_plus_signs_as_before() -> None:
    assert callee_keys(["+8613800138000", "95588"]).tolist() == [8613800138000, 95588]
    assert callee_keys(number for number in ["++12", "+3"]).tolist() == [12, 3]
    assert callee_keys([]).tolist() == []
    with pytest.raises(ValueError):
        callee_keys(["+86abc"])


def _kmv_reference(groups, hashes, counts, n_groups, k):  # type: ignore[no-untyped-def]
    """Bottom-k per group, one group at a time, with Python sets."""
    out_hashes = np.full((n_groups, k), EMPTY_HASH, np.uint32)
    out_counts = np.zeros((n_groups, k), np.uint8)
    for group in range(n_groups):
        totals: dict[int, int] = {}
        for index in np.flatnonzero(groups == group):
            if hashes[index] != EMPTY_HASH:
                totals[int(hashes[index])] = totals.get(int(hashes[index]), 0) + int(counts[index])
        for rank, value in enumerate(sorted(totals)[:k]):
            out_hashes[group, rank] = value
            out_counts[group, rank] = min(totals[value], 255)
    return out_hashes, out_counts


@pytest.mark.parametrize("count_high", [3, 255, 1000])  # 1000: counts too large to pack
def test_kmv_union_groups_equals_a_per_group_union(count_high: int) -> None:
    rng = np.random.default_rng(count_high)
    size, n_groups, k = 400, 30, 4
    groups = rng.integers(0, n_groups, size)
    hashes = rng.integers(0, 12, size).astype(np.uint32) * np.uint32(300_000_000)
    hashes[rng.random(size) < 0.1] = EMPTY_HASH
    counts = rng.integers(0, count_high, size)
    got = kmv_union_groups(groups, hashes, counts, n_groups, k)
    expected = _kmv_reference(groups, hashes, counts, n_groups, k)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_window_calls_is_the_call_volume_of_the_features(name: str) -> None:
    config = CONFIGS[name]
    block = CallerBlock(config, capacity=4)
    for message in random_messages(3):
        apply_to_block(block, message)
    rows = np.array([block.row(number) for number in block.numbers()])
    features = block.features(rows)
    for window in ("short", "long"):
        column = FEATURE_NAMES.index(f"{window}_call_volume")
        np.testing.assert_array_equal(block.window_calls(rows, window), features[:, column])
