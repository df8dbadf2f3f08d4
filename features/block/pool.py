"""Growable tables of fixed-width records with a free list, for :mod:`features.block.engine`.

A :class:`RecordPool` holds named 2-D numpy columns that share their first
axis (the record index). Records are handed out by :meth:`RecordPool.allocate`
(vectorised: many at once), returned by :meth:`RecordPool.release`, and the
columns grow by half when the free list runs dry, so indices stay valid
and nothing is copied per record.

Columns grow and shrink in place where they can (:meth:`RecordPool._resize`):
a large numpy buffer is its own ``mmap`` in glibc, whose ``realloc`` moves
the pages (``mremap``) instead of copying them, so a grow touches only the
records it adds. Fresh memory is what costs: on this project's virtual
machines the first write to a page costs about 4 us (163 MB in 0.7 s,
against 8 ms for the second write), and a grow into a new array wrote
every page of the pool again.
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
        for name in list(self.columns):
            column = self.columns[name]
            column[: len(kept)] = column[kept]
            column[len(kept) : min(old, capacity)] = self._fill[name]
            del column  # the pool's reference alone: _resize may then work in place
            self._resize(name, capacity)
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
        (doubling kept up to half). Growing by a quarter was tried when every
        grow copied the pool: it copied so often that a block filling fast
        (callers loaded back from the table) spent 14% of its time growing.
        """
        old = self.capacity
        new = old + max(needed, 16, old // 2)
        for name in list(self.columns):
            self._resize(name, new)
        free = np.empty(new, dtype=np.int64)
        free[: self._free_top] = self._free[: self._free_top]
        added = np.arange(new - 1, old - 1, -1, dtype=np.int64)
        free[self._free_top : self._free_top + len(added)] = added
        self._free = free
        self._free_top += len(added)

    def _resize(self, name: str, records: int) -> None:
        """Give column ``name`` room for ``records``, keeping its first ones, the new ones filled.

        In place (``ndarray.resize``) when the pool holds the only reference
        to the column, so a large column's pages move instead of being copied
        (see the module doc); numpy refuses when a view of the column or
        another reference to it is alive, and then the column is copied into
        a new array, leaving the holder a valid, stale copy.
        """
        column = self.columns.pop(name)
        old = len(column)
        try:
            try:
                # Two references here: this frame's and the call's own.
                column.resize((records, *column.shape[1:]), refcheck=True)
            except ValueError:
                copied = np.empty((records, *column.shape[1:]), dtype=column.dtype)
                copied[: min(old, records)] = column[: min(old, records)]
                column = copied
            column[old:] = self._fill[name]
        finally:
            self.columns[name] = column
