"""Feature stage on a :class:`~features.block.engine.CallerBlock`: same contract, columnar state.

:class:`BlockFeatureStage` is the worker's feature stage. It gives what the
reference engine's stage,
:class:`streams.stages.reference.feature_stage.FeatureStage`, gives for
``apply(batch, offset, table)``: the same :class:`StageStats` and the same
:class:`Emission` (numbers, window ends, rows bit for bit), under the same
emission policy. What differs is where the state lives:

- the block is the hot state: every caller of the partitions this worker
  has touched, as columns, updated a whole message at a time;
- the table (a Faust table with a changelog in the worker, a dict in tests)
  is the durable copy: after each message, every caller the message touched
  is written to it. A plain mapping gets the bytes at once
  (:meth:`CallerBlock.rows_bytes`); a table that can defer writes (the
  worker's :class:`~streams.state.write_behind.WriteBehindTable`) gets the
  numbers, and asks the stage for their bytes when it reads or checkpoints
  them, so a caller touched by many messages between two checkpoints is
  serialised once. A caller missing from the block but present in the
  table (after a restart or a rebalance, the table is recovered and the
  block is empty) is loaded on first touch, so a new stage over the same
  table goes on exactly where the old one stopped. The stage talks to both
  kinds of table through one protocol,
  :class:`~streams.state.block_table.BlockTable` (the worker's table seen
  as a :class:`~streams.state.block_table.OneCopyTable`, a plain mapping
  as an :class:`~streams.state.block_table.EveryRowTable`).
- the worker's table keeps **one copy** of each caller in memory: a caller
  the block loads leaves the table's data (``table.loaded``), and one the
  block lets go of (a revoked partition, or idle: the ``evict_before_ms`` of
  :meth:`BlockFeatureStage.expire_idle`) is written back to it as bytes
  (``table.evicted``). So the block is the
  working set and the table's data the compact rest (about 460 bytes a
  caller against about 2-3 KB in the block's columns).

**A failed message.** If applying a message raises, the block may hold part
of it; it is dropped. With a plain mapping, callers reload from the table.
With the worker's one-copy table the block held the only copy of its callers
in memory: the stage then refuses to go on or to give rows
(:class:`StateLost`), so the checkpoint fails and nothing is acknowledged,
and the worker must restart: it recovers the changelog and reads again from
its last checkpoint (the features agent stops the worker on any failed
message).

The table's values are block rows, not :class:`features.reference.caller_record.CallerRecord`
bytes: a table written by one stage cannot be read by the other (switching a
worker over starts from an empty table, or from a replay of ``cdr.by_caller``).

The block replaces ``CallerRecord``'s bookkeeping with its own columns
(``last_offset``, ``last_emitted``, recent ``cdr_id`` fingerprints), so the
exactly-once rules are those of the feature stage.

Housekeeping the worker drives: :meth:`BlockFeatureStage.forget_partition`
when partitions are revoked (their callers leave the block; the table keeps
them for whoever takes over), :meth:`BlockFeatureStage.preload` when they are
assigned (optional: loads the recovered callers at once, so that expiry sees
them), and :meth:`BlockFeatureStage.expire` from a timer: it drops what no
window needs, rewrites the callers it changed and deletes (tombstones) the
callers left empty.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from contracts.by_caller import RoutedBatch
from contracts.number_keys import as_keys, feature_keys, number_keys, number_texts
from features.batch import call_batch
from features.block.engine import BlockUpdate, CallerBlock
from features.block.layout import NO_BUCKET
from features.block.read import window_calls
from features.block.rows import row_last_emitted, row_watermarks
from features.caller_number import caller_number_dict
from features.config import FeatureConfig
from features.emission import EmissionPolicy
from features.fingerprints import fingerprints
from features.vector import FEATURE_NAMES, WINDOW_FEATURE_NAMES
from streams.pipeline.partitions import partitions_of, partitions_of_keys
from streams.stages.caller_features import Emission
from streams.stages.event_clock import OpenBuckets, by_piece
from streams.stages.stage_stats import StageStats
from streams.state.block_table import BlockTable, block_table
from streams.state.cold_callers import ColdCallers

__all__ = ["BlockFeatureStage", "IdleCallers", "StateLost"]

_SHORT_VOLUME = FEATURE_NAMES.index("short_call_volume")
_LONG_VOLUME = FEATURE_NAMES.index("long_call_volume")
_TRACK_AT_ONCE = 4096  # callers per expiry batch when tracking a recovered table
Table = MutableMapping[str, bytes]


def _count_calls(stats: StageStats, update: BlockUpdate) -> None:
    """Add to ``stats`` what :meth:`CallerBlock.update` did with a piece's calls."""
    counts = update.counts
    stats.calls += counts["calls"]
    stats.replayed += counts["replayed"]
    stats.duplicates += counts["duplicates"]
    stats.late_dropped += counts["late_dropped"]
    stats.accepted += counts["accepted"]
    stats.late_accepted += counts["late_accepted"]


