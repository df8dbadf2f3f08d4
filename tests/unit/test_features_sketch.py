"""Sketches and aggregates: documented errors, merge laws, scalar/vector twins, config."""

from __future__ import annotations

import numpy as np
import pytest

from contracts.numbers import segment_of
from features.aggregate import (
    Aggregates,
    _pair_is_sequential,
    aggregate_calls,
    combine,
    is_sequential,
    merge_row,
)
from features.batch import CallBatch, callee_keys, key_hash32, segment_keys
from features.config import FeatureConfig
from features.sketch import (
    EMPTY_HASH,
    bloom_add,
    bloom_cardinality,
    filter_half,
    inbound_numbers,
    kmv_distinct,
    kmv_union,
    kmv_union_groups,
)
from features.vector import distinct_callees


@pytest.fixture()
def config() -> FeatureConfig:
    return FeatureConfig()


def sketch_of(keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    hashes = key_hash32(keys.astype(np.uint64))
    return kmv_union_groups(
        np.zeros(len(hashes), np.intp), hashes, np.ones(len(hashes), np.int64), 1, k
    )


@pytest.mark.parametrize("distinct", [1, 5, 16])
def test_kmv_is_exact_up_to_k(distinct: int) -> None:
    keys = np.repeat(8613800000000 + np.arange(distinct), 3)
    hashes, counts = sketch_of(keys, 16)
    assert kmv_distinct(hashes, np.array([len(keys)]))[0] == distinct
    assert set(counts[0][counts[0] > 0].tolist()) == {3}


@pytest.mark.parametrize(("k", "distinct"), [(16, 200), (16, 5000), (32, 5000)])
def test_kmv_relative_error_matches_the_documented_bound(k: int, distinct: int) -> None:
    rng = np.random.default_rng(k + distinct)
    errors = []
    for trial in range(200):
        keys = 8613000000000 + rng.choice(10**9, distinct, replace=False) + trial
        hashes, _ = sketch_of(keys, k)
        estimate = kmv_distinct(hashes, np.array([10**9]))[0]
        errors.append(estimate / distinct - 1)
    rse = float(np.sqrt(np.mean(np.square(errors))))
    assert rse < 1.25 / np.sqrt(k - 2)  # documented: about 1/sqrt(k - 2)
    assert abs(float(np.mean(errors))) < 0.1  # no strong bias


def test_kmv_union_is_order_free_and_counts_stay_exact() -> None:
    rng = np.random.default_rng(3)
    keys = 8613800000000 + rng.integers(0, 40, 300)
    whole_hashes, whole_counts = sketch_of(keys, 16)
    hashes, counts = sketch_of(keys[:100], 16)
    for part in (keys[200:], keys[100:200]):
        part_hashes, part_counts = sketch_of(part, 16)
        hashes, counts = kmv_union(hashes[0], counts[0], part_hashes[0], part_counts[0], 16)
        hashes, counts = hashes[None], counts[None]
    np.testing.assert_array_equal(hashes, whole_hashes)
    np.testing.assert_array_equal(counts, whole_counts)


def test_segment_keys_match_segment_of() -> None:
    numbers = [
        "+8613800138000",
        "+861012345678",
        "+8675512345678",
        "95588",
        "12345",
        "+14155550100",
    ]
    keys = segment_keys(callee_keys(numbers))
    for number, key in zip(numbers, keys.tolist(), strict=True):
        expected = segment_of(number)
        if number.startswith("+86"):
            expected = "86" + expected
        elif number.startswith("+"):
            expected = number[1:-4]
        assert str(key) == expected, number


def test_scalar_and_vector_sequential_tests_agree(config: FeatureConfig) -> None:
    rng = np.random.default_rng(5)
    previous = np.concatenate(
        [8613800000000 + rng.integers(0, 30_000, 500), rng.integers(95000, 95600, 50)]
    )
    following = previous + rng.integers(-150, 150, len(previous))
    vector = is_sequential(previous, following, config)
    scalar = [
        _pair_is_sequential(int(a), int(b), config)
        for a, b in zip(previous, following, strict=True)
    ]
    assert vector.tolist() == scalar
    assert 0 < vector.sum() < len(vector)


def random_calls(rng: np.random.Generator, n: int, config: FeatureConfig) -> CallBatch:
    start = np.sort(1_709_251_200_000 + rng.integers(0, 3_600_000, n))
    callee = 8613800000000 + rng.integers(0, 400, n)
    order = np.lexsort((callee, start))
    answered = rng.random(n) < 0.5
    return CallBatch.from_arrays(
        config,
        start_ms=start[order],
        callee=callee[order],
        duration_s=np.where(answered, rng.exponential(20, n), 0),
        answered=answered,
        ring_s=rng.uniform(0, 6, n),
    )


def test_merge_row_and_combine_agree_with_one_pass(config: FeatureConfig) -> None:
    rng = np.random.default_rng(11)
    calls = random_calls(rng, 400, config)
    whole = aggregate_calls(calls, np.zeros(1, np.intp), config)
    cuts = np.array([0, 37, 38, 120, 300])
    parts = aggregate_calls(calls, cuts, config)
    combined = combine(parts, np.zeros(1, np.intp), config)
    folded = Aggregates.empty(1, config)
    for row in range(len(parts)):
        merge_row(folded, 0, parts, row, config)
    for result in (combined, folded):
        np.testing.assert_array_equal(result.counters, whole.counters)
        np.testing.assert_array_equal(result.kmv_hash, whole.kmv_hash)
        np.testing.assert_array_equal(result.kmv_count, whole.kmv_count)
        np.testing.assert_array_equal(result.segment_hist, whole.segment_hist)
    assert distinct_callees(whole)[0] == pytest.approx(400 * (1 - (399 / 400) ** 400), rel=0.9)


def test_empty_aggregates_have_no_sketch(config: FeatureConfig) -> None:
    empty = Aggregates.empty(2, config)
    assert (empty.kmv_hash == EMPTY_HASH).all()
    assert distinct_callees(empty).tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"short_window_s": 700}, "short_window_s"),
        ({"long_hop_s": 0}, "long_hop_s"),
        ({"long_hop_s": 21_700, "long_window_s": 86_800}, "long_hop_s"),
        ({"grace_s": -1}, "grace_s"),
        ({"night_start_hour": 24}, "night_start_hour"),
        ({"night_end_hour": 22}, "night_end_hour"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "Europe/Paris"}, "timezone"),
        ({"kmv_k": 2}, "kmv_k"),
        ({"inbound_bloom_bits": 100}, "inbound_bloom_bits"),
        ({"sequential_max_gap": 0}, "sequential_max_gap"),
    ],
)
def test_config_errors_name_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=f"FeatureConfig.{field}"):
        FeatureConfig(**changes)  # type: ignore[arg-type]


