"""Runs of equal values in sorted columns: the grouping primitive of the feature core.

``np.r_`` costs several microseconds a call; these helpers are what the hot
paths use instead.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["run_lengths", "run_starts"]


def run_starts(*columns: NDArray[np.generic]) -> NDArray[np.intp]:
    """Index of the first row of each run of equal rows (``columns`` sorted together).

    >>> run_starts(np.array([3, 3, 5, 7, 7])).tolist()
    [0, 2, 3]
    """
    size = len(columns[0])
    if size == 0:
        return np.empty(0, np.intp)
    changed = np.empty(size, dtype=bool)
    changed[0] = True
    np.not_equal(columns[0][1:], columns[0][:-1], out=changed[1:])
    for column in columns[1:]:
        changed[1:] |= column[1:] != column[:-1]
    return np.flatnonzero(changed)


def run_lengths(starts: NDArray[np.intp], size: int) -> NDArray[np.intp]:
    """Length of each run, given its start and the total number of rows."""
    ends = np.empty(len(starts), dtype=np.intp)
    ends[:-1] = starts[1:]
    if len(starts):
        ends[-1] = size
    return ends - starts
