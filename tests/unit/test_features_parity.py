"""One feature code, two paths: the stream (CallerState) and offline (polars) agree."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from features.batch import CallBatch, callee_keys, split_by_caller
from features.config import FeatureConfig
from features.offline import compute_features
from features.reference.state import CallerState
from features.vector import WINDOW_FEATURE_NAMES

T0 = 1_709_251_200_000
HOURS = 8
SEQUENTIAL, ONE_RING, NORMAL_1, NORMAL_2, FRIEND = (
    "+8613100000001",
    "+8613100000002",
    "+8613100000003",
    "+8613100000004",
    "+8613100000005",
)


def synthetic_cdrs(seed: int) -> pl.DataFrame:
    """A sequential dialler, a one-ring caller, two normal callers and a friend who calls back."""
    rng = np.random.default_rng(seed)
    span_ms = HOURS * 3600_000
    parts = []

    def add(caller: str, n: int, callees: np.ndarray, answer_p: float, ring: np.ndarray) -> None:
        answered = rng.random(n) < answer_p
        parts.append(
            pl.DataFrame(
                {
                    "caller": [caller] * n,
                    "callee": ["+" + str(c) for c in callees],
                    "start_ms": T0 + np.sort(rng.integers(0, span_ms, n)),
                    "duration_s": np.where(answered, rng.exponential(40, n).round(3), 0.0),
                    "disposition": np.where(answered, "ANSWERED", "NO_ANSWER"),
                    "ring_s": np.where(answered, np.nan, ring),
                }
            )
        )

    add(SEQUENTIAL, 1500, 8613700000000 + np.arange(1500) * 3, 0.2, rng.uniform(3, 20, 1500))
    add(ONE_RING, 800, 8613000000000 + rng.integers(0, 10**9, 800), 0.01, rng.uniform(0, 2, 800))
    normal_contacts = np.array([int(n[1:]) for n in (FRIEND, NORMAL_2)] + [8613912345678])
    add(NORMAL_1, 60, rng.choice(normal_contacts, 60), 0.8, rng.uniform(2, 25, 60))
    add(NORMAL_2, 40, 8613800000000 + rng.integers(0, 12, 40), 0.7, rng.uniform(2, 25, 40))
    add(FRIEND, 30, np.full(30, int(NORMAL_1[1:])), 0.9, rng.uniform(2, 25, 30))
    frame = pl.concat(parts)
    return frame.with_columns(pl.col("ring_s").fill_nan(None))


def stream(frame: pl.DataFrame, ends: list[int], config: FeatureConfig, seed: int) -> pl.DataFrame:
    """Feed the stream in arrival order (up to 100 s late), evaluating each window end."""
    rng = np.random.default_rng(seed)
    start = frame["start_ms"].to_numpy()
    arrival = start + rng.integers(0, 100_000, len(start))
    calls = CallBatch.from_arrays(
        config,
        start_ms=start,
        callee=callee_keys(frame["callee"]),
        duration_s=frame["duration_s"].to_numpy(),
        answered=(frame["disposition"] == "ANSWERED").to_numpy(),
        ring_s=frame["ring_s"].fill_null(np.nan).to_numpy(),
    )
    callers, callees = frame["caller"].to_numpy(), frame["callee"].to_numpy()
    caller_keys = callee_keys(frame["caller"])
    states: dict[str, CallerState] = {}
    rows = []
    previous_end = 0
    for end in ends:
        # Everything that starts before this end, in arrival order, in batches of ~50.
        chunk = np.flatnonzero((start >= previous_end) & (start < end))
        chunk = chunk[np.argsort(arrival[chunk], kind="stable")]
        previous_end = end
        for batch_rows in np.array_split(chunk, max(1, len(chunk) // 50)):
            for caller, calls_of_caller in split_by_caller(
                callers[batch_rows], calls.take(batch_rows)
            ):
                states.setdefault(caller, CallerState(config)).update(calls_of_caller)
            for row in batch_rows.tolist():  # the agent notes each call at its callee
                states.setdefault(callees[row], CallerState(config)).note_inbound(
                    caller_keys[row : row + 1], start[row : row + 1]
                )
        for caller, state in states.items():
            if state.watermark_ms > end - config.long_window_s * 1000:
                rows.append({"caller": caller, "end_ms": end} | state.feature_dict(end))
    return pl.DataFrame(rows)


@pytest.mark.parametrize("seed", [1, 2])
def test_stream_and_offline_agree(seed: int) -> None:
    config = FeatureConfig()
    frame = synthetic_cdrs(seed)
    ends = list(range(T0 + 3600_000, T0 + HOURS * 3600_000 + 1, 1800_000))
    offline = compute_features(frame, config, at=ends)
    streamed = stream(frame, ends, config, seed)
    joined = offline.join(streamed, on=["caller", "end_ms"], how="inner", suffix="_stream")
    assert joined.height == offline.height > 0
    for name in WINDOW_FEATURE_NAMES:
        expected, got = joined[name].to_numpy(), joined[f"{name}_stream"].to_numpy()
        if name.endswith("reciprocity"):
            # Bloom filter false positives only ever add call-backs: <= 8.7 % at 100 numbers.
            assert (got >= expected - 1e-12).all(), name
            assert np.abs(got - expected).max() <= 0.1, name
        elif name.endswith("inbound_ratio"):
            # The stream estimates the numbers from its filter's bits (features.sketch):
            # 1.003 for one number, within a few per cent up to about 170.
            np.testing.assert_allclose(got, expected, rtol=0.05, atol=1e-12, err_msg=name)
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, err_msg=name)
    # The shapes show: the features separate the callers.
    last = offline.filter(pl.col("end_ms") == ends[-1]).sort("caller")
    by_caller = {row["caller"]: row for row in last.iter_rows(named=True)}
    assert by_caller[SEQUENTIAL]["long_sequential_score"] > 0.9
    assert by_caller[ONE_RING]["long_one_ring_ratio"] > 0.9
    assert by_caller[NORMAL_1]["long_reciprocity"] > 0
    assert by_caller[NORMAL_2]["long_repeat_callee_ratio"] > 0.5


def test_bucket_ends_give_one_row_per_active_short_bucket() -> None:
    config = FeatureConfig()
    frame = synthetic_cdrs(3).filter(pl.col("caller") == NORMAL_2)
    result = compute_features(frame, config)
    buckets = (frame["start_ms"] // 300_000).unique()
    assert result.height == len(buckets)
    starts = frame["start_ms"].to_numpy()
    for end, volume in zip(result["end_ms"], result["short_call_volume"], strict=True):
        assert volume == np.count_nonzero((starts >= end - 600_000) & (starts < end))
