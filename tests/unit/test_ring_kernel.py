"""The compiled ring steps: calls into slots (with the pool's free records), chains into slots."""

from __future__ import annotations

import numpy as np
import pytest

from features.aggregate import Aggregates, chain_calls, merge_row
from features.block.pool import RecordPool
from features.block.ring_kernel import chain_into_rings, count_into_rings
from features.config import FeatureConfig
from features.runs import run_starts
from features.sketch import EMPTY_HASH, kmv_union_groups

K, BINS, EVENTS = 4, 3, 2
LAYOUT = {
    "counters": ((EVENTS,), np.dtype(np.int64), 0),
    "kmv_hash": ((K,), np.dtype(np.uint32), int(EMPTY_HASH)),
    "kmv_count": ((K,), np.dtype(np.uint8), 0),
    "segment_hist": ((BINS,), np.dtype(np.uint32), 0),
}
HOP_MS = np.array([10], np.int64)  # one window of 3 slots, buckets of 10 ms
SLOTS = np.array([3], np.int64)


def run(pool: RecordPool, held: np.ndarray, records: np.ndarray, calls: dict, start: int = 0):
    free, top = pool.free_stack()
    c = pool.columns
    done, top = count_into_rings(
        start, calls["rows"], calls["start_ms"], calls["flags"], calls["bin"], calls["hash"],
        HOP_MS, SLOTS, np.array([0], np.int64), 3, held, records,
        c["counters"], c["segment_hist"], c["kmv_hash"], c["kmv_count"], free, top,
    )
    pool.taken_from_stack(top)
    return done


def calls_of(rows, start_ms, hashes) -> dict:
    n = len(rows)
    return {
        "rows": np.array(rows, np.int64), "start_ms": np.array(start_ms, np.int64),
        "flags": np.ones((n, EVENTS), np.int64), "bin": np.arange(n, dtype=np.intp) % BINS,
        "hash": np.array(hashes, np.uint32),
    }


def test_a_newer_bucket_clears_the_cell_and_an_older_one_is_dropped() -> None:
    pool = RecordPool(4, LAYOUT)
    held = np.full(3, np.iinfo(np.int64).min, np.int64)
    records = np.full(3, -1, np.int32)
    # bucket 1 (cell 1), then bucket 4 (cell 1 again: newer), then bucket 1 (older: dropped)
    assert run(pool, held, records, calls_of([0, 0, 0], [15, 42, 18], [7, 8, 9])) == 3
    record = records[1]
    assert held[1] == 4 and pool.used == 1
    assert pool.columns["counters"][record].tolist() == [1, 1]
    assert pool.columns["kmv_hash"][record].tolist() == [8, *[int(EMPTY_HASH)] * 3]


def test_an_empty_free_stack_stops_the_pass_and_it_resumes_after_the_pool_grows() -> None:
    pool = RecordPool(1, LAYOUT)
    held = np.full(6, np.iinfo(np.int64).min, np.int64)
    records = np.full(6, -1, np.int32)
    calls = calls_of([0, 1], [5, 5], [3, 3])
    assert run(pool, held, records, calls) == 1  # the one free record taken, none for the next
    assert run(pool, held, records, calls, start=1) == 1  # still none: nothing done
    pool.reserve(1)
    assert run(pool, held, records, calls, start=1) == 2
    assert sorted(records[records >= 0].tolist()) == [0, 1] and pool.used == 2


@pytest.mark.parametrize("seed", range(5))
def test_sketches_equal_the_union_of_the_calls(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    hashes = rng.integers(0, 40, n).astype(np.uint32)
    hashes[rng.random(n) < 0.05] = EMPTY_HASH
    rows = rng.integers(0, 5, n)
    pool = RecordPool(2, LAYOUT)
    held = np.full(15, np.iinfo(np.int64).min, np.int64)
    records = np.full(15, -1, np.int32)
    calls = calls_of(rows, np.zeros(n, np.int64), hashes)
    calls["hash"][:50] = 1  # one callee called again and again
    done = 0
    while done < n:
        done = run(pool, held, records, calls, start=done)
        pool.reserve(1)
    expected_hash, expected_count = kmv_union_groups(
        rows, calls["hash"], np.ones(n, np.uint8), 5, K
    )
    for row in range(5):
        record = records[row * 3]
        np.testing.assert_array_equal(pool.columns["kmv_hash"][record], expected_hash[row])
        np.testing.assert_array_equal(pool.columns["kmv_count"][record], expected_count[row])


def test_counts_saturate_at_255() -> None:
    pool = RecordPool(2, LAYOUT)
    held = np.full(3, np.iinfo(np.int64).min, np.int64)
    records = np.full(3, -1, np.int32)
    run(pool, held, records, calls_of([0] * 300, [0] * 300, [5] * 300))
    assert pool.columns["kmv_count"][records[0]][0] == 255
    assert pool.columns["counters"][records[0]].tolist() == [300, 300]


@pytest.mark.parametrize("seed", range(6))
def test_chains_merge_as_merge_row_merges_each_part(seed: int) -> None:
    """Parts (a caller's calls in one short bucket) merged in order, overlaps included."""
    config = FeatureConfig(sequential_max_gap=3)
    rng = np.random.default_rng(seed)
    short_ms, long_ms = config.short_hop_s * 1000, config.long_hop_s * 1000
    n_rows, ring = 3, 4  # one window here: the long one, 4 slots
    n = 60
    rows = np.sort(rng.integers(0, n_rows, n))
    start_ms = np.zeros(n, np.int64)
    for row in range(n_rows):
        mine = rows == row
        start_ms[mine] = np.sort(rng.integers(0, 3 * short_ms, mine.sum()))
    callee = 8613800000000 + rng.integers(0, 8, n)  # close numbers: sequential pairs happen
    # Every row's long bucket 0 is held, by records 0..2; row 1 already holds an
    # overlapping chain (its last call after some of the new ones), row 2 none.
    held = np.full(n_rows * ring, np.iinfo(np.int64).min, np.int64)
    records = np.full(n_rows * ring, -1, np.int32)
    held[np.arange(n_rows) * ring] = 0
    records[np.arange(n_rows) * ring] = np.arange(n_rows)
    existing = chain_calls(np.array([400_000, 900_000], np.int64),
                           np.array([8613800000003, 8613800000004], np.uint64),
                           np.array([0]), config)
    slots = Aggregates.empty(n_rows, config)
    slots.counters[1] = existing.counters[0]
    expected = Aggregates.empty(n_rows, config)
    expected.counters[1] = existing.counters[0]
    part_starts = run_starts(rows, start_ms // short_ms)
    parts = chain_calls(start_ms, callee.astype(np.uint64), part_starts, config)
    for part, first in enumerate(part_starts.tolist()):
        merge_row(expected, int(rows[first]), parts, part, config)
    chain_into_rings(
        rows, start_ms, callee, short_ms, config.sequential_max_gap,
        np.array([long_ms], np.int64), np.array([ring], np.int64), np.array([0], np.int64), ring,
        held, records, slots.counters,
    )
    np.testing.assert_array_equal(slots.counters, expected.counters)
