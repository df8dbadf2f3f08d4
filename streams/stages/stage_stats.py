"""What a feature stage did with one message: counts the worker sums into its metrics."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StageStats"]


@dataclass(slots=True)
class StageStats:
    """Counts for one message (summed into the worker's metrics)."""

    calls: int = 0
    accepted: int = 0
    duplicates: int = 0
    replayed: int = 0
    late_accepted: int = 0
    late_dropped: int = 0
    complaints: int = 0
    inbound: int = 0
    caller_writes: int = 0  # callers written back, summed over messages (not distinct)
    emitted: int = 0
    unemitted: int = 0  # closed-bucket rows whose window the ring no longer held
    expired: int = 0  # callers deleted as idle (not per message: the worker's expiry)
    loaded: int = 0  # callers loaded from the table's bytes into the block (block engine)
    evicted: int = 0  # callers moved from the block to the table's bytes (the worker's expiry)

    def add(self, other: StageStats) -> None:
        """Accumulate ``other`` into this one."""
        for name in self.__slots__:  # type: ignore[attr-defined]
            setattr(self, name, getattr(self, name) + getattr(other, name))
