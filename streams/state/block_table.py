"""The table behind the block feature stage's block, as the stage sees it.

The stage's block holds the callers it has loaded or created; the table is
their durable copy. Two kinds of table stand behind it, and the stage talks
to both through :class:`BlockTable`:

- the worker's :class:`~streams.state.write_behind.WriteBehindTable` holds
  each caller **once** in memory: either in the block or as bytes in the
  table, never both. It takes the block's rows late (deferred writes),
  drops its bytes of the callers the block loads, and stores the bytes of
  those the block lets go of.
- a plain mapping (tests, benchmarks) keeps a copy of every row: wrapped in
  :class:`EveryRowTable`, it is written at once and keeps its bytes when
  the block loads a caller.

What the two differ in beyond that is one fact, :attr:`BlockTable.one_copy`:
whether the block holds the only copy in memory of its callers. The stage
reads it where that matters: a failed message then loses state, and only
then may the block let callers go to the table (eviction) or track the
table's bytes for expiry.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping, Sequence
from typing import Protocol

from streams.state.write_behind import RowSource, WriteBehindTable

__all__ = ["BlockTable", "EveryRowTable", "block_table"]


class BlockTable(Protocol):
    """What the block feature stage asks of the table behind its block."""

    @property
    def one_copy(self) -> bool:
        """Whether the block holds the only copy in memory of the callers it holds."""

    def get(self, key: str, /) -> bytes | None:
        """The bytes of ``key``, or None (a caller the table does not hold as bytes)."""

    def defer(self, keys: Iterable[str], source: RowSource) -> None:
        """Write ``keys`` now, their bytes asked of ``source`` when read or taken."""

    def loaded(self, keys: Iterable[str]) -> None:
        """The block now holds ``keys``."""

    def evicted(self, keys: Sequence[str], values: Sequence[bytes]) -> list[bytes]:
        """``keys`` left the block: keep their bytes; the keys as stored."""

    def held_as_bytes(self) -> tuple[list[bytes], list[bytes]]:
        """Keys (UTF-8) and bytes of the callers the table holds as bytes."""

    def discard(self, keys: Iterable[str]) -> None:
        """Delete ``keys`` without reading them."""


class EveryRowTable:
    """A plain ``str -> bytes`` mapping behind a block: a copy of every row, written at once."""

    one_copy = False

    def __init__(self, rows: MutableMapping[str, bytes]) -> None:
        self._rows = rows

    def get(self, key: str, /) -> bytes | None:
        """The bytes of ``key``, or None."""
        return self._rows.get(key)

    def defer(self, keys: Iterable[str], source: RowSource) -> None:
        """Nothing waits: the bytes are asked of ``source`` and written now."""
        keys = list(keys)
        self._rows.update(dict(zip(keys, source(keys), strict=True)))

    def loaded(self, keys: Iterable[str]) -> None:
        """Nothing to do: the mapping keeps its copy of the rows the block loads."""

    def evicted(self, keys: Sequence[str], values: Sequence[bytes]) -> list[bytes]:
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


def block_table(table: MutableMapping[str, bytes]) -> BlockTable:
    """``table`` as a :class:`BlockTable`: the worker's table as it is, a plain mapping wrapped.

    The one place the stage tells the two kinds of table apart; every
    method of the stage that is given a table calls this first.
    """
    if isinstance(table, WriteBehindTable):
        return table
    return EveryRowTable(table)
