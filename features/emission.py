"""Which callers are scored: the emission rule, one definition for the worker and training.

At each short bucket's end (in event time) the callers that called in the
bucket are candidates; :class:`EmissionPolicy` keeps those with a burst (at
least ``min_calls`` calls in the short window) or a steady activity (at
least ``min_long_calls`` in the long window). Both feature stages apply it
to the rows they emit (:mod:`streams.stages`), and training keeps exactly
the rows it selects (:func:`models.dataset.build_training_table`), so the
model is trained and judged on the rows the worker scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["EmissionPolicy"]


@dataclass(frozen=True, slots=True)
class EmissionPolicy:
    """Which candidates at a bucket's end go on to scoring (see the module doc).

    >>> EmissionPolicy().selects(np.array([5, 1, 1]), np.array([5, 30, 9])).tolist()
    [True, True, False]
    """

    min_calls: int = 5
    min_long_calls: int = 10

    def __post_init__(self) -> None:
        if self.min_calls < 1 or self.min_long_calls < 1:
            raise ValueError("min_calls and min_long_calls must be at least 1")

    def selects(
        self, short_calls: NDArray[np.integer], long_calls: NDArray[np.integer]
    ) -> NDArray[np.bool_]:
        """Candidates with a burst in the short window or enough calls in the long one."""
        short = np.asarray(short_calls) >= self.min_calls
        return np.asarray(short | (np.asarray(long_calls) >= self.min_long_calls), dtype=bool)