def test_config_defaults(config: FeatureConfig) -> None:
    short, long = config.windows
    assert (short.buckets_per_window, short.slots) == (2, 4)
    assert (long.buckets_per_window, long.slots) == (4, 6)
    assert config.utc_offset_ms == 8 * 3600_000


@pytest.mark.parametrize("numbers", [0, 1, 5, 20, 50, 100, 170])
def test_the_inbound_filter_estimates_its_numbers_within_a_few_per_cent(numbers: int) -> None:
    rng = np.random.default_rng(numbers)
    estimates = []
    for _ in range(50):
        words = np.zeros(8, np.uint64)  # 512 bits, one generation of the default filter
        hashes = key_hash32(rng.integers(10**10, 2 * 10**10, numbers).astype(np.uint64))
        bloom_add(words, hashes)
        bloom_add(words, hashes[: numbers // 2])  # a number calling twice counts once
        estimates.append(float(bloom_cardinality(words)))
    assert abs(np.mean(estimates) - numbers) <= max(0.05 * numbers, 0.01)
    assert bloom_cardinality(np.full((2, 8), np.iinfo(np.uint64).max, np.uint64)).tolist() == (
        pytest.approx([512 / 3 * np.log(512)] * 2)
    )


def test_inbound_numbers_are_the_same_whether_calls_wait_or_joined_the_filter() -> None:
    day = 86_400_000
    rng = np.random.default_rng(3)
    hashes = key_hash32(rng.integers(10**10, 2 * 10**10, 12).astype(np.uint64))
    times = np.array([9 * day + 10 * i for i in range(6)] + [10 * day + 10 * i for i in range(6)])
    # Every call in the filter (generation 10 current, 9 before it) ...
    merged = np.zeros((1, 16), np.uint64)
    bloom_add(merged[0, :8], hashes[6:])
    bloom_add(merged[0, 8:], hashes[:6])
    none = np.zeros((1, 0), bool)
    everything = inbound_numbers(merged, np.array([10]), np.array([10]),
                                 np.zeros((1, 0), np.int64), np.zeros((1, 0), np.uint32),
                                 none, day)
    # ... or the last four still waiting, one of them calling twice:
    partly = np.zeros((1, 16), np.uint64)
    bloom_add(partly[0, :8], hashes[6:8])
    bloom_add(partly[0, 8:], hashes[:6])
    waiting_hashes = np.r_[hashes[8:], hashes[8]][None, :]
    waiting_times = np.r_[times[8:], times[8] + 1][None, :]
    live = np.ones(waiting_hashes.shape, bool)
    counted = inbound_numbers(partly, np.array([10]), np.array([10]), waiting_times,
                              waiting_hashes, live, day)
    assert counted.tolist() == everything.tolist()
    assert everything[0] == pytest.approx(12, rel=0.02)
    # Nothing in the filter yet (no generation), all twelve waiting: the same count.
    alone = inbound_numbers(np.zeros((1, 16), np.uint64), np.array([np.iinfo(np.int64).min]),
                            np.array([10]),
                            times[None, :], hashes[None, :], np.ones((1, 12), bool), day)
    assert alone.tolist() == everything.tolist()
    # Two generations on, none of them counts; calls that are not live do not either.
    assert inbound_numbers(merged, np.array([10]), np.array([12]), waiting_times,
                           waiting_hashes, live, day).tolist() == [0.0]
    assert inbound_numbers(partly, np.array([10]), np.array([10]), waiting_times,
                           waiting_hashes, ~live, day)[0] < counted[0]


def test_a_filters_halves_hold_its_generation_and_the_one_before_only() -> None:
    never = np.iinfo(np.int64).min  # the engines' mark of a filter that never held a call
    current = np.array([7, 7, 7, 7, never, never])
    wanted = np.array([8, 7, 6, 5, 0, never + 1])
    half, held = filter_half(current, wanted)
    assert held.tolist() == [False, True, True, False, False, False]
    assert half.tolist() == [0, 0, 1, 0, 0, 0]
