"""Input partitions kept together in time: records released in timestamp order across them.

Carriers' exporters rarely key ``cdr.raw`` by caller, and a caller's calls
come from several switches anyway, so one caller's calls are spread over
every input partition. Read partition after partition (a backlog, or a
worker that starts behind), the first partition read pushes the caller's
watermark forward and its calls in the other partitions fall beyond the
grace: on one unkeyed simulated day, 56% of the calls were dropped as late.

Kafka Streams solves this with its partition group: records of a task's
input partitions are buffered, and the record with the lowest timestamp is
processed first, an empty partition being waited for at most
``max.task.idle.ms``. :class:`PartitionAligner` does the same for a batch
at a time. Its clock is each message's event time (:func:`message_event_ms`:
the first CDR's start time, or the complaint's time), not the Kafka record
timestamp: an exporter sending a backlog gives hundreds of messages the
same millisecond, and ordering those by partition put back the skew (27%
of a test backlog's calls dropped, against 56% unaligned and none by event
time):

- fetched records join their partition's buffer; a partition's *clock* is
  the latest time it has given, and each record counts at its clock, so
  what a partition gives next never counts before what it gave;
- the *horizon* is the lowest clock over the partitions that matter, plus
  a small event-time ``lead_ms`` (``CALLGUARD_INGEST_LEAD_S``, well under
  the grace): records that far ahead of the slowest partition may go on,
  as its next records would still be on time. A partition with nothing
  buffered counts with its clock for at most ``idle_s`` since it last gave
  records when it is caught up to its high watermark: records a producer
  is still writing to it may be older than those of the partitions ahead
  (a day produced while it is read, with the client's default partitioner,
  dropped 1,215 calls as late when a caught-up partition held nothing
  back). One *behind* its high watermark, or not fetched yet, counts
  until it gives records (at most :data:`BEHIND_WAIT_S`): the broker has
  older records for it. Going on without it after ``idle_s``
  dropped 24,481 of a day's 239,563 calls as late, arrays of 500 read
  while written, whose large fetches left partitions unserved for seconds.
  A partition that has given nothing yet holds the others back outright;
- every buffered record at or before the horizon is released, all
  partitions merged in timestamp order; each partition's released records
  are a prefix of its buffer, so its offsets commit in order;
- a partition left holding ``hold_bytes`` or more beyond the horizon
  (``CALLGUARD_INGEST_HOLD_BYTES``) is paused until the others catch up,
  which bounds each buffer to about that plus a fetch. Below it, the
  partition is read on: pausing every partition ahead and resuming it a
  moment later cost a fetch round trip each time, and held a paced day's
  CDRs twice as long from their producer to their flag (``bench.pipeline``'s
  latency phase, arrays of 500: a median 2.9 s against 1.4 s);
- a release goes on until nothing more goes: a partition it empties, if
  silent long enough, holds the others back no longer.

The feature stage then sees a caller's calls in close to event-time order
whatever the partitioning. Nothing is lost: records held at a crash or a
rebalance were never committed and are read again.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import orjson
import polars as pl
import pyarrow as pa

from contracts.cdr import FieldError, epoch_ms_field
from contracts.cdr_vector import epoch_ms_from_parts, instant_parts
from streams.pipeline.ingest import is_arrow_stream

__all__ = ["BEHIND_WAIT_S", "PartitionAligner", "Released", "drift_ms", "message_event_ms"]

# Longest wait for a partition known to hold unread records before the others go on
# without it (a fetch that never comes: a broker in trouble); logged when it happens.
BEHIND_WAIT_S = 30.0

logger = logging.getLogger(__name__)

Partition = TypeVar("Partition", bound=Hashable)


@dataclass
class Released(Generic[Partition]):
    """What :meth:`PartitionAligner.release` lets go, and how the partitions stand."""

    records: list[Any] = field(default_factory=list)  # every partition, in timestamp order
    last_offsets: dict[Partition, int] = field(default_factory=dict)  # last released, each
    to_pause: set[Partition] = field(default_factory=set)
    to_resume: set[Partition] = field(default_factory=set)


class PartitionAligner(Generic[Partition]):
    """Buffers of fetched records per input partition; see the module doc.

    ``records`` need ``offset``; ``key(record)`` is the record's time in ms
    (by default its ``timestamp``), or None when it has none. A partition's
    clock only moves forward: each record counts at the latest time seen in
    its partition so far, so an out-of-order or timeless record goes on with
    its neighbours instead of holding them back.

    >>> from types import SimpleNamespace as R
    >>> aligner = PartitionAligner(idle_s=5.0)
    >>> aligner.assign(["a", "b"], now=0.0)
    >>> aligner.add({"a": [R(timestamp=t, offset=t) for t in (1, 2, 3, 9)]}, now=0.1)
    >>> aligner.add({"b": [R(timestamp=t, offset=t) for t in (4, 5)]}, now=0.1)
    >>> out = aligner.release(now=0.2)
    >>> [r.timestamp for r in out.records], out.last_offsets, out.to_pause
    ([1, 2, 3, 4, 5], {'a': 3, 'b': 5}, {'a'})
    """

    def __init__(
        self,
        *,
        idle_s: float,
        key: Callable[[Any], int | None] | None = None,
        lead_ms: int = 0,
        hold_bytes: int = 0,
    ) -> None:
        if idle_s < 0:
            raise ValueError(f"idle_s must be at least 0, got {idle_s}")
        if lead_ms < 0 or hold_bytes < 0:
            raise ValueError(f"lead_ms and hold_bytes must be at least 0, got {lead_ms}, "
                             f"{hold_bytes}")
        self.idle_s, self.lead_ms, self.hold_bytes = idle_s, lead_ms, hold_bytes
        self._key = key or _timestamp
        self._buffers: dict[Partition, deque[Any]] = {}
        self._held_bytes: dict[Partition, int] = {}
        self._last_seen: dict[Partition, float] = {}
        self._fetched_to: dict[Partition, int] = {}
        self._clock: dict[Partition, int] = {}  # latest time seen, per partition
        self._paused: set[Partition] = set()
        self._given_up: set[Partition] = set()  # behind, gone on without (logged once)

    def assign(self, partitions: Iterable[Partition], *, now: float) -> None:
        """Partitions newly assigned: empty buffers, waited for from ``now``."""
        for partition in partitions:
            self._buffers.setdefault(partition, deque())
            self._held_bytes.setdefault(partition, 0)
            self._last_seen[partition] = now

    def revoke(self, partitions: Iterable[Partition]) -> None:
        """Partitions taken away: their buffered records are dropped (never committed)."""
        for partition in partitions:
            self._buffers.pop(partition, None)
            self._held_bytes.pop(partition, None)
            self._last_seen.pop(partition, None)
            self._fetched_to.pop(partition, None)
            self._clock.pop(partition, None)
            self._paused.discard(partition)
            self._given_up.discard(partition)

    def add(self, fetched: dict[Partition, list[Any]], *, now: float) -> None:
        """Records of one fetch, per partition, in offset order.

        Records of a partition not assigned (revoked while its fetch was in
        flight) are ignored: its new owner reads them.
        """
        for partition, records in fetched.items():
            buffer = self._buffers.get(partition)
            if buffer is None or not records:
                continue
            clock = self._clock.get(partition, -(2**63))
            size = 0
            for record in records:
                key = self._key(record)
                if key is not None and key > clock:
                    clock = key
                item = _size(record)
                buffer.append((clock, record, item))  # its size, for the bytes held
                size += item
            self._clock[partition] = clock
            self._held_bytes[partition] += size
            self._last_seen[partition] = now
            self._given_up.discard(partition)
            self._fetched_to[partition] = int(records[-1].offset) + 1

    def fetched_to(self, partition: Partition) -> int | None:
        """The offset after the last record fetched from ``partition`` (None: none yet)."""
        return self._fetched_to.get(partition)

    def buffered(self) -> int:
        """Records held, all partitions."""
        return sum(map(len, self._buffers.values()))

    def positions(self) -> dict[Partition, int | None]:
        """Each assigned partition's event-time position: the latest time read (None: none)."""
        return {p: self._clock.get(p) for p in self._buffers}

    def release(
        self, *, now: float, behind: Collection[Partition] = ()
    ) -> Released[Partition]:
        """Release every record at or before the horizon; say which partitions to pause.

        ``behind``: partitions whose broker holds records not fetched yet (or
        not known), waited for beyond ``idle_s`` (see the module doc).
        """
        out: Released[Partition] = Released()
        chosen: list[tuple[int, Any, int]] = []
        released = -1
        # Until nothing more goes: a partition a pass empties may have been silent long
        # enough to hold the others back no longer (the last records of a stream then go
        # on together, not one partition per read).
        while len(chosen) > released:
            released = len(chosen)
            horizon = self._horizon(now, behind)
            for partition, buffer in self._buffers.items():
                taken = size = 0
                while buffer and (horizon is None or buffer[0][0] <= horizon):
                    chosen.append(buffer.popleft())
                    size += chosen[-1][2]
                    taken += 1
                if taken:
                    out.last_offsets[partition] = chosen[-1][1].offset
                    self._held_bytes[partition] -= size
        # A stable sort: records of one partition keep their offset order on ties.
        chosen.sort(key=_first)
        out.records = [record for _, record, _ in chosen]
        held, limit = self._held_bytes, self.hold_bytes
        ahead = {p for p, b in self._buffers.items() if b and held[p] >= limit}
        out.to_pause = ahead - self._paused
        out.to_resume = self._paused - ahead
        self._paused = ahead
        return out

    def _horizon(self, now: float, behind: Collection[Partition]) -> int | None:
        """The latest timestamp records may have to go on now; None: no limit (see module doc)."""
        lowest: int | None = None
        for partition, buffer in self._buffers.items():
            if not buffer:
                silent = now - self._last_seen.get(partition, now)
                wait = BEHIND_WAIT_S if partition in behind else self.idle_s
                if silent >= wait:
                    if partition in behind and partition not in self._given_up:
                        self._given_up.add(partition)
                        logger.warning(
                            "input partition %s has records not fetched for %.0f s; the others "
                            "go on without it (its calls may come late)", partition, silent,
                        )
                    continue  # silent long enough: it does not hold the others back
                if partition not in self._clock:
                    return -(2**63)  # nothing given yet: its first records may be the oldest
            clock = self._clock[partition]  # what it gives next counts from here on
            lowest = clock if lowest is None else min(lowest, clock)
        return None if lowest is None else lowest + self.lead_ms


