"""What the reference engine's feature table stores per caller: state, dedup memory, bookkeeping.

One value per caller, so one changelog record carries the features' state
*and* what makes replays harmless; they cannot drift apart after a crash.

Exactly-once application, in two layers:

- ``last_offset``: the ``cdr.by_caller`` offset of the last message applied
  to this caller. A worker that restarts (or takes over a partition) from
  an older committed offset skips what the state already holds: exact.
- ``recent``: fingerprints of the last :data:`~features.fingerprints.RECENT_IDS`
  ``cdr_id`` values, which catch a carrier's resends (see
  :mod:`features.fingerprints`).

The block engine keeps the same bookkeeping in its own columns
(:mod:`features.block.layout`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from features.config import FeatureConfig
from features.fingerprints import RECENT_IDS
from features.reference.state import CallerState

__all__ = ["CallerRecord"]

_HEADER = struct.Struct("<qqB")  # last_offset, last_emitted_ms, number of fingerprints


@dataclass(slots=True)
class CallerRecord:
    """One caller's table value (see the module docstring)."""

    state: CallerState
    last_offset: int = -1
    last_emitted_ms: int = -1
    recent: NDArray[np.uint32] = field(default_factory=lambda: np.zeros(0, np.uint32))

    @classmethod
    def new(cls, config: FeatureConfig) -> CallerRecord:
        """An empty record for a caller seen for the first time."""
        return cls(CallerState(config))

    def unseen(self, ids: NDArray[np.uint32]) -> NDArray[np.bool_]:
        """Mask of the ids neither remembered nor repeated earlier in ``ids``."""
        fresh = ~np.isin(ids, self.recent)
        _, first = np.unique(ids, return_index=True)
        once = np.zeros(len(ids), bool)
        once[first] = True
        return fresh & once

    def remember(self, ids: NDArray[np.uint32]) -> None:
        """Add accepted ids; keep the newest :data:`RECENT_IDS`."""
        self.recent = np.concatenate([self.recent, ids])[-RECENT_IDS:]

    def to_bytes(self) -> bytes:
        """Header, fingerprints, then the feature state."""
        header = _HEADER.pack(self.last_offset, self.last_emitted_ms, len(self.recent))
        return header + self.recent.astype("<u4").tobytes() + self.state.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes, config: FeatureConfig) -> CallerRecord:
        """Inverse of :meth:`to_bytes`."""
        last_offset, last_emitted_ms, count = _HEADER.unpack_from(data)
        start = _HEADER.size
        recent = np.frombuffer(data, "<u4", count, start).astype(np.uint32)
        state = CallerState.from_bytes(data[start + 4 * count :], config)
        return cls(state, last_offset, last_emitted_ms, recent)
