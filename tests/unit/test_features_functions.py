"""Each feature on hand-computed examples, through both paths (stream and offline)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from contracts.cdr import cdr_from_mapping
from features.config import FeatureConfig
from features.vector import WINDOW_FEATURE_NAMES
from tests.unit.test_features_support import T0, Call, offline, streamed

Compute = Callable[[list[Call], int, FeatureConfig], dict[str, float]]
A = "+8613800001000"
A1 = "+8613800001001"
B = "+8613999990000"
SHORT_END = T0 + 600_000


@pytest.fixture(params=[streamed, offline], ids=["stream", "offline"])
def compute(request: pytest.FixtureRequest) -> Compute:
    return request.param


@pytest.fixture()
def config() -> FeatureConfig:
    return FeatureConfig()


def both_windows(features: dict[str, float], name: str) -> tuple[float, float]:
    return features[f"short_{name}"], features[f"long_{name}"]


def test_mixed_calls_hand_computed(compute: Compute, config: FeatureConfig) -> None:
    calls = [
        Call(0, A, "ANSWERED", duration_s=5.0),
        Call(60, A1, "ANSWERED", duration_s=40.0),
        Call(180, B, "NO_ANSWER", ring_s=2.0),
        Call(420, A, "NO_ANSWER", ring_s=8.0),
    ]
    features = compute(calls, SHORT_END, config)
    gap_mean = (60 + 120 + 240) / 3
    gap_std = math.sqrt((60**2 + 120**2 + 240**2) / 3 - gap_mean**2)
    expected = {
        "call_volume": 4,
        "answer_rate": 0.5,
        "short_call_ratio": 0.5,  # 5 s < 10 s; 40 s is not
        "one_ring_ratio": 0.25,  # 2 s ring; the 8 s ring is not one-ring
        "night_call_ratio": 0.0,  # 08:00-08:07 in Shanghai
        "mean_talk_s": 22.5,
        "distinct_callees": 3,
        "distinct_callee_ratio": 0.75,
        "repeat_callee_ratio": 1 / 3,  # A was called twice
        "distinct_segments": 16 * math.log(16 / 14),  # two segments, 16 counters
        "segment_entropy": -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)),
        "sequential_score": 1 / 3,  # A -> A+1 only
        "gap_mean_s": gap_mean,
        "gap_cv": gap_std / gap_mean,
        "complaints": 0,
        "reciprocity": 0,
    }
    for name, value in expected.items():
        assert both_windows(features, name) == pytest.approx((value, value)), name


def test_no_calls_gives_zeros(compute: Compute, config: FeatureConfig) -> None:
    assert compute([], SHORT_END, config) == dict.fromkeys(WINDOW_FEATURE_NAMES, 0.0)


def test_one_call(compute: Compute, config: FeatureConfig) -> None:
    features = compute([Call(30, A, "ANSWERED", duration_s=12.0)], SHORT_END, config)
    assert both_windows(features, "call_volume") == (1, 1)
    assert both_windows(features, "distinct_callee_ratio") == (1, 1)
    assert both_windows(features, "mean_talk_s") == (12, 12)
    assert both_windows(features, "short_call_ratio") == (0, 0)
    for name in ("gap_mean_s", "gap_cv", "sequential_score", "segment_entropy"):
        assert both_windows(features, name) == (0, 0), name


def test_all_unanswered(compute: Compute, config: FeatureConfig) -> None:
    calls = [Call(10 * i, f"+86138000010{i:02d}", "NO_ANSWER", ring_s=1.0) for i in range(5)]
    features = compute(calls, SHORT_END, config)
    assert both_windows(features, "answer_rate") == (0, 0)
    assert both_windows(features, "short_call_ratio") == (0, 0)
    assert both_windows(features, "mean_talk_s") == (0, 0)
    assert both_windows(features, "one_ring_ratio") == (1, 1)
    assert both_windows(features, "sequential_score") == (1, 1)
    assert both_windows(features, "gap_cv") == (0, 0)  # machine-regular: every 10 s


def test_unknown_or_zero_ring_is_not_one_ring(compute: Compute, config: FeatureConfig) -> None:
    calls = [Call(0, A, "FAILED", ring_s=None), Call(5, B, "BUSY", ring_s=0.0)]
    assert compute(calls, SHORT_END, config)["short_one_ring_ratio"] == 0


def test_redial_and_other_segment_are_not_sequential(
    compute: Compute, config: FeatureConfig
) -> None:
    # A -> A (redial), A -> B (other segment), B -> B+100 (at the threshold)
    calls = [Call(0, A), Call(10, A), Call(20, B), Call(30, "+8613999990100")]
    assert compute(calls, SHORT_END, config)["short_sequential_score"] == pytest.approx(1 / 3)


def test_window_crossing_local_midnight(compute: Compute, config: FeatureConfig) -> None:
    # 15:58Z and 16:03Z are 23:58 and 00:03 in Shanghai: both at night.
    before, after = 15 * 3600 + 58 * 60, 16 * 3600 + 3 * 60
    end = T0 + (16 * 3600 + 5 * 60) * 1000
    features = compute([Call(before, A), Call(after, B)], end, config)
    assert both_windows(features, "call_volume") == (2, 2)
    assert both_windows(features, "night_call_ratio") == (1, 1)
    assert both_windows(features, "gap_mean_s") == (300, 300)


def test_night_ends_at_seven_local(compute: Compute, config: FeatureConfig) -> None:
    # 22:59:59Z is 06:59:59 local (night), 23:00:00Z is 07:00 local (day).
    end = T0 + 23 * 3600_000 + 300_000
    calls = [Call(23 * 3600 - 1, A), Call(23 * 3600, B)]
    assert compute(calls, end, config)["short_night_call_ratio"] == 0.5


@pytest.mark.parametrize(
    ("text", "night"),
    [
        ("2024-03-01T08:00:00+08:00", 0.0),
        ("2024-03-01T00:00:00Z", 0.0),  # the same instant as above
        ("2024-03-01T02:00:00+02:00", 0.0),  # and again
        ("2024-02-29T23:30:00+08:00", 1.0),  # 15:30Z
        ("2024-02-29T15:30:00+00:00", 1.0),  # the same instant
    ],
)
def test_timestamps_with_offsets(
    compute: Compute, config: FeatureConfig, text: str, night: float
) -> None:
    cdr = cdr_from_mapping(
        {
            "cdr_id": "x",
            "caller": "13900000001",
            "callee": "13800001000",
            "start_time": text,
            "duration_s": 0,
            "disposition": "NO_ANSWER",
        }
    )
    call = Call((cdr.start_ms - T0) / 1000, cdr.callee, "NO_ANSWER")
    end = (cdr.start_ms // 300_000 + 1) * 300_000
    features = compute([call], end, config)
    assert features["short_call_volume"] == 1
    assert features["short_night_call_ratio"] == night


def test_short_window_boundaries(compute: Compute, config: FeatureConfig) -> None:
    calls = [
        Call(-600.001, A),  # just before the short window [T0 - 600 s, T0)
        Call(-600, A1),  # first instant inside
        Call(-0.001, B),  # last instant inside
        Call(0, B),  # at the end: the next window
    ]
    features = compute(calls, T0, config)
    assert features["short_call_volume"] == 2
    assert features["long_call_volume"] == 3  # the long window ending at T0 holds all but T0


def test_long_window_is_the_one_whose_last_bucket_holds_the_end(
    compute: Compute, config: FeatureConfig
) -> None:
    # End at T0 + 1 h: the long window is [T0 - 18 h, T0 + 6 h) cut at the end.
    calls = [Call(-18 * 3600 - 1, A), Call(-18 * 3600, A1), Call(3599, B)]
    features = compute(calls, T0 + 3600_000, config)
    assert features["long_call_volume"] == 2
    assert features["short_call_volume"] == 1
