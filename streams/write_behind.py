"""Table writes held back and coalesced, so a caller's state is logged once per batch.

The feature stage writes the bytes of every caller a message touched to its
table, and every table write is a record on the changelog topic. Under a
backlog the same caller is touched by many consecutive messages: writing
each time costs a changelog record (about 1.5 KB and a producer round trip
in Python) per message. :class:`WriteBehind` stands between the stage and
the table: writes and deletes are kept in memory (reads see them first) and
:meth:`WriteBehind.flush` hands the latest value of each key to the table
in one go.

The worker flushes after each batch of ``cdr.by_caller`` messages and only
then acknowledges them, so offsets are committed only past state that is
on its way to the changelog (Faust flushes the producer before it commits).
A crash loses no more than the unacknowledged batch, which is read again;
per-caller offsets (``last_offset``) make that replay idempotent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping

__all__ = ["WriteBehind"]

_DELETED = None


class WriteBehind(MutableMapping[str, bytes]):
    """A write-back buffer over ``table`` (``str -> bytes``)."""

    def __init__(self, table: MutableMapping[str, bytes]) -> None:
        self.table = table
        self._pending: dict[str, bytes | None] = {}

    def __getitem__(self, key: str) -> bytes:
        if key in self._pending:
            value = self._pending[key]
            if value is _DELETED:
                raise KeyError(key)
            return value
        return self.table[key]

    def __setitem__(self, key: str, value: bytes) -> None:
        self._pending[key] = value

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._pending[key] = _DELETED

    def __contains__(self, key: object) -> bool:
        if key in self._pending:
            return self._pending[key] is not _DELETED  # type: ignore[index]
        return key in self.table

    def __iter__(self) -> Iterator[str]:
        for key in self.table:
            if key not in self._pending:
                yield key
        for key, value in self._pending.items():
            if value is not _DELETED:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    @property
    def pending(self) -> int:
        """Keys written or deleted since the last flush."""
        return len(self._pending)

    def flush(self, only: Callable[[str], bool] | None = None) -> int:
        """Apply held writes to the table (those whose key passes ``only``); how many."""
        keys = list(self._pending) if only is None else [k for k in self._pending if only(k)]
        for key in keys:
            value = self._pending[key]
            if value is _DELETED:
                self.table.pop(key, None)
            else:
                self.table[key] = value
            del self._pending[key]  # only once the table took it
        return len(keys)
