"""What the feature table stores per caller: state, dedup memory, bookkeeping.

One value per caller, so one changelog record carries the features' state
*and* what makes replays harmless; they cannot drift apart after a crash.

Exactly-once application, in two layers:

- ``last_offset``: the ``cdr.by_caller`` offset of the last message applied
  to this caller. A worker that restarts (or takes over a partition) from
  an older committed offset skips what the state already holds: exact.
- ``recent``: 32-bit fingerprints of the last :data:`RECENT_IDS` ``cdr_id``
  values, which catch a carrier's resends. A resend of a call that ended
  before the caller's watermark minus the grace is dropped as late anyway,
  so the memory only has to span about two graces of call starts: exact
  unless a caller places more than :data:`RECENT_IDS` calls in that time
  (240 s by default).
  Two distinct ids share a fingerprint with probability about
  ``RECENT_IDS / 2**32`` per call (about 1 in 130 million).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from features.config import FeatureConfig
from features.state import CallerState

__all__ = ["RECENT_IDS", "CallerRecord", "fingerprints"]

RECENT_IDS = 32
_HEADER = struct.Struct("<qqB")  # last_offset, last_emitted_ms, number of fingerprints


def fingerprints(cdr_ids: Sequence[str]) -> NDArray[np.uint32]:
    """32-bit fingerprints of ``cdr_id`` values (CRC-32: stable across processes)."""
    return np.fromiter((zlib.crc32(cdr_id.encode()) for cdr_id in cdr_ids), np.uint32, len(cdr_ids))


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
