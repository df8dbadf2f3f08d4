"""KeyIndex gives what a dict gives, across growth, removals and wrap-around."""

from __future__ import annotations

import numpy as np
import pytest

from features.block.key_index import KeyIndex, warm_up

TOP_KEY = 2**61


def as_dict(index: KeyIndex) -> dict[int, int]:
    keys, rows = index.keys(), index.rows()
    assert keys.dtype == np.int64 and rows.dtype == np.int64
    assert keys.size == rows.size == len(index)
    assert np.unique(keys).size == keys.size
    return dict(zip(keys.tolist(), rows.tolist(), strict=True))


def expected_rows(oracle: dict[int, int], keys: np.ndarray) -> np.ndarray:
    return np.array([oracle.get(key, -1) for key in keys.tolist()], np.int64)


def home_slot(key: int, slots: int) -> int:
    # SplitMix64's finaliser in Python integers, as the kernels compute it.
    bits = (1 << 64) - 1
    z = (key + 0x9E3779B97F4A7C15) & bits
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & bits
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & bits
    return (z ^ (z >> 31)) & (slots - 1)


def test_random_rounds_match_a_dict() -> None:
    rng = np.random.default_rng(11)
    index = KeyIndex(4)
    oracle: dict[int, int] = {}
    # Keys from a pool so that overwrites, repeats in a call and absent removals happen.
    pool = np.unique(rng.integers(0, TOP_KEY, 80_000))
    for round_ in range(400):
        grow = round_ < 300
        size = int(rng.integers(0, 400 if grow else 200))
        keys = rng.choice(pool, size)
        rows = rng.integers(0, 2**40, size)
        index.insert(keys, rows)
        for key, row in zip(keys.tolist(), rows.tolist(), strict=True):
            oracle[key] = row
        gone = rng.choice(pool, int(rng.integers(0, 60 if grow else 300)))
        index.remove(gone)
        for key in gone.tolist():
            oracle.pop(key, None)
        assert len(index) == len(oracle)
        probe = np.concatenate([rng.choice(pool, 300), rng.integers(0, TOP_KEY, 50)])
        got = index.get(probe)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, expected_rows(oracle, probe))
        if round_ % 50 == 49:
            assert as_dict(index) == oracle
    assert as_dict(index) == oracle
    assert len(oracle) > 5_000


def test_grows_to_tens_of_thousands() -> None:
    rng = np.random.default_rng(3)
    index = KeyIndex(4)
    keys = np.unique(rng.integers(0, TOP_KEY, 60_000))
    rows = np.arange(keys.size, dtype=np.int64)
    for start in range(0, keys.size, 1_000):
        index.insert(keys[start : start + 1_000], rows[start : start + 1_000])
    assert len(index) == keys.size
    np.testing.assert_array_equal(index.get(keys), rows)
    assert as_dict(index) == dict(zip(keys.tolist(), rows.tolist(), strict=True))
    absent = rng.integers(0, TOP_KEY, 1_000)
    absent = absent[~np.isin(absent, keys)]
    assert (index.get(absent) == -1).all()


def test_repeated_key_in_one_call_takes_the_last_row() -> None:
    index = KeyIndex(4)
    index.insert([5, 7, 5, 5], [1, 2, 3, 4])
    assert len(index) == 2
    np.testing.assert_array_equal(index.get([5, 7, 9]), [4, 2, -1])
    index.insert([7], [10])
    assert as_dict(index) == {5: 4, 7: 10}


