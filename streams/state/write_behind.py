"""Per-caller state written to its changelog at checkpoints, not once per message.

The features agent touches hundreds of callers per routed message, and
callers seldom repeat within one. Sending each touched caller's row through
Faust's per-record changelog path cost about 40 µs a row and was the largest
single item of a worker's profile. Kafka Streams answers the same problem
with a record cache in front of each store, flushed when offsets are
committed; this module does the same for callguard's tables:

- :class:`WriteBehindTable` is the ``str -> bytes`` mapping the feature stage
  reads and writes. Writes and deletes land in an overlay (the newest value
  per key, ``None`` for a delete); reads see the overlay first, then the Faust
  table's recovered data.
- :meth:`WriteBehindTable.defer` writes keys without their bytes: the
  feature stage marks the callers a message touched, and their rows are
  serialised once, when read or taken, by the stage itself (a caller touched
  by five messages between two checkpoints is serialised once, not five
  times).
- :meth:`WriteBehindTable.take` hands the overlay over at a checkpoint;
  :meth:`WriteBehindTable.restore` puts it back if the write fails.
- **One copy of each caller in memory.** The feature stage's block holds
  the callers it has loaded or created; the table's data holds only the
  others (recovered from the changelog and not touched since, or let go of
  by the block). :meth:`WriteBehindTable.loaded` drops the data's copy of a
  caller the block has just loaded, a take does not store the rows it
  resolved from the block, and :meth:`WriteBehindTable.evicted` stores the
  bytes of callers the block lets go of (a revoked partition, an idle
  caller). Holding every row twice (numpy columns and bytes) cost about
  600 bytes per caller.
- :class:`ChangelogWriter` sends a checkpoint's records as a few large
  produce batches (one per partition, cut at ``max_batch_bytes``) on its own
  aiokafka producer, and returns once the broker has them.

The agent acknowledges the messages behind a checkpoint only after the
writer returns (``streams.agents``), so an offset is committed only when the
state it produced is in the changelog. A crash between two checkpoints loses
nothing: the messages since the last one are read again, and each caller's
``last_offset`` makes their replay idempotent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

__all__ = ["ChangelogRecord", "ChangelogWriter", "WriteBehindTable", "store_dict"]

ChangelogRecord = tuple[int, bytes, bytes | None]  # partition, key, value (None: delete)
# The bytes of each of a list of deferred keys, asked for once per read or take.
RowSource = Callable[[list[str]], Sequence[bytes]]


class _Deferred:
    """The overlay's value of a key written by :meth:`WriteBehindTable.defer`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<deferred>"


_DEFERRED: Any = _Deferred()


def store_dict(table: Any) -> MutableMapping[bytes, bytes]:
    """A Faust table's data: the dict inside its memory store, else the store itself.

    Faust's memory store keeps its data in a plain dict behind a mapping
    wrapper whose per-key methods cost a Python call each; a checkpoint
    folds tens of thousands of rows into it at once.
    """
    store = table.data
    inner = getattr(store, "data", None)
    return inner if isinstance(inner, dict) else store


