"""CallerState: watermark and grace, out-of-order and duplicate calls, bytes, expiry."""

from __future__ import annotations

import numpy as np
import pytest

from features.batch import callee_keys
from features.config import FeatureConfig
from features.reference.state import CallerState, UpdateStats
from tests.unit.test_features_support import T0, Call, batch_of, streamed

A, B = "+8613800001000", "+8613999990000"


@pytest.fixture()
def config() -> FeatureConfig:
    return FeatureConfig()


def feed(state: CallerState, calls: list[Call]) -> UpdateStats:
    return state.update(batch_of(calls, state.config))


def test_call_exactly_at_the_grace_is_accepted_one_ms_older_is_dropped(
    config: FeatureConfig,
) -> None:
    state = CallerState(config)
    feed(state, [Call(1000, A)])
    assert feed(state, [Call(1000 - 120, B)]) == UpdateStats(1, 1, 0)
    assert feed(state, [Call(1000 - 120.001, B)]) == UpdateStats(0, 0, 1)
    assert state.feature_dict()["short_call_volume"] == 2


def test_lateness_follows_arrival_order_inside_one_batch(config: FeatureConfig) -> None:
    state = CallerState(config)
    stats = feed(state, [Call(500, A), Call(100, B), Call(450, B), Call(600, A)])
    assert stats == UpdateStats(accepted=3, late_accepted=1, late_dropped=1)
    assert state.watermark_ms == T0 + 600_000


def test_out_of_order_within_grace_gives_the_in_order_features(config: FeatureConfig) -> None:
    calls = [Call(10 * i, f"+86138000010{i:02d}", duration_s=i) for i in range(12)]
    shuffled = CallerState(config)
    for index in (3, 0, 1, 7, 2, 5, 4, 11, 6, 9, 8, 10):
        feed(shuffled, [calls[index]])
    end = T0 + 300_000
    assert shuffled.feature_dict(end) == streamed(calls, end, config)


def test_reorder_overflow_degrades_gaps_only(config: FeatureConfig) -> None:
    small = FeatureConfig(reorder_capacity=2)
    calls = [Call(i, f"+86138000010{i:02d}") for i in range(6)]
    state = CallerState(small)
    feed(state, calls[1:])  # calls 1-4 chained early: the buffer holds 2
    feed(state, [calls[0]])  # late but within grace: before the chained ones
    features = state.feature_dict(T0 + 300_000)
    assert features["short_call_volume"] == 6
    assert features["short_distinct_callees"] == 6
    assert features["short_gap_mean_s"] == 1.0  # the five in-order gaps remain
    assert features["short_sequential_score"] == 1.0


def test_duplicates_are_counted_twice_dedup_is_the_agents_job(config: FeatureConfig) -> None:
    state = CallerState(config)
    feed(state, [Call(0, A), Call(0, A)])
    features = state.feature_dict(T0 + 300_000)
    assert features["short_call_volume"] == 2
    assert features["short_distinct_callees"] == 1
    assert features["short_gap_mean_s"] == 0.0


def test_late_calls_land_in_a_closed_bucket_until_the_grace_passes(config: FeatureConfig) -> None:
    state = CallerState(config)
    feed(state, [Call(290, A), Call(310, B)])  # watermark in the second bucket
    feed(state, [Call(299, B)])  # 11 s late, first bucket
    assert state.feature_dict(T0 + 300_000)["short_call_volume"] == 2


def test_window_older_than_the_ring_is_refused(config: FeatureConfig) -> None:
    state = CallerState(config)
    feed(state, [Call(0, A), Call(3600, B)])
    with pytest.raises(ValueError, match="older than the ring"):
        state.features(T0 + 300_000)


def test_bucket_reuse_expires_old_calls(config: FeatureConfig) -> None:
    state = CallerState(config)
    feed(state, [Call(0, A)])
    feed(state, [Call(25 * 3600, B)])  # a day later: both rings turned over
    features = state.feature_dict()
    assert features["short_call_volume"] == 1
    assert features["long_call_volume"] == 1


def test_expire_reports_an_empty_state(config: FeatureConfig) -> None:
    state = CallerState(config)
    feed(state, [Call(0, A)])
    assert not state.expire(T0 + 3600_000)
    assert state.feature_dict()["short_call_volume"] == 0  # the short bucket is gone
    assert state.expire(T0 + 2 * 86_400_000)


def test_complaints_count_by_report_time(config: FeatureConfig) -> None:
    state = CallerState(config)
    feed(state, [Call(0, A)])
    landed = state.note_complaints(np.array([T0 + 60_000, T0 + 120_000, T0 - 86_400_000 * 3]))
    assert landed == 2
    features = state.feature_dict(T0 + 300_000)
    assert features["short_complaints"] == 2
    assert features["long_complaints"] == 2


