"""Calls as columns of numpy arrays, before they become a polars frame."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

__all__ = ["Calls"]


@dataclass(frozen=True)
class Calls:
    """A batch of calls, one array per attribute, all of the same length.

    Outcome columns (``disposition``, ``ring_s``, ``duration_s``) are filled
    by :meth:`with_outcomes`; until then they are empty arrays.
    """

    caller: np.ndarray  # int64 codes
    callee: np.ndarray
    start_ms: np.ndarray  # int64 UTC epoch ms
    source: np.ndarray  # int8 index into categories.SOURCES
    campaign: np.ndarray  # int32, -1 when the caller is not a campaign
    outcome: np.ndarray  # int32 outcome id (see outcomes.OutcomeTable)
    callback_rate: np.ndarray  # float64 chance a missed call is returned
    callback_outcome: np.ndarray  # int8 outcome of such a returned call
    disposition: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int8))
    ring_s: np.ndarray = field(default_factory=lambda: np.empty(0))
    duration_s: np.ndarray = field(default_factory=lambda: np.empty(0))

    def __len__(self) -> int:
        return int(self.caller.size)

    def with_outcomes(
        self, disposition: np.ndarray, ring_s: np.ndarray, duration_s: np.ndarray
    ) -> Calls:
        """The same calls with how they ended."""
        return Calls(
            self.caller,
            self.callee,
            self.start_ms,
            self.source,
            self.campaign,
            self.outcome,
            self.callback_rate,
            self.callback_outcome,
            disposition,
            ring_s,
            duration_s,
        )

    def take(self, index: np.ndarray) -> Calls:
        """The rows at ``index`` (an integer or boolean array)."""
        return Calls(*(getattr(self, f.name)[index] for f in fields(self)))

    @staticmethod
    def concat(parts: list[Calls]) -> Calls:
        """All rows of ``parts``, in order (all with outcomes)."""
        return Calls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Calls)))

    @staticmethod
    def empty() -> Calls:
        """No calls, with outcome columns."""
        return Calls(
            np.empty(0, np.int64),
            np.empty(0, np.int64),
            np.empty(0, np.int64),
            np.empty(0, np.int8),
            np.empty(0, np.int32),
            np.empty(0, np.int32),
            np.empty(0),
            np.empty(0, np.int8),
            np.empty(0, np.int8),
            np.empty(0),
            np.empty(0),
        )
