"""The block's record pools: growth and compaction keep every record, in place where they can."""

from __future__ import annotations

import numpy as np
import pytest

from features.block.pool import RecordPool

LAYOUT = {
    "counters": ((3,), np.dtype(np.int32), 0),
    "watermark": ((), np.dtype(np.int64), -1),
    "ids": ((2, 4), np.dtype(np.uint32), 7),
}


def _filled(pool: RecordPool, records: np.ndarray) -> None:
    """Give each record values of its own (its index, in every cell)."""
    for column in pool.columns.values():
        column[records] = records.reshape((-1,) + (1,) * (column.ndim - 1))


def _holds_own_values(pool: RecordPool, records: np.ndarray, values: np.ndarray) -> bool:
    return all(
        (column[records] == values.reshape((-1,) + (1,) * (column.ndim - 1))).all()
        for column in pool.columns.values()
    )


def _fresh(pool: RecordPool, records: np.ndarray) -> bool:
    return all(
        (pool.columns[name][records] == fill).all() for name, (_, _, fill) in LAYOUT.items()
    )


def test_growing_keeps_every_record_and_fills_the_new_ones() -> None:
    pool = RecordPool(4, LAYOUT)
    first = pool.allocate(4)
    _filled(pool, first)
    more = pool.allocate(10)  # beyond the capacity: the pool grows
    assert pool.capacity >= 14 and pool.used == 14
    assert len(set(first.tolist()) | set(more.tolist())) == 14
    assert _holds_own_values(pool, first, first)
    assert _fresh(pool, more)
    assert _fresh(pool, np.arange(14, pool.capacity))  # spare records too


def test_a_pool_nobody_else_holds_grows_in_place() -> None:
    pool = RecordPool(1000, LAYOUT)
    before = {name: id(column) for name, column in pool.columns.items()}
    records = pool.allocate(1000)
    _filled(pool, records)
    pool.allocate(1)
    assert {name: id(column) for name, column in pool.columns.items()} == before
    assert list(pool.columns) == list(LAYOUT)
    assert _holds_own_values(pool, records, records)


def test_a_view_held_across_a_grow_stays_valid() -> None:
    pool = RecordPool(8, LAYOUT)
    records = pool.allocate(8)
    _filled(pool, records)
    held = pool.columns["counters"][:, 0]  # a view: the column cannot move under it
    before = id(pool.columns["counters"])  # (holding the column itself would refuse too)
    pool.allocate(20)
    assert id(pool.columns["counters"]) != before  # copied, not resized under the view
    assert held.tolist() == records.tolist()
    assert _holds_own_values(pool, records, records)
    pool.columns["counters"][records] = 0  # the pool writes its own column only
    assert held.tolist() == records.tolist()


def test_compaction_moves_records_in_use_to_the_front_and_cuts_the_rest() -> None:
    pool = RecordPool(64, LAYOUT)
    records = pool.allocate(64)
    _filled(pool, records)
    kept = records[::5]
    pool.release(np.setdiff1d(records, kept))
    before = {name: id(column) for name, column in pool.columns.items()}
    remap = pool.compact(20)
    assert pool.capacity == 20 and pool.used == len(kept)
    moved = remap[kept]
    assert sorted(moved.tolist()) == list(range(len(kept)))
    assert _holds_own_values(pool, moved, kept)
    assert _fresh(pool, np.arange(len(kept), 20))
    assert (remap[np.setdiff1d(records, kept)] == -1).all()
    assert {name: id(column) for name, column in pool.columns.items()} == before
    # The free records are the ones after those in use, lowest first.
    assert pool.allocate(3).tolist() == [len(kept), len(kept) + 1, len(kept) + 2]


def test_compaction_never_cuts_below_the_records_in_use() -> None:
    pool = RecordPool(16, LAYOUT)
    records = pool.allocate(10)
    _filled(pool, records)
    remap = pool.compact(4)
    assert pool.capacity == 10
    assert _holds_own_values(pool, remap[records], records)


@pytest.mark.parametrize("count", [1, 17, 300])
def test_released_records_come_back_fresh(count: int) -> None:
    pool = RecordPool(4, LAYOUT)
    records = pool.allocate(count)
    _filled(pool, records)
    pool.release(records)
    assert pool.used == 0
    again = pool.allocate(count)
    assert _fresh(pool, again)