def test_reciprocity_from_inbound_notes(config: FeatureConfig) -> None:
    state = CallerState(config)
    feed(state, [Call(0, A), Call(10, B), Call(20, "+8613700000000"), Call(30, "+8613600000000")])
    state.note_inbound(callee_keys([A, B]), np.array([T0 + 40_000, T0 + 50_000]))
    assert state.feature_dict()["short_reciprocity"] == 0.5
    # A call-back after a window's end does not count for that window ...
    assert state.feature_dict(T0 + 300_000)["short_reciprocity"] == 0.5
    state.note_inbound(callee_keys(["+8613700000000"]), np.array([T0 + 400_000]))
    assert state.feature_dict(T0 + 300_000)["short_reciprocity"] == 0.5
    assert state.feature_dict(T0 + 600_000)["short_reciprocity"] == 0.75
    # ... whether it waits in the inbox or, once the clock passed it, in the filter.
    state.note_inbound(callee_keys([]), np.array([], np.int64), frontier_ms=T0 + 500_000)
    assert state.feature_dict(T0 + 600_000)["short_reciprocity"] == 0.75
    # Two generations later the call-backs are forgotten: A, called again, did not call back.
    feed(state, [Call(3 * 86_400, A)])
    state.note_inbound(callee_keys(["+8613500000000"]), np.array([T0 + 3 * 86_400_000 + 1]),
                       frontier_ms=T0 + 3 * 86_400_000)
    assert state.feature_dict()["short_reciprocity"] == 0.0


def test_inbound_ratio_counts_the_numbers_that_called(config: FeatureConfig) -> None:
    state = CallerState(config)
    feed(state, [Call(0, A), Call(10, B)])
    assert state.feature_dict()["short_inbound_ratio"] == 0.0
    others = ["+8613700000000", "+8613600000000", "+8613500000000"]
    state.note_inbound(callee_keys([A, *others, A]), T0 + np.arange(40_000, 90_000, 10_000))
    # Four numbers (A twice) called, two were called: about 2 (the filter's estimate,
    # within a few per cent), while they wait in the inbox ...
    waiting = state.feature_dict()["short_inbound_ratio"]
    assert waiting == pytest.approx(2.0, rel=0.02)
    assert state.feature_dict(T0 + 60_000)["short_inbound_ratio"] == pytest.approx(1.0, rel=0.02)
    # ... and exactly the same once they are in the filter.
    state.note_inbound(callee_keys([]), np.array([], np.int64), frontier_ms=T0 + 500_000)
    assert state.feature_dict()["short_inbound_ratio"] == waiting
    # A number already in the filter that calls again adds nothing.
    state.note_inbound(callee_keys([A]), np.array([T0 + 550_000]))
    assert state.feature_dict(T0 + 600_000)["long_inbound_ratio"] == pytest.approx(2.0, rel=0.02)
    # Two generations later the numbers are forgotten.
    feed(state, [Call(3 * 86_400, A)])
    state.note_inbound(callee_keys([]), np.array([], np.int64), frontier_ms=T0 + 3 * 86_400_000)
    assert state.feature_dict()["short_inbound_ratio"] == 0.0


def test_bytes_round_trip(config: FeatureConfig) -> None:
    rng = np.random.default_rng(7)
    state = CallerState(config)
    for start in range(0, 30_000, 500):
        offsets = np.sort(rng.uniform(start, start + 500, 20))
        calls = [
            Call(
                float(offset),
                f"+86138{rng.integers(0, 10**8):08d}",
                "ANSWERED" if rng.random() < 0.5 else "NO_ANSWER",
                duration_s=float(rng.exponential(20)),
                ring_s=float(rng.uniform(0, 5)),
            )
            for offset in offsets
        ]
        feed(state, calls)
    state.note_complaints(np.array([state.watermark_ms - 1000]))
    state.note_inbound(callee_keys([A]), np.array([state.watermark_ms]))
    data = state.to_bytes()
    copy = CallerState.from_bytes(data, config)
    assert copy.to_bytes() == data
    np.testing.assert_array_equal(copy.features(), state.features())
    feed(copy, [Call(30_001, A)])
    feed(state, [Call(30_001, A)])
    np.testing.assert_array_equal(copy.features(), state.features())


def test_bytes_of_an_empty_state(config: FeatureConfig) -> None:
    state = CallerState(config)
    assert len(state.to_bytes()) < 32
    assert CallerState.from_bytes(state.to_bytes(), config).to_bytes() == state.to_bytes()


def test_bytes_from_another_config_are_refused(config: FeatureConfig) -> None:
    state = CallerState(config)
    feed(state, [Call(0, A)])
    with pytest.raises(ValueError):
        CallerState.from_bytes(state.to_bytes(), FeatureConfig(kmv_k=32, inbound_bloom_bits=1024))
