"""Growable tables of fixed-width records with a free list, for :mod:`features.block.engine`.

A :class:`RecordPool` holds named 2-D numpy columns that share their first
axis (the record index). Records are handed out by :meth:`RecordPool.allocate`
(vectorised: many at once), returned by :meth:`RecordPool.release`, and the
columns grow by half when the free list runs dry, so indices stay valid
and nothing is copied per record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["Layout", "RecordPool"]

# Column name -> (trailing shape, dtype, value of a fresh record).
Layout = Mapping[str, tuple[tuple[int, ...], np.dtype[Any], int | float]]


class RecordPool:
    """Columns ``name -> (capacity, *shape)`` with a stack of free record indices."""

    __slots__ = ("_fill", "_free", "_free_top", "columns")

    def __init__(
        self,
        capacity: int,
        layout: Layout,
    ) -> None:
        """``layout``: per column its trailing shape, dtype and the value of a fresh record."""
        capacity = max(1, capacity)
        self._fill = {name: fill for name, (_, _, fill) in layout.items()}
        self.columns: dict[str, NDArray[Any]] = {
            name: np.full((capacity, *shape), fill, dtype=dtype)
            for name, (shape, dtype, fill) in layout.items()
        }
        # Lowest indices on top of the stack, so a young table stays compact.
        self._free = np.arange(capacity - 1, -1, -1, dtype=np.int64)
        self._free_top = capacity

    @property
    def capacity(self) -> int:
        """Records the columns have room for."""
        return len(next(iter(self.columns.values())))

    @property
    def used(self) -> int:
        """Records handed out and not released."""
        return self.capacity - self._free_top

    @property
    def record_bytes(self) -> int:
        """Bytes of one record, summed over the columns."""
        return sum(column[0].nbytes for column in self.columns.values())

    def allocate(self, count: int) -> NDArray[np.int64]:
        """``count`` fresh records (every column at its fill value)."""
        if self._free_top < count:
            self._grow(count - self._free_top)
        self._free_top -= count
        taken = self._free[self._free_top : self._free_top + count][::-1].copy()
        return taken

    def free_stack(self) -> tuple[NDArray[np.int64], int]:
        """The stack of free records and its height: ``stack[:height]``, the next on top.

        For compiled code that takes records itself; tell the pool how many
        are left with :meth:`taken_from_stack`.
        """
        return self._free, self._free_top

    def taken_from_stack(self, height: int) -> None:
        """Records above ``height`` on the free stack were taken (see :meth:`free_stack`)."""
        if not 0 <= height <= self._free_top:
            raise ValueError(f"the free stack holds {self._free_top}, not {height}")
        self._free_top = height

    def reserve(self, count: int) -> None:
        """Grow, if needed, so that ``count`` records are free."""
        if self._free_top < count:
            self._grow(count - self._free_top)

    def release(self, records: NDArray[np.integer]) -> None:
        """Return records to the free list, resetting them to their fill value."""
        records = np.asarray(records, dtype=np.int64)
        if len(records) == 0:
            return
        self.clear(records)
        self._free[self._free_top : self._free_top + len(records)] = records
        self._free_top += len(records)

    def clear(self, records: NDArray[np.integer]) -> None:
        """Reset records to their fill value, keeping them allocated."""
        for name, column in self.columns.items():
            column[records] = self._fill[name]

    def compact(self, capacity: int) -> NDArray[np.int64]:
        """Move the records in use to the front and cut the columns to ``capacity``.

        ``capacity`` is raised to the records in use if it is below them.
        Returns, for each old index, its new index (-1 for a free record):
        whoever holds record indices must map them through it.
        """
        old = self.capacity
        in_use = np.ones(old, bool)
        in_use[self._free[: self._free_top]] = False
        kept = np.flatnonzero(in_use)
        capacity = max(1, capacity, len(kept))
        for name, column in self.columns.items():
            packed = np.empty((capacity, *column.shape[1:]), dtype=column.dtype)
            packed[: len(kept)] = column[kept]
            packed[len(kept) :] = self._fill[name]
            self.columns[name] = packed
        self._free = np.empty(capacity, dtype=np.int64)  # room for every record
        self._free_top = capacity - len(kept)
        self._free[: self._free_top] = np.arange(capacity - 1, len(kept) - 1, -1)
        remap = np.full(old, -1, dtype=np.int64)
        remap[kept] = np.arange(len(kept))
        return remap

    def _grow(self, needed: int) -> None:
        """Add at least ``needed`` records: half the capacity, or 16, if more.

        Every record is filled at once, so spare capacity is resident
        memory: growing by half keeps at most a third of the pool spare
        (doubling kept up to half), and the copy made while growing is 2.5
        pools at the peak rather than 3. Growing by a quarter was tried: it
        copied so often that a block filling fast (callers loaded back
        from the table) spent 14% of its time growing.
        """
        old = self.capacity
        new = old + max(needed, 16, old // 2)
        for name, column in self.columns.items():
            grown = np.empty((new, *column.shape[1:]), dtype=column.dtype)
            grown[:old] = column
            grown[old:] = self._fill[name]
            self.columns[name] = grown
        free = np.empty(new, dtype=np.int64)
        free[: self._free_top] = self._free[: self._free_top]
        added = np.arange(new - 1, old - 1, -1, dtype=np.int64)
        free[self._free_top : self._free_top + len(added)] = added
        self._free = free
        self._free_top += len(added)
