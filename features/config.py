"""Settings of the feature core: windows, thresholds and sketch sizes.

One frozen value, validated when built, shared by the streaming engines
(:mod:`features.block`, and :mod:`features.reference` it is tested against)
and the offline path (:mod:`features.offline`), so
both compute the same thing. Windows hop: a window of ``window_s`` is made of
``window_s / hop_s`` buckets of ``hop_s`` seconds, aligned to the Unix epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["HELD_COMPLAINTS", "FeatureConfig", "WindowName", "WindowSpec"]

WindowName = Literal["short", "long"]

# Distinct future short buckets of complaints a caller holds; later ones join the last.
# Fixed, not a setting: both engines' stored state is laid out with it.
HELD_COMPLAINTS = 4

# A week in seconds: larger windows would push the integer gap statistics
# (squared milliseconds) towards int64 overflow and are not what the
# features are for.
_MAX_WINDOW_S = 7 * 86_400


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """One hopping window: its length, its hop and how many buckets the ring keeps."""

    name: WindowName
    window_s: int
    hop_s: int
    slots: int

    @property
    def hop_ms(self) -> int:
        """Bucket length in milliseconds."""
        return self.hop_s * 1000

    @property
    def buckets_per_window(self) -> int:
        """How many buckets one window spans."""
        return self.window_s // self.hop_s


@dataclass(frozen=True, slots=True)
class FeatureConfig:
    """Every knob of the feature core; all durations in seconds.

    ``grace_s``: a CDR older than its caller's watermark (latest start time
    seen) minus ``grace_s`` is dropped and counted. ``reorder_capacity``:
    how many recent calls per caller are held back to put the gap and
    sequential-dialling statistics in event-time order (see
    :mod:`features.reference.state`). ``kmv_k`` and ``segment_bins`` size the sketches
    (see :mod:`features.sketch` for their errors). ``inbound_pending``: how
    many calls to a number are held, with their times, until the event clock
    has passed them, before they join its inbound filter (see
    :meth:`features.reference.state.CallerState.note_inbound`).
    """

    short_window_s: int = 600
    short_hop_s: int = 300
    long_window_s: int = 86_400
    long_hop_s: int = 21_600
    short_call_s: float = 10.0
    one_ring_s: float = 3.0
    night_start_hour: int = 22
    night_end_hour: int = 7
    timezone: str = "Asia/Shanghai"
    grace_s: int = 120
    sequential_max_gap: int = 100
    reorder_capacity: int = 16
    kmv_k: int = 16
    segment_bins: int = 16
    inbound_bloom_bits: int = 512
    inbound_generation_s: int = 86_400
    inbound_pending: int = 8
    utc_offset_ms: int = field(init=False, repr=False, compare=False)
    _window_specs: tuple[WindowSpec, WindowSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check_windows()
        self._check_thresholds()
        self._check_sketches()
        object.__setattr__(self, "utc_offset_ms", _fixed_offset_ms(self.timezone))
        specs = (self.window("short"), self.window("long"))
        object.__setattr__(self, "_window_specs", specs)

    def _check_windows(self) -> None:
        for prefix in ("short", "long"):
            window_s = getattr(self, f"{prefix}_window_s")
            hop_s = getattr(self, f"{prefix}_hop_s")
            _require(
                isinstance(hop_s, int) and hop_s > 0,
                f"{prefix}_hop_s",
                f"must be a positive whole number of seconds, got {hop_s!r}",
            )
            _require(
                isinstance(window_s, int) and 0 < window_s <= _MAX_WINDOW_S,
                f"{prefix}_window_s",
                f"must be whole seconds between 1 and {_MAX_WINDOW_S}, got {window_s!r}",
            )
            _require(
                window_s % hop_s == 0,
                f"{prefix}_window_s",
                f"must be a multiple of {prefix}_hop_s ({hop_s}), got {window_s}",
            )
        _require(
            self.long_hop_s % self.short_hop_s == 0,
            "long_hop_s",
            f"must be a multiple of short_hop_s ({self.short_hop_s}): a long bucket is a run "
            f"of short ones offline, got {self.long_hop_s}",
        )
        _require(
            isinstance(self.grace_s, int) and 0 <= self.grace_s <= self.long_window_s,
            "grace_s",
            f"must be whole seconds between 0 and long_window_s, got {self.grace_s!r}",
        )

    def _check_thresholds(self) -> None:
        _require(self.short_call_s > 0, "short_call_s", f"must be > 0, got {self.short_call_s}")
        _require(self.one_ring_s > 0, "one_ring_s", f"must be > 0, got {self.one_ring_s}")
        for name in ("night_start_hour", "night_end_hour"):
            hour = getattr(self, name)
            _require(0 <= hour <= 23, name, f"must be an hour 0-23, got {hour}")
        _require(
            self.night_start_hour != self.night_end_hour,
            "night_end_hour",
            "must differ from night_start_hour (the night would be empty)",
        )
        _require(
            0 < self.sequential_max_gap < 10_000,
            "sequential_max_gap",
            f"must be between 1 and 9999 (numbers within a segment), got {self.sequential_max_gap}",
        )

    def _check_sketches(self) -> None:
        _require(1 <= self.reorder_capacity <= 255, "reorder_capacity", "must be 1-255")
        _require(4 <= self.kmv_k <= 255, "kmv_k", f"must be 4-255, got {self.kmv_k}")
        _require(
            2 <= self.segment_bins <= 256,
            "segment_bins",
            f"must be 2-256, got {self.segment_bins}",
        )
        bits = self.inbound_bloom_bits
        _require(
            bits >= 64 and bits % 64 == 0 and bits <= 65_536,
            "inbound_bloom_bits",
            f"must be a multiple of 64 between 64 and 65536, got {bits}",
        )
        _require(self.inbound_generation_s > 0, "inbound_generation_s", "must be > 0")
        _require(0 <= self.inbound_pending <= 127, "inbound_pending", "must be 0-127")

    def inbound_generation(self, end_ms: Any) -> Any:
        """The inbound generation of a window ending at ``end_ms`` (int or array).

        A call-back counts for that window if it was made in this generation
        or the one before, and before ``end_ms`` (every engine and the offline
        path alike).
        """
        return (end_ms - 1) // (self.inbound_generation_s * 1000)

    def window(self, name: WindowName) -> WindowSpec:
        """The short or the long window, with the ring size that covers the grace."""
        if name == "short":
            window_s, hop_s = self.short_window_s, self.short_hop_s
        elif name == "long":
            window_s, hop_s = self.long_window_s, self.long_hop_s
        else:
            raise ValueError(f"window must be 'short' or 'long', got {name!r}")
        # The window ending at E is final once the watermark passes E + grace;
        # until then its buckets and those the grace reaches must all be held.
        # One hop more: the worker reads it when its partition's watermark
        # passes E + grace (streams.stages.event_clock), and one message may carry a
        # caller's calls up to a hop past that before the window is read.
        slots = window_s // hop_s + math.ceil(self.grace_s / hop_s) + 1
        return WindowSpec(name, window_s, hop_s, slots)

    @property
    def windows(self) -> tuple[WindowSpec, WindowSpec]:
        """Both windows, short first."""
        return self._window_specs


def _require(condition: bool, name: str, message: str) -> None:
    if not condition:
        raise ValueError(f"FeatureConfig.{name}: {message}")


def _fixed_offset_ms(timezone: str) -> int:
    """The zone's UTC offset, which must not change over the year (no DST)."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"FeatureConfig.timezone: unknown time zone {timezone!r}") from None
    winter = datetime(2024, 1, 15, tzinfo=UTC).astimezone(zone).utcoffset()
    summer = datetime(2024, 7, 15, tzinfo=UTC).astimezone(zone).utcoffset()
    if winter is None or winter != summer:
        raise ValueError(
            f"FeatureConfig.timezone: {timezone!r} observes daylight saving; night hours "
            "need a zone with a fixed offset (e.g. Asia/Shanghai)"
        )
    return int(winter.total_seconds() * 1000)