class IdleCallers(NamedTuple):
    """What :meth:`BlockFeatureStage.expire_idle` did."""

    removed: list[str]  # deleted: nothing any window needs
    evicted: int  # moved out of the block into the table, as bytes


class StateLost(RuntimeError):
    """The block's state was asked for after a failed message dropped the block that held it."""


class BlockFeatureStage:
    """Applies routed batches to a :class:`CallerBlock` backed by a table of row bytes."""

    def __init__(
        self,
        config: FeatureConfig,
        policy: EmissionPolicy | None = None,
        capacity: int = 1024,
        partitions: int = 1,
    ) -> None:
        self.config = config
        self.policy = policy or EmissionPolicy()
        self._capacity = capacity
        self.block = CallerBlock(config, capacity)
        self._lost: str | None = None  # why the block's state can no longer be given
        self._cold = ColdCallers()
        self.clock = OpenBuckets(config.short_hop_s * 1000, config.grace_s * 1000)
        self.partitions = partitions  # of cdr.by_caller: which callers a partition's clock holds

    def apply(
        self, batch: RoutedBatch, offset: int, table: Table, partition: int = 0
    ) -> tuple[StageStats, Emission]:
        """Apply one message read at ``offset`` of ``partition``; write back what it touched.

        The emission holds the callers of the buckets this message's calls
        closed (see :mod:`streams.stages.event_clock` and
        :mod:`features.emission`).

        If applying fails, the block is dropped (it may hold part of the
        message, the table holds none of it): callers reload from the table.
        Rows the table still waits for are lost with it (see the module
        docstring): from then on the stage raises :class:`StateLost`.
        """
        if self._lost is not None:
            raise StateLost(self._lost)
        rows_table = self._table(table)
        try:
            return self._apply(batch, offset, rows_table, partition)
        except Exception as error:
            self.block = CallerBlock(self.config, self._capacity)
            if rows_table.one_copy:  # the block held the only copy of its callers
                self._lost = (
                    f"the message at offset {offset} failed ({error!r}) and the state the "
                    "block held is gone: restart the worker, it recovers the state from "
                    "the changelog and reads again from its last checkpoint"
                )
            raise

    def _apply(
        self, batch: RoutedBatch, offset: int, table: BlockTable, partition: int
    ) -> tuple[StageStats, Emission]:
        block, stats = self.block, StageStats()
        calls, complaints, inbound = batch.calls, batch.complaints, batch.inbound
        callers, noted = as_keys(calls.caller), as_keys(inbound.number)
        caller_rows, _, note_rows = self._load_missing(
            table, [callers, as_keys(complaints.number), noted], stats
        )
        if partition not in self.clock:
            self._recover_clock(table, partition, stats)
        block.begin(offset)
        touched, emission = [], Emission()
        pieces = self.clock.cuts(partition, calls.start_ms)
        notes = by_piece(pieces, calls.start_ms, inbound.time_ms)
        reports = by_piece(pieces, calls.start_ms, complaints.time_ms)
        complaint_times = np.asarray(complaints.time_ms, np.int64)
        if len(inbound):
            note_times = np.asarray(inbound.time_ms, np.int64)
            note_keys = feature_keys(as_keys(inbound.from_number))
            note_rows = block.rows_again(noted, note_rows, create=True)  # loaded, or new
            touched.append(note_rows)
        if len(calls):
            columns, ids = call_batch(calls, self.config), fingerprints(calls.cdr_id)
        for number, piece in enumerate(pieces):
            if len(notes[number]):
                # Every called number learns who called it, with or without calls
                # of its own, before the calls that follow in time: a row emitted
                # at one of the message's cuts counts the call-backs before its
                # window's end (the inbox keeps their times), whatever order calls
                # and notes arrive in (input partitions, message cuts, a restart's
                # replay). Bloom filter adds and inbox entries are idempotent.
                chosen = notes[number]
                stats.inbound += block.note_inbound_rows(
                    note_rows[chosen],
                    note_keys[chosen],
                    note_times[chosen],
                    offset,
                    self.clock.frontier(partition),
                )
            if len(calls):
                # Callers new to the block were -1 when the message began; the notes
                # or the pieces before may have made their rows since.
                rows = block.rows_again(callers[piece], caller_rows[piece], create=False)
                update = block.update(
                    callers[piece], columns.take(piece), ids[piece], offset,
                    rows=rows, continued=True,  # begun above; the notes may have opened rows
                )
                _count_calls(stats, update)
                touched.append(update.rows)
            if len(reports[number]):
                numbers = [complaints.number[index] for index in reports[number].tolist()]
                landed = block.note_complaints(
                    numbers, complaint_times[reports[number]], offset
                )
                stats.complaints += int(landed.sum())
                touched.append(block.rows_of(numbers, create=False))
            if len(calls) and number < len(pieces) - 1:  # calls that closed buckets (cuts)
                self.clock.note(partition, callers[piece].tolist(), calls.start_ms[piece])
                part, emitted = self._emit(self.clock.closed(partition), table, stats)
                emission.extend(part)
                touched.append(emitted)
        last = pieces[-1]
        self.clock.note(partition, callers[last].tolist(), calls.start_ms[last])
        part, emitted = self._emit(self.clock.closed(partition), table, stats)
        emission.extend(part)
        stats.emitted = len(emission)
        touched.append(emitted)
        rows = block.distinct(np.concatenate(touched))
        self._write(rows, table)
        stats.caller_writes = len(rows)
        return stats, emission

    def _load_missing(
        self, table: BlockTable, key_lists: list[NDArray[np.int64]], stats: StageStats
    ) -> list[NDArray[np.int64]]:
        """Load from the table the numbers (keys) of this message the block does not hold.

        All at once (:meth:`CallerBlock.load_rows`), in first-seen order over
        the lists. Returns each list's rows once loaded (-1 where neither
        the block nor the table holds the number).
        """
        block, get = self.block, table.get
        found = [block.rows_of(keys, create=False) for keys in key_lists]
        wanted = np.concatenate(
            [keys[rows < 0] for keys, rows in zip(key_lists, found, strict=True)]
        )
        if not len(wanted):
            return found
        distinct, first = np.unique(wanted, return_index=True)
        missing = distinct[np.argsort(first, kind="stable")]
        loaded, keys, datas = [], [], []
        for number, key in zip(number_texts(missing), missing.tolist(), strict=True):
            data = get(number)
            if data is not None:
                loaded.append(number)
                keys.append(key)
                datas.append(data)
        if loaded:
            block.load_rows(loaded, datas, keys=np.array(keys, np.int64))
            table.loaded(loaded)
        stats.loaded += len(loaded)
        return [
            block.rows_again(keys, rows, create=False)
            for keys, rows in zip(key_lists, found, strict=True)
        ]

    def emit_idle(
        self, partition: int, buckets: list[tuple[int, list[str]]], table: Table
    ) -> Emission:
        """A silent partition's open ``buckets`` as they stand.

        See :mod:`streams.stages.event_clock`.
        """
        if self._lost is not None:
            raise StateLost(self._lost)
        return self._emit(buckets, self._table(table), StageStats(), final=False)[0]

    def _emit(
        self,
        closed: list[tuple[int, list[str]]],
        table: BlockTable,
        stats: StageStats,
        *,
        final: bool = True,
    ) -> tuple[Emission, NDArray[np.int64]]:
        """:meth:`~streams.stages.reference.feature_stage.FeatureStage._emit` over the block.

        Rows are tested before any feature is computed: not yet emitted at
        the bucket's end, their windows still in the ring, then their short
        and long windows' call counts (exactly the ``short_call_volume`` and
        ``long_call_volume`` the vector would hold, see
        :func:`features.block.read.window_calls`); only the rows that pass
        get a feature vector. Returns the emission and the rows whose
        ``last_emitted`` moved.
        """
        emission, block, policy = Emission(), self.block, self.policy
        moved = []
        for end_ms, names in closed:
            keys = np.fromiter(names, np.int64, len(names))
            rows = self._load_missing(table, [keys], stats)[0]
            rows = rows[rows >= 0]
            # In the order of the numbers' texts, as the reference stage emits them.
            numbers = block.numbers_of(rows)
            order = sorted(range(len(numbers)), key=numbers.__getitem__)
            rows = rows[np.array(order, np.int64)]
            numbers = [numbers[index] for index in order]
            fresh = block.column("last_emitted")[rows] < end_ms
            readable = self._readable(rows, end_ms)
            stats.unemitted += int((fresh & ~readable).sum())
            candidates = np.flatnonzero(fresh & readable)
            rows = rows[fresh & readable]
            ends = np.full(len(rows), end_ms, np.int64)
            chosen = policy.selects(
                window_calls(block, rows, ends, "short"), window_calls(block, rows, ends, "long")
            )
            rows, candidates = rows[chosen], candidates[chosen]
            if not len(rows):
                continue
            matrix = block.features(rows, end_ms)
            # The counts read from the ring are the vector's volumes (kept as the rule).
            enough = policy.selects(matrix[:, _SHORT_VOLUME], matrix[:, _LONG_VOLUME])
            rows, matrix = rows[enough], matrix[enough]
            if final:
                block.column("last_emitted")[rows] = end_ms
                moved.append(rows)
            emission.numbers.extend(numbers[index] for index in candidates[enough].tolist())
            emission.window_end_ms.extend([end_ms] * len(rows))
            emission.rows.extend(matrix)
        return emission, np.concatenate(moved) if moved else np.zeros(0, np.int64)

    def _recover_clock(self, table: BlockTable, partition: int, stats: StageStats) -> None:
        """Rebuild a partition's open buckets from its callers' state (a restart, an assignment).

        A caller has a bucket to emit if it called in it after its last
        emission; only callers that called within a ring's span of the
        partition's latest call can (older buckets were closed before the
        state was written). They are loaded into the block to read their rings.
        """
        raw_keys, values = table.held_as_bytes()  # a plain mapping's: every caller
        keys = [key.decode() for key in raw_keys]
        mine = np.flatnonzero(partitions_of(keys, self.partitions) == partition) if keys else []
        keys, values = [keys[i] for i in mine], [values[i] for i in mine]
        # Callers already in the block (not in the table's bytes).
        rows = self._rows_of_partition(partition, self.partitions)
        hop_ms = self.config.short_hop_s * 1000
        short = self.config.windows[0]
        watermarks = np.concatenate(
            (row_watermarks(values) if values else np.zeros(0, np.int64),
             self.block.column("watermark")[rows])
        )
        if not len(watermarks):
            self.clock.restore(partition, None, [], [])
            return
        latest = int(watermarks.max())
        recent = latest - short.slots * hop_ms
        if values:
            emitted = row_last_emitted(values)
            stamps = row_watermarks(values)
            due = np.flatnonzero((stamps >= recent) & ((stamps // hop_ms + 1) * hop_ms > emitted))
            numbers = [keys[i] for i in due.tolist()]
            due_keys = number_keys(numbers)
            self._load_missing(table, [due_keys], stats)
            rows = np.concatenate((rows, self.block.rows_of(due_keys, create=False)))
        rows = rows[rows >= 0]
        buckets = self.block.column("bucket")[rows, : short.slots]
        last_emitted = self.block.column("last_emitted")[rows]
        pending = (buckets != NO_BUCKET) & ((buckets + 1) * hop_ms > last_emitted[:, None])
        which, slot = np.nonzero(pending)
        names = self.block.keys_of(rows[which]).tolist()
        self.clock.restore(partition, latest, names, (buckets[which, slot] * hop_ms).tolist())

    def _readable(self, rows: NDArray[np.int64], end_ms: int) -> NDArray[np.bool_]:
        """Rows whose short and long windows ending at ``end_ms`` the rings still hold."""
        columns, ok = self.block.callers.columns, np.ones(len(rows), bool)
        first_column = 0
        for spec in self.config.windows:
            held = columns["bucket"][rows, first_column : first_column + spec.slots]
            newest = held.max(axis=1)
            first = -(-end_ms // spec.hop_ms) - spec.buckets_per_window
            ok &= (newest == NO_BUCKET) | (first > newest - spec.slots)
            first_column += spec.slots
        return ok

    def _table(self, table: Table) -> BlockTable:
        """``table`` as the stage talks to it (see :mod:`streams.state.block_table`)."""
        return block_table(table, self.rows_bytes_of)

    def _write(self, rows: NDArray[np.int64], table: BlockTable) -> None:
        """Write ``rows`` to the table: now, or when it reads or checkpoints them (the worker's)."""
        block = self.block
        table.write(block.numbers_of(rows), lambda: block.rows_bytes(rows))

    def rows_bytes_of(self, numbers: list[str]) -> list[bytes]:
        """The current bytes of callers the block holds (the source of deferred writes)."""
        if self._lost is not None:
            raise StateLost(self._lost)
        rows = self.block.rows_of(numbers, create=False)
        missing = np.flatnonzero(rows < 0)
        if len(missing):
            raise StateLost(
                f"{len(missing)} callers with unwritten state are not in the block "
                f"(first: {numbers[int(missing[0])]})"
            )
        return self.block.rows_bytes(rows)

    @staticmethod
    def _delete(numbers: list[str], table: BlockTable) -> None:
        table.discard(numbers)  # no read: a deferred row is not serialised to be deleted

    # -- housekeeping ----------------------------------------------------------

    def forget(self, numbers: Iterable[str], table: Table | None = None) -> int:
        """Drop ``numbers`` from the block (not from the table); how many were held.

        Pass the table when the block may hold their only copy (the
        worker's one-copy table, see :meth:`WriteBehindTable.evicted`): their
        bytes are written to it first.
        """
        rows = self.block.rows_of(list(numbers), create=False)
        rows = np.unique(rows[rows >= 0])
        self._evict(rows, None if table is None else self._table(table))
        return len(self.block.remove(rows))

    def _evict(self, rows: NDArray[np.int64], table: BlockTable | None) -> list[bytes]:
        """Write ``rows`` to a one-copy table before they leave the block; the keys written.

        A plain mapping already holds their bytes: nothing is written to it.
        """
        if table is None or not table.one_copy or not len(rows):
            return []
        if self._lost is not None:
            raise StateLost(self._lost)
        return table.evicted(self.block.numbers_of(rows), self.block.rows_bytes(rows))

    def forget_partition(self, partition: int, partitions: int, table: Table | None = None) -> int:
        """Drop the callers of a revoked partition of ``cdr.by_caller`` from the block."""
        return self.forget(self._numbers_of_partition(partition, partitions), table)

    def _numbers_of_partition(self, partition: int, partitions: int) -> list[str]:
        """The block's callers that ``cdr.by_caller``'s ``partition`` owns."""
        return self.block.numbers_of(self._rows_of_partition(partition, partitions))

    def _rows_of_partition(self, partition: int, partitions: int) -> NDArray[np.int64]:
        """The rows of the block's callers that ``partition`` owns (keys hashed at once)."""
        rows = self.block.held_rows()
        owners = partitions_of_keys(self.block.keys_of(rows), partitions)
        return rows[owners == partition]

    def preload(self, table: Table, numbers: Iterable[str]) -> int:
        """Load ``numbers`` from the table into the block where missing; how many loaded.

        Optional (callers load on first touch anyway); after an assignment, it
        lets :meth:`expire` see callers no message has touched yet. Pass only
        numbers of partitions this worker owns.
        """
        return self._preload(self._table(table), numbers)

    def _preload(self, table: BlockTable, numbers: Iterable[str]) -> int:
        block, get = self.block, table.get
        wanted = list(dict.fromkeys(numbers))
        held = block.rows_of(wanted, create=False).tolist()
        loaded, datas = [], []
        for number, row in zip(wanted, held, strict=True):
            if row < 0:
                data = get(number)
                if data is not None:
                    loaded.append(number)
                    datas.append(data)
        block.load_rows(loaded, datas)
        table.loaded(loaded)
        return len(loaded)

    def snapshot(self, number: str, table: Table) -> dict[str, object] | None:
        """The caller's current features and clocks (loaded from the table if needed)."""
        if number not in self.block:
            rows_table = self._table(table)
            data = rows_table.get(number)
            if data is None:
                return None
            self.block.load_row(number, data)
            rows_table.loaded([number])
        rows = self.block.rows_of([number], create=False)
        matrix = self.block.features(rows)
        return {
            "window_end_ms": int(self.block.default_end_ms(rows)[0]),
            "watermark_ms": int(self.block.column("watermark")[rows[0]]),
            "features": dict(zip(WINDOW_FEATURE_NAMES, matrix[0].tolist(), strict=True))
            | caller_number_dict(number),
        }

    def expire_idle(
        self,
        now_ms: int,
        table: Table,
        partition: int,
        partitions: int,
        *,
        evict_before_ms: int | None = None,
    ) -> IdleCallers:
        """Delete the callers of ``partition`` that no window ending after ``now_ms`` needs.

        A caller whose latest call is older than ``now_ms`` minus the long
        window holds nothing any window still counts: it leaves the block
        and the table (a tombstone in the changelog). Callers still inside
        the long window are left exactly as they are (their features at
        their own window end stay those of the offline path). What the
        worker calls from its features agent, with ``now_ms`` the
        partition's stream time minus the grace, so memory follows the
        active callers rather than every number ever seen.

        With ``evict_before_ms``, the partition's callers whose latest call
        is older than that then leave the block for the table, as bytes
        (a one-copy table only: see :meth:`WriteBehindTable.evicted`), and
        load again on their next call. Evicted callers are looked at again
        once the long window has passed their latest call
        (:class:`~streams.state.cold_callers.ColdCallers`): loaded, and expired
        as the block's own.
        """
        block, cutoff = self.block, now_ms - self.config.long_window_s * 1000
        rows_table = self._table(table)
        self._reload_due(partition, cutoff, rows_table)
        rows = self._rows_of_partition(partition, partitions)
        idle = rows[block.column("watermark")[rows] < cutoff]
        removed: list[str] = []
        if len(idle):
            removed, changed = block.expire_rows(now_ms, idle)
            self._delete(removed, rows_table)
            self._write(changed, rows_table)
        if evict_before_ms is None or not rows_table.one_copy:
            block.compact()
            return IdleCallers(removed, 0)
        if removed:
            rows = rows[block.keys_of(rows) >= 0]  # removed rows hold no caller now
        latest = block.column("watermark")[rows]
        quiet = latest < evict_before_ms
        rows = rows[quiet]
        self._cold.add(partition, self._evict(rows, rows_table), latest[quiet])
        block.remove(rows)
        block.compact()
        return IdleCallers(removed, len(rows))

    def track_table(self, table: Table, partitions: int) -> int:
        """Remember every caller the table holds as bytes for expiry; how many.

        Callers recovered from the changelog (after a restart or an
        assignment) are held as bytes until their next call; one that never
        calls again would never be looked at, and would be recovered again
        at every restart. This puts them all in the expiry index (evicted
        callers already there are simply there twice). About 0.3 s per
        million callers; the worker runs it once after each assignment.
        """
        rows_table = self._table(table)
        if not rows_table.one_copy:  # a plain mapping's rows are all in the block too
            return 0
        keys, values = rows_table.held_as_bytes()
        if not keys:
            return 0
        owners = partitions_of([key.decode() for key in keys], partitions)
        latest = row_watermarks(values)
        for partition in np.unique(owners).tolist():
            mine = np.flatnonzero(owners == partition)
            mine = mine[np.argsort(latest[mine], kind="stable")]
            for first in range(0, len(mine), _TRACK_AT_ONCE):  # batches come due in turn
                part = mine[first : first + _TRACK_AT_ONCE]
                self._cold.add(partition, [keys[index] for index in part.tolist()], latest[part])
        return len(keys)

    def _reload_due(self, partition: int, cutoff_ms: int, table: BlockTable) -> None:
        """Load the evicted callers of ``partition`` whose state may have run out by now."""
        due = self._cold.due(partition, cutoff_ms)
        if due:
            self._preload(table, [key.decode() for key in due])  # those held skipped there

    def expire(self, now_ms: int, table: Table) -> list[str]:
        """Drop state no window ending after ``now_ms`` needs; returns the callers deleted.

        Callers left empty leave the block and the table (a tombstone in the
        changelog); callers that lost buckets are written back, so a worker
        that recovers the table holds what this one holds.
        """
        removed, changed = self.block.expire_rows(now_ms)
        rows_table = self._table(table)
        self._delete(removed, rows_table)
        self._write(changed, rows_table)
        return removed
