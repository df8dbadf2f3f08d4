"""Daily and weekly calling rhythms, as weights per local hour and per weekday.

Each daily profile averages 1 over 24 hours, so a caller with ``r`` calls a
day makes ``r / 24 * weight[hour]`` calls in an hour of a weekday of weight 1.
China keeps UTC+8 all year, so local time is a fixed offset.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DAILY", "LOCAL_OFFSET_MS", "WEEKLY", "hour_weight"]

LOCAL_OFFSET_MS = 8 * 3600 * 1000
_HOUR_MS = 3600 * 1000
_DAY_MS = 24 * _HOUR_MS
# 1970-01-01 was a Thursday: day 0 is weekday 3 (Monday = 0).
_EPOCH_WEEKDAY = 3


def _per_hour(weights: list[float]) -> np.ndarray:
    array = np.asarray(weights, dtype=np.float64)
    assert array.shape == (24,)
    return array / array.mean()


DAILY: dict[str, np.ndarray] = {
    # People: quiet nights, a morning peak, a lunch dip, an afternoon and evening plateau.
    "people": _per_hour(
        [
            0.15,
            0.08,
            0.05,
            0.04,
            0.05,
            0.12,
            0.35,
            0.8,
            1.3,
            1.7,
            1.8,
            1.6,
            1.2,
            1.3,
            1.6,
            1.7,
            1.7,
            1.6,
            1.4,
            1.4,
            1.3,
            1.1,
            0.7,
            0.35,
        ]
    ),
    # Call centres and offices: 9-12 and 13:30-18, lunch break.
    "office": _per_hour(
        [0, 0, 0, 0, 0, 0, 0, 0, 0.1, 1, 1, 1, 0.3, 0.7, 1, 1, 1, 1, 0.3, 0.05, 0, 0, 0, 0]
    ),
    # Long days, every day: agents, collectors, couriers, banks' outbound teams.
    "extended": _per_hour(
        [0, 0, 0, 0, 0, 0, 0, 0.2, 0.8, 1, 1, 1, 0.7, 0.8, 1, 1, 1, 1, 0.9, 0.8, 0.6, 0.3, 0, 0]
    ),
    # One-ring autodiallers: mostly at night, when a missed call is left unchecked.
    "night": _per_hour(
        [
            1.6,
            1.8,
            1.8,
            1.7,
            1.5,
            1.0,
            0.5,
            0.25,
            0.15,
            0.1,
            0.1,
            0.1,
            0.15,
            0.1,
            0.1,
            0.1,
            0.1,
            0.15,
            0.2,
            0.3,
            0.5,
            0.8,
            1.2,
            1.4,
        ]
    ),
    # Autodiallers that never stop: the same rate every hour.
    "flat": _per_hour([1.0] * 24),
    # Ride-hailing: commuting peaks, late evenings.
    "rides": _per_hour(
        [
            0.3,
            0.15,
            0.1,
            0.05,
            0.05,
            0.2,
            0.6,
            1.6,
            1.8,
            1.0,
            0.8,
            0.9,
            1.0,
            0.8,
            0.8,
            0.9,
            1.1,
            1.6,
            1.9,
            1.5,
            1.2,
            1.1,
            0.9,
            0.6,
        ]
    ),
}

WEEKLY: dict[str, np.ndarray] = {
    "people": np.array([1.0, 1.0, 1.0, 1.0, 1.05, 0.85, 0.8]),
    "weekdays": np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.35, 0.1]),
    "every_day": np.ones(7),
}


def hour_weight(daily: str, weekly: str, hour_start_ms: int) -> float:
    """The rate multiplier for the hour starting at ``hour_start_ms`` (UTC epoch ms)."""
    local_ms = hour_start_ms + LOCAL_OFFSET_MS
    local_hour = (local_ms // _HOUR_MS) % 24
    weekday = (local_ms // _DAY_MS + _EPOCH_WEEKDAY) % 7
    return float(DAILY[daily][local_hour] * WEEKLY[weekly][weekday])
