"""Callers the feature stage's block let go of: when their state may have run out.

A worker keeps its active callers' state as columns (the block) and the
callers idle for a while as bytes in its table (see
``BlockFeatureStage.expire_idle``). The block's expiry finds its own idle
callers by their latest call; the callers held only as bytes would need a
scan of every value to be found. :class:`ColdCallers` avoids that scan: each
eviction is remembered as one batch of keys with the latest call among them,
per partition, in a heap; once the long window has passed that latest call,
the batch is due and its callers are looked at again (loaded and expired the
block's way). A caller loaded back and evicted again is in two batches: the
older one finds it newer than its cutoff, or back in the block, and leaves it.

The keys are the very ``bytes`` objects the table's data is keyed by, so a
caller costs the index one pointer.
"""

from __future__ import annotations

import heapq
import itertools

import numpy as np
from numpy.typing import NDArray

__all__ = ["ColdCallers"]


class ColdCallers:
    """Per partition: batches of evicted keys, by the latest call among them."""

    def __init__(self) -> None:
        self._heaps: dict[int, list[tuple[int, int, list[bytes]]]] = {}
        self._order = itertools.count()  # ties: first evicted, first due
        self._keys = 0

    def __len__(self) -> int:
        """Keys tracked (a caller evicted twice counts twice until its older batch is due)."""
        return self._keys

    def add(self, partition: int, keys: list[bytes], latest_ms: NDArray[np.int64]) -> None:
        """Remember ``keys`` evicted from ``partition``, whose latest calls are ``latest_ms``."""
        if not keys:
            return
        batch = (int(np.max(latest_ms)), next(self._order), keys)
        heapq.heappush(self._heaps.setdefault(partition, []), batch)
        self._keys += len(keys)

    def due(self, partition: int, before_ms: int) -> list[bytes]:
        """Take the keys of ``partition``'s batches whose latest call is before ``before_ms``."""
        heap = self._heaps.get(partition)
        keys: list[bytes] = []
        while heap and heap[0][0] < before_ms:
            keys.extend(heapq.heappop(heap)[2])
        self._keys -= len(keys)
        return keys