class WriteBehindTable(MutableMapping[str, bytes]):
    """A table's data with an overlay of the writes since the last checkpoint.

    ``data`` is the Faust table's in-memory data (``bytes`` keys; the memory
    store's own dict is cheapest, see :func:`store_dict`); keys in
    this mapping are ``str`` and stored as UTF-8. ``partitions_of`` names the
    changelog partition of each of a list of keys (as ``cdr.by_caller``
    routes them).

    The block feature stage sees it through
    :class:`~streams.state.block_table.OneCopyTable`.
    """

    def __init__(
        self,
        data: MutableMapping[bytes, bytes],
        partitions_of: Callable[[list[str]], Sequence[int]],
    ) -> None:
        self._data = data
        self._partitions_of = partitions_of
        self._overlay: dict[str, bytes | None] = {}
        self._source: RowSource | None = None

    @property
    def pending(self) -> int:
        """Keys written or deleted since the last checkpoint."""
        return len(self._overlay)

    @property
    def deferred(self) -> bool:
        """Whether some written key still waits for its bytes from the source (a scan)."""
        return any(value is _DEFERRED for value in self._overlay.values())

    def __getitem__(self, key: str) -> bytes:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:  # the hot read: no exception
        """The value of ``key``, or ``default``."""
        overlay = self._overlay
        if key in overlay:
            value = overlay[key]
            if value is _DEFERRED:
                value = self._resolve([key])[0]
        else:
            value = self._data.get(key.encode())
        return default if value is None else value

    def defer(self, keys: Iterable[str], source: RowSource) -> None:
        """Write ``keys`` now, their bytes to be asked of ``source`` when read or taken.

        ``source`` must answer for every deferred key until it is taken (the
        feature stage keeps those callers in its block). One source per table.
        """
        if self._source is not None and self._source != source:
            raise ValueError("a write-behind table defers to one row source only")
        self._source = source
        self._overlay.update(dict.fromkeys(keys, _DEFERRED))

    def loaded(self, keys: Iterable[str]) -> None:
        """The source now holds ``keys`` (loaded from here): drop the data's copies.

        Until the source lets go of them (:meth:`evicted`), their bytes are
        the source's to give: written keys are deferred to it.
        """
        pop = self._data.pop
        for key in keys:
            pop(key.encode(), None)

    def evicted(self, keys: Sequence[str], values: Sequence[bytes]) -> list[bytes]:
        """The source lets go of ``keys``: keep their current bytes ``values`` here.

        A key still deferred gets its bytes in the overlay too, so the next
        checkpoint writes them without asking the source. Returns the keys
        as the data holds them (UTF-8).
        """
        overlay, data = self._overlay, self._data
        raws = [key.encode() for key in keys]
        for key, raw, value in zip(keys, raws, values, strict=True):
            if overlay.get(key) is _DEFERRED:
                overlay[key] = value
            data[raw] = value
        return raws

    def held_as_bytes(self) -> tuple[list[bytes], list[bytes]]:
        """The data's keys (UTF-8) and values: the callers the source does not hold."""
        data = self._data
        return list(data), list(data.values())

    def discard(self, keys: Iterable[str]) -> None:
        """Delete ``keys`` without reading them (a deferred key is not resolved).

        Every key gets a tombstone: a key the source holds may be in neither
        the overlay nor the data (see :meth:`loaded`).
        """
        overlay, pop = self._overlay, self._data.pop
        for key in keys:
            overlay[key] = None
            pop(key.encode(), None)

    def _resolve(self, keys: list[str]) -> list[bytes]:
        if self._source is None:
            raise RuntimeError("deferred keys without a row source")
        values = list(self._source(keys))
        if len(values) != len(keys):
            raise RuntimeError(f"the row source gave {len(values)} rows for {len(keys)} keys")
        return values

    def __setitem__(self, key: str, value: bytes) -> None:
        self._overlay[key] = value

    def update(self, other: Any = (), /, **kwargs: bytes) -> None:
        """Write many keys at once (the feature stage writes a message's callers so)."""
        self._overlay.update(other, **kwargs)

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._overlay[key] = None

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        if key in self._overlay:
            return self._overlay[key] is not None
        return key.encode() in self._data

    def __iter__(self) -> Iterator[str]:
        for raw in list(self._data):
            key = raw.decode()
            if not raw.startswith(b"\x00") and self._overlay.get(key, b"") is not None:
                yield key
        for key, value in list(self._overlay.items()):
            if value is not None and key.encode() not in self._data:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def take(self) -> list[ChangelogRecord]:
        """The overlay as changelog records; clears it.

        Deferred keys are resolved first, all in one call to the source; if
        that raises, the overlay is left as it was. Bytes written as such
        (not deferred) are folded into the data; deferred keys stay the
        source's (:meth:`loaded`), deleted keys leave the data.
        """
        overlay = self._overlay
        if not overlay:
            return []
        keys = list(overlay)
        values = list(overlay.values())
        waiting = [index for index, value in enumerate(values) if value is _DEFERRED]
        if waiting:
            rows = self._resolve([keys[index] for index in waiting])
            for index, row in zip(waiting, rows, strict=True):
                values[index] = row
        self._overlay = {}
        raws = [key.encode() for key in keys]
        data = self._data
        for raw, value in zip(raws, overlay.values(), strict=True):  # as written, not resolved
            if value is None:
                data.pop(raw, None)
            elif value is not _DEFERRED:
                data[raw] = value
        return list(zip(self._partitions_of(keys), raws, values, strict=True))

    def restore(self, records: list[ChangelogRecord]) -> None:
        """Put records taken by a failed checkpoint back; newer writes since win."""
        for _, raw, value in records:
            self._overlay.setdefault(raw.decode(), value)


class ChangelogWriter:
    """Bulk changelog writes on a producer of its own; ``write`` returns once delivered."""

    def __init__(self, bootstrap_servers: str, max_batch_bytes: int, client_id: str) -> None:
        self._options = {
            "bootstrap_servers": bootstrap_servers,
            "client_id": client_id,
            "acks": "all",
            "linger_ms": 0,
            "max_batch_size": max_batch_bytes,
            "max_request_size": max(1_048_576, max_batch_bytes + 65_536),
        }
        self._producer: AIOKafkaProducer | None = None
        self._stopped = False

    async def start(self) -> AIOKafkaProducer:
        """Connect on first use (aiokafka wants its event loop running); the producer."""
        if self._stopped:
            raise RuntimeError("the changelog writer is stopped (the worker is stopping)")
        if self._producer is None:
            producer = AIOKafkaProducer(**self._options)
            await producer.start()
            self._producer = producer
        return self._producer

    async def stop(self) -> None:
        """Send what is queued and disconnect; later writes fail."""
        self._stopped = True
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def write(self, topic: str, records: Iterable[ChangelogRecord]) -> int:
        """Send ``records`` to ``topic`` in as few batches as fit; wait until all are stored.

        Records of one partition keep their order. Raises what the producer
        raises if a batch cannot be delivered: the caller must then not
        acknowledge what the records stand for.
        """
        producer = await self.start()
        by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
        count = 0
        for partition, key, value in records:
            by_partition.setdefault(partition, []).append((key, value))
            count += 1
        delivered: list[asyncio.Future[Any]] = []
        for partition, rows in by_partition.items():
            batch = producer.create_batch()
            for key, value in rows:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    delivered.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            delivered.append(await producer.send_batch(batch, topic, partition=partition))
        if delivered:
            await asyncio.gather(*delivered)
        return count