def test_remove_most_then_reinsert() -> None:
    rng = np.random.default_rng(5)
    index = KeyIndex(4)
    keys = np.unique(rng.integers(0, TOP_KEY, 20_000))
    index.insert(keys, keys % 1_000_003)
    for _ in range(3):
        gone = rng.permutation(keys)[: keys.size * 9 // 10]
        index.remove(gone)
        kept = keys[~np.isin(keys, gone)]
        assert len(index) == kept.size
        np.testing.assert_array_equal(index.get(kept), kept % 1_000_003)
        assert (index.get(gone) == -1).all()
        index.insert(gone, gone % 1_000_003)
        assert len(index) == keys.size
        np.testing.assert_array_equal(index.get(keys), keys % 1_000_003)


def test_backward_shift_wraps_around_the_table_end() -> None:
    # capacity 8: 16 slots; the run starting at the last slots wraps to slot 0 and on.
    index = KeyIndex(8)
    slots = 16
    by_home: dict[int, list[int]] = {}
    key = 0
    while any(len(by_home.get(home, [])) < 3 for home in (14, 15, 0)):
        by_home.setdefault(home_slot(key, slots), []).append(key)
        key += 1
    # Three keys home at 14, three at 15, two at 0: slots 14..15 and 0..5 hold one run.
    run = by_home[14][:3] + by_home[15][:3] + by_home[0][:2]
    rows = list(range(100, 100 + len(run)))
    index.insert(run, rows)
    assert index.keys().size == len(run) and len(index) == len(run)
    oracle = dict(zip(run, rows, strict=True))
    # Remove from the front, the middle and past the wrap, one at a time.
    for gone in (run[0], run[4], run[6], run[1], run[7]):
        index.remove([gone])
        del oracle[gone]
        assert as_dict(index) == oracle
        np.testing.assert_array_equal(index.get(run), expected_rows(oracle, np.array(run)))
    index.insert(run, rows)
    np.testing.assert_array_equal(index.get(run), rows)
    index.remove(run)
    assert len(index) == 0
    assert (index.get(run) == -1).all()


def test_backward_shift_wraps_with_random_small_tables() -> None:
    # Small tables filled to half, so runs wrap at the end often.
    rng = np.random.default_rng(9)
    for _ in range(300):
        index = KeyIndex(8)
        keys = rng.choice(2**20, 8, replace=False)
        index.insert(keys, keys + 1)
        oracle = {int(key): int(key) + 1 for key in keys}
        for gone in rng.permutation(keys).tolist():
            index.remove([gone, gone])
            del oracle[gone]
            assert as_dict(index) == oracle
            np.testing.assert_array_equal(index.get(keys), expected_rows(oracle, keys))


def test_clear() -> None:
    index = KeyIndex(4)
    index.insert(np.arange(100), np.arange(100))
    index.clear()
    assert len(index) == 0
    assert index.keys().size == 0 and index.rows().size == 0
    assert (index.get(np.arange(100)) == -1).all()
    index.insert([3], [4])
    assert as_dict(index) == {3: 4}


def test_empty_inputs() -> None:
    index = KeyIndex(0)
    got = index.get(np.array([], np.int64))
    assert got.dtype == np.int64 and got.shape == (0,)
    assert index.get([]).shape == (0,)
    index.insert([], [])
    index.remove([])
    assert len(index) == 0
    assert index.keys().dtype == np.int64 and index.keys().size == 0
    assert index.rows().dtype == np.int64 and index.rows().size == 0


def test_rejects_bad_input() -> None:
    index = KeyIndex()
    with pytest.raises(ValueError, match="non-negative"):
        index.insert([1, -2], [0, 1])
    with pytest.raises(ValueError, match="non-negative"):
        index.insert([1, 2], [0, -1])
    with pytest.raises(ValueError, match="non-negative"):
        index.get([-1])
    with pytest.raises(ValueError, match="non-negative"):
        index.remove([-1])
    with pytest.raises(ValueError, match="same length"):
        index.insert([1, 2, 3], [0, 1])
    with pytest.raises(ValueError, match="one-dimensional"):
        index.get([[1, 2]])
    with pytest.raises(ValueError, match="capacity"):
        KeyIndex(-1)
    assert len(index) == 0


def test_accepts_other_integer_arrays() -> None:
    index = KeyIndex()
    index.insert(np.array([1, 2], np.uint32), np.array([3, 4], np.int8))
    np.testing.assert_array_equal(index.get(np.array([2, 1, 0], np.uint64)), [4, 3, -1])


def test_warm_up() -> None:
    warm_up()