def drift_ms(positions: dict[str, int | None]) -> int | None:
    """How far the input partition furthest ahead in event time is from the one behind.

    >>> drift_ms({"cdr.raw:0": 1_000, "cdr.raw:1": 61_000, "cdr.raw:2": None})
    60000
    """
    reached = [ms for ms in positions.values() if ms is not None]
    return max(reached) - min(reached) if reached else None


_HOUR_MS = 3_600_000


def _timestamp(record: Any) -> int:
    return int(record.timestamp)


def _first(item: tuple[int, Any, int]) -> int:
    return item[0]


def _size(record: Any) -> int:
    """A record's value in bytes (0 without one)."""
    value = getattr(record, "value", None)
    return len(value) if value else 0


def message_event_ms(record: Any, *, now_ms: int | None = None) -> int | None:
    """A ``cdr.raw`` or ``complaints`` message's event time: what the aligner orders by.

    JSON: the first CDR's ``start_time`` (or the first complaint's
    ``time_ms`` / ``time``), as the validator reads it; Arrow: the first
    row's ``start_time`` of the first batch, read as the Arrow validator
    reads the column. Exporters send calls roughly in time order, so a
    message's first call stands for the message. None (the message goes on
    at its partition's time) for anything unreadable (the validator
    dead-letters it) and for a time more than an hour past the wall clock (a
    switch with a wrong clock must not hold its partition back).

    >>> from types import SimpleNamespace as R
    >>> message_event_ms(R(value=b'[{"start_time": 1530489600000}]', headers=(), timestamp=5))
    1530489600000
    >>> message_event_ms(R(value=b'{"time": "2018-07-02T08:00:00+08:00"}', headers=(), timestamp=5))
    1530489600000
    >>> message_event_ms(R(value=b"not json", headers=(), timestamp=5)) is None
    True
    """
    limit = (time.time_ns() // 1_000_000 if now_ms is None else now_ms) + _HOUR_MS
    if is_arrow_stream(record.headers):
        moment = _arrow_first_ms(record.value)
        return moment if moment is not None and moment <= limit else None
    value = _first_of_array(record.value or b"")
    if value is None:
        try:
            value = orjson.loads(record.value or b"")
        except orjson.JSONDecodeError:
            return None
    first = value[0] if isinstance(value, list) and value else value
    if not isinstance(first, dict):
        return None
    for name in ("start_time", "time_ms", "time"):
        if name in first:
            try:
                moment = epoch_ms_field(first, name)
            except FieldError:
                return None
            return moment if moment <= limit else None
    return None


def _first_of_array(raw: bytes) -> list[Any] | None:
    """A JSON array's first object alone, as a one-item list, without decoding the rest.

    The text up to the first ``}`` closed as an array: valid JSON only when
    that brace ends a first object without nested objects or braces in its
    strings (a CDR's), else None and the caller decodes the whole message.
    An array of 500 CDRs took 280 us to decode whole for its first time.
    """
    start = raw[:1]
    if start != b"[" and start.isspace():
        start = raw.lstrip()[:1]  # a copy, only for text that starts with spaces
    if start != b"[":
        return None
    end = raw.find(b"}")
    if end < 0:
        return None
    try:
        value = orjson.loads(raw[: end + 1] + b"]")
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, list) else None


def _arrow_first_ms(raw: bytes | None) -> int | None:
    """The first row's ``start_time`` of an Arrow IPC stream, in epoch ms (None: unreadable)."""
    try:
        batch = pa.ipc.open_stream(raw or b"").read_next_batch()
        column = batch.column("start_time").slice(0, 1)
        first = pl.Series(pl.from_arrow(pa.chunked_array([column])))
        moment = epoch_ms_from_parts(*instant_parts(first))[0]
    except Exception:  # noqa: BLE001 - anything unreadable goes on at its partition's time
        return None
    return None if moment is None else int(moment)
