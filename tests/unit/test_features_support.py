"""Factories shared by the feature-core tests (holds no tests itself)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from features.batch import CallBatch, callee_keys
from features.config import FeatureConfig
from features.offline import compute_features
from features.reference.state import CallerState
from features.vector import WINDOW_FEATURE_NAMES

# 2024-03-01T00:00:00Z = 08:00 in Shanghai; a multiple of 6 h, so it starts
# a long bucket and a short one.
T0 = 1_709_251_200_000
CALLER = "+8613900000001"


@dataclass(frozen=True)
class Call:
    """One call of CALLER, at T0 + ``at_s`` seconds."""

    at_s: float
    callee: str
    disposition: str = "ANSWERED"
    duration_s: float = 0.0
    ring_s: float | None = None

    @property
    def start_ms(self) -> int:
        return T0 + round(self.at_s * 1000)


def batch_of(calls: list[Call], config: FeatureConfig) -> CallBatch:
    return CallBatch.from_arrays(
        config,
        start_ms=np.array([call.start_ms for call in calls], dtype=np.int64),
        callee=callee_keys(call.callee for call in calls),
        duration_s=np.array([call.duration_s for call in calls], dtype=float),
        answered=np.array([call.disposition == "ANSWERED" for call in calls]),
        ring_s=np.array([np.nan if c.ring_s is None else c.ring_s for c in calls], dtype=float),
    )


def frame_of(calls: list[Call], caller: str = CALLER) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "caller": [caller] * len(calls),
            "callee": [call.callee for call in calls],
            "start_ms": [call.start_ms for call in calls],
            "duration_s": [call.duration_s for call in calls],
            "disposition": [call.disposition for call in calls],
            "ring_s": [call.ring_s for call in calls],
        },
        schema={
            "caller": pl.String,
            "callee": pl.String,
            "start_ms": pl.Int64,
            "duration_s": pl.Float64,
            "disposition": pl.String,
            "ring_s": pl.Float64,
        },
    )


def streamed(calls: list[Call], end_ms: int, config: FeatureConfig) -> dict[str, float]:
    state = CallerState(config)
    state.update(batch_of(calls, config))
    return state.feature_dict(end_ms)


def offline(calls: list[Call], end_ms: int, config: FeatureConfig) -> dict[str, float]:
    result = compute_features(frame_of(calls), config, at=[end_ms])
    if result.is_empty():
        return dict.fromkeys(WINDOW_FEATURE_NAMES, 0.0)
    assert result.height == 1
    row = result.row(0, named=True)
    return {name: row[name] for name in WINDOW_FEATURE_NAMES}
