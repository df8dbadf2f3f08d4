"""The table behind the block feature stage's block, as the stage sees it.

The stage's block holds the callers it has loaded or created; the table is
their durable copy. Two kinds of table stand behind it, and the stage talks
to both through one protocol, :class:`BlockTable`:

- the worker's :class:`~streams.state.write_behind.WriteBehindTable`, seen
  through :class:`OneCopyTable`, holds each caller **once** in memory:
  either in the block or as bytes in the table, never both. It takes the
  block's rows late (deferred writes, serialised when read or
  checkpointed), drops its bytes of the callers the block loads, and
  stores the bytes of those the block lets go of.
- a plain mapping (tests, benchmarks), seen through :class:`EveryRowTable`,
  keeps a copy of every row: it is written at once and keeps its bytes
  when the block loads a caller.

Beyond that, the two differ in one fact, :attr:`BlockTable.one_copy`:
whether the block holds the only copy in memory of its callers. The stage
reads it where that matters: a failed message then loses state, and only
then does the block let callers go to the table (eviction) or track the
table's bytes for expiry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping, Sequence
from typing import Protocol

from streams.state.write_behind import RowSource, WriteBehindTable

__all__ = ["BlockTable", "EveryRowTable", "OneCopyTable", "block_table"]

# The bytes of the rows just written, built when called.
RowsNow = Callable[[], Sequence[bytes]]


class BlockTable(Protocol):
    """What the block feature stage asks of the table behind its block."""

    @property
    def one_copy(self) -> bool:
        """Whether the block holds the only copy in memory of the callers it holds."""

    def get(self, key: str, /) -> bytes | None:
        """The bytes of ``key``, or None (the table does not hold it as bytes)."""

    def write(self, keys: list[str], rows_now: RowsNow) -> None:
        """The block's rows of ``keys`` changed: their bytes are ``rows_now()``, if wanted now."""

    def loaded(self, keys: list[str]) -> None:
        """The block now holds ``keys``."""

    def evicted(self, keys: list[str], values: Sequence[bytes]) -> list[bytes]:
        """``keys`` left the block, their bytes ``values``; the keys as stored."""

    def held_as_bytes(self) -> tuple[list[bytes], list[bytes]]:
        """Keys (UTF-8) and bytes of the callers the table holds as bytes."""

    def discard(self, keys: Iterable[str]) -> None:
        """Delete ``keys`` without reading them."""


class OneCopyTable:
    """The worker's write-behind table: a caller in the block or in the table, never both."""

    one_copy = True

    def __init__(self, table: WriteBehindTable, source: RowSource) -> None:
        self._table = table
        self._source = source
        self.get = table.get  # the hot read: no call in between

    def write(self, keys: list[str], rows_now: RowsNow) -> None:
        """Deferred: the bytes are asked of the block (``source``) when read or taken."""
        self._table.defer(keys, self._source)

    def loaded(self, keys: list[str]) -> None:
        """Drop the table's bytes of ``keys``: the block's are the copy now."""
        self._table.loaded(keys)

    def evicted(self, keys: list[str], values: Sequence[bytes]) -> list[bytes]:
        """Keep the bytes of the callers the block lets go of."""
        return self._table.evicted(keys, values)

    def held_as_bytes(self) -> tuple[list[bytes], list[bytes]]:
        """The callers the block does not hold."""
        return self._table.held_as_bytes()

    def discard(self, keys: Iterable[str]) -> None:
        """Tombstones; a deferred row is not serialised to be deleted."""
        self._table.discard(keys)


class EveryRowTable:
    """A plain ``str -> bytes`` mapping: a copy of every row, written at once."""

    one_copy = False

    def __init__(self, rows: MutableMapping[str, bytes]) -> None:
        self._rows = rows
        self.get = rows.get

    def write(self, keys: list[str], rows_now: RowsNow) -> None:
        """Write the bytes now."""
        self._rows.update(dict(zip(keys, rows_now(), strict=True)))

    def loaded(self, keys: list[str]) -> None:
        """Nothing to do: the mapping keeps its copy of the rows the block loads."""

    def evicted(self, keys: list[str], values: Sequence[bytes]) -> list[bytes]:
        """Write the bytes of ``keys`` (the same bytes the mapping already holds)."""
        self._rows.update(dict(zip(keys, values, strict=True)))
        return [key.encode() for key in keys]

    def held_as_bytes(self) -> tuple[list[bytes], list[bytes]]:
        """Every key (UTF-8) and row: the mapping holds them all."""
        return [key.encode() for key in self._rows], list(self._rows.values())

    def discard(self, keys: Iterable[str]) -> None:
        """Delete ``keys``; a key the mapping does not hold is no error."""
        pop = self._rows.pop
        for key in keys:
            pop(key, None)


def block_table(table: MutableMapping[str, bytes], source: RowSource) -> BlockTable:
    """``table`` as the stage sees it; ``source`` gives the block's bytes of deferred rows.

    The one place the two kinds of table are told apart: every method of
    the stage that is given a table calls this first.
    """
    if isinstance(table, WriteBehindTable):
        return OneCopyTable(table, source)
    return EveryRowTable(table)
