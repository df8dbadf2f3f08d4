"""Streaming state of many callers as columns, updated a whole message at a time.

:class:`CallerBlock` holds what the reference engine's
:class:`features.reference.state.CallerState` holds for one caller -- rings
of bucket aggregates, watermark, reorder buffer, inbound filter -- for
every caller of a partition, plus the bookkeeping of
:class:`features.reference.caller_record.CallerRecord` (last applied offset, last
emission, recent ``cdr_id`` fingerprints). One :meth:`CallerBlock.update` per
message applies every caller's calls in a few compiled passes over the
calls grouped by caller (:mod:`features.block.update_kernel`,
:mod:`features.block.ring_kernel`) instead of a hundred Python steps per
caller.

**Equal to CallerState.** For the same messages, every caller's features are
the ones its ``CallerState`` would give, to the bit: the same watermark and
grace per call in arrival order, the same slot claims (a newer bucket evicts,
an older one is dropped), the same reorder buffer (calls chained once older
than the watermark minus the grace, or when more than ``reorder_capacity``
wait), the same sequential chain merge (see :func:`features.block.ring_kernel.chain_into_rings`)
and the same window combination when reading (:func:`features.aggregate.combine`).
The tests feed both with random streams and compare.

**Equal to the reference feature stage.** ``update`` applies the exactly-once
rules of :mod:`streams.stages.reference.feature_stage`: a caller whose ``last_offset`` is at or past
the message's offset is skipped (replay), and calls whose fingerprint is among
the caller's last :data:`~features.fingerprints.RECENT_IDS` or repeated earlier
in the message are duplicates. A caller's offset advances on the first
``update``/``note_complaints``/``note_inbound`` of a message that touches it,
so the later parts of the same message still apply: call ``update`` first for
each message (it begins the message), then ``note_complaints`` and
``note_inbound`` (see :meth:`CallerBlock.open`).

Memory: callers and slots live in two :class:`~features.block.pool.RecordPool`
tables; a slot record exists only for a bucket some caller holds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from contracts.number_keys import as_keys, number_key, number_keys, number_texts
from features.aggregate import COMPLAINTS
from features.batch import CallBatch, key_hash32
from features.block.inbox_kernel import settle_inboxes
from features.block.key_index import KeyIndex
from features.block.key_index import warm_up as warm_up_index
from features.block.layout import (
    HELD_COMPLAINTS,
    NO_BUCKET,
    caller_layout,
    ring_slots,
    slot_layout,
)
from features.block.load import load_rows_bytes
from features.block.ops import (
    distinct_rows,
    rank_in_group,
    segmented_cummax,
)
from features.block.pool import RecordPool
from features.block.read import block_features, window_calls
from features.block.ring_kernel import chain_into_rings, count_into_rings
from features.block.rows import layout_fingerprint, load_row_bytes, row_bytes, rows_bytes
from features.block.update_kernel import admit_calls, hold_back_calls
from features.config import FeatureConfig, WindowSpec
from features.runs import run_lengths, run_starts
from features.sketch import BLOOM_HASHES

__all__ = ["BlockUpdate", "CallerBlock", "warm_up_kernels"]

Int64Array = NDArray[np.int64]
_LOAD_AT_ONCE = 4096  # rows per batch load: bounds its temporary arrays (a few MB)


@dataclass(frozen=True, slots=True)
class BlockUpdate:
    """What one :meth:`CallerBlock.update` did with each call (masks in input order).

    A call is exactly one of: ``replayed`` (its caller already holds this
    offset), ``duplicate`` (fingerprint seen), ``dropped`` (older than the
    grace), or accepted (``late`` if a later call of its caller came first).
    ``rows``: each call's caller row; ``called``: rows with an accepted call.
    """

    rows: Int64Array
    replayed: NDArray[np.bool_]
    duplicate: NDArray[np.bool_]
    dropped: NDArray[np.bool_]
    accepted: NDArray[np.bool_]
    late: NDArray[np.bool_]
    called: Int64Array

    @property
    def counts(self) -> dict[str, int]:
        """How many calls of each kind (``late_accepted`` as in the feature stage)."""
        return {
            "calls": len(self.rows),
            "replayed": int(self.replayed.sum()),
            "duplicates": int(self.duplicate.sum()),
            "late_dropped": int(self.dropped.sum()),
            "accepted": int(self.accepted.sum()),
            "late_accepted": int(self.late.sum()),
        }


class CallerBlock:
    """Many callers' streaming state (see the module docstring)."""

    def __init__(self, config: FeatureConfig, capacity: int = 1024) -> None:
        self.config = config
        self.callers = RecordPool(capacity, caller_layout(config))
        self.slots = RecordPool(2 * capacity, slot_layout(config))
        # Callers by number key (contracts.number_keys): the compiled index, and
        # each row's key and text (the text for the table, flags and people).
        self._index = KeyIndex(capacity)
        self._keys = np.full(self.callers.capacity, -1, np.int64)
        self._numbers: list[str | None] = []
        self._message_offset: int | None = None
        self._opened: set[int] = set()
        self._ring_slots = ring_slots(config)
        self.fingerprint = layout_fingerprint(config)
        short, long = config.windows
        # (window, first column of its ring slots in the caller table)
        self._windows: tuple[tuple[WindowSpec, int], ...] = ((short, 0), (long, short.slots))
        self._hops_ms = np.array([window.hop_ms for window, _ in self._windows], np.int64)
        self._ring_lengths = np.array([window.slots for window, _ in self._windows], np.int64)
        self._first_columns = np.array([first for _, first in self._windows], np.int64)

    # -- callers -------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, number: object) -> bool:
        return self.row(number) is not None  # type: ignore[arg-type]

    def numbers(self) -> list[str]:
        """Every number with state in the block."""
        return self.numbers_of(self.held_rows())

    def keys(self) -> Int64Array:
        """The key of every number with state in the block (in row order)."""
        return self._keys[self.held_rows()]

    def held_rows(self) -> Int64Array:
        """Every row that holds a caller, ascending."""
        return np.flatnonzero(self._keys >= 0)

    def row(self, number: str | int) -> int | None:
        """The row of ``number`` (text or key), if it has state."""
        try:
            key = number_key(number) if isinstance(number, str) else int(number)
        except (TypeError, ValueError):
            return None
        if key < 0:
            return None
        row = int(self._index.get(np.array([key], np.int64))[0])
        return None if row < 0 else row

    def number(self, row: int) -> str:
        """The number whose state is in ``row``."""
        number = self._numbers[row] if row < len(self._numbers) else None
        if number is None:
            raise KeyError(f"row {row} holds no caller")
        return number

    def numbers_of(self, rows: Int64Array) -> list[str]:
        """The number whose state is in each of ``rows`` (rows that hold a caller)."""
        numbers = self._numbers
        found = [numbers[row] for row in rows.tolist()]
        if None in found:
            raise KeyError(f"row {int(rows[found.index(None)])} holds no caller")
        return found  # type: ignore[return-value]

    def keys_of(self, rows: Int64Array) -> Int64Array:
        """The number key of each of ``rows`` (-1 for a row that holds no caller)."""
        return self._keys[rows]

    def rows_of(
        self, numbers: Sequence[str] | Sequence[int] | Int64Array, *, create: bool
    ) -> Int64Array:
        """Each number's row (texts or keys); new rows for unknown ones if ``create``, else -1."""
        keys = as_keys(numbers)
        rows = self._index.get(keys)
        return self._create_missing(keys, rows) if create else rows

    def rows_again(
        self, numbers: Sequence[str] | Sequence[int] | Int64Array, rows: Int64Array, *,
        create: bool,
    ) -> Int64Array:
        """``rows``, looked up before for ``numbers``, with its -1 entries looked up again.

        As ``rows_of(numbers, create=create)``, looking up only the numbers
        that had no row then (made now if ``create``).
        """
        missing = np.flatnonzero(rows < 0)
        if not len(missing):
            return rows
        rows = rows.copy()
        if isinstance(numbers, np.ndarray):
            rows[missing] = self.rows_of(numbers[missing], create=create)
        else:
            wanted: list[str] | list[int] = [numbers[i] for i in missing.tolist()]  # type: ignore[assignment]
            rows[missing] = self.rows_of(wanted, create=create)
        return rows

    def _create_missing(self, keys: Int64Array, rows: Int64Array) -> Int64Array:
        """Fill the -1 entries of ``rows`` with new rows (a row per distinct key, in order)."""
        missing = np.flatnonzero(rows < 0)
        if len(missing):
            wanted = keys[missing]
            distinct, first = np.unique(wanted, return_index=True)
            new_keys = distinct[np.argsort(first, kind="stable")]
            self._register(new_keys, self.callers.allocate(len(new_keys)))
            rows[missing] = self._index.get(wanted)
        return rows

    def _register(
        self, keys: Int64Array, rows: Int64Array, numbers: list[str] | None = None
    ) -> None:
        capacity = self.callers.capacity
        if len(self._numbers) < capacity:
            self._numbers.extend([None] * (capacity - len(self._numbers)))
        if len(self._keys) < capacity:
            grown = np.full(capacity, -1, np.int64)
            grown[: len(self._keys)] = self._keys
            self._keys = grown
        texts = number_texts(keys) if numbers is None else numbers
        self._index.insert(keys, rows)
        self._keys[rows] = keys
        held = self._numbers
        for number, row in zip(texts, rows.tolist(), strict=True):
            held[row] = number

    def distinct(self, rows: Int64Array) -> Int64Array:
        """``np.unique`` of caller rows (ascending, each once)."""
        return distinct_rows(rows, self.callers.capacity)[0]

    def column(self, name: str) -> NDArray[np.generic]:
        """One caller column (e.g. ``watermark``, ``last_offset``), indexed by row."""
        return self.callers.columns[name]

    def default_end_ms(self, rows: Int64Array) -> Int64Array:
        """End of the short bucket holding each row's watermark: the window "now"."""
        hop_ms = self.config.short_hop_s * 1000
        watermark = self.callers.columns["watermark"][rows]
        return (watermark // hop_ms + 1) * hop_ms

    def features(
        self, rows: Int64Array, end_ms: Int64Array | int | None = None
    ) -> NDArray[np.float64]:
        """``(len(rows), len(WINDOW_FEATURE_NAMES))``: window features (features.block.read)."""
        return block_features(self, rows, end_ms)

    def window_calls(self, rows: Int64Array, name: str = "short") -> Int64Array:
        """Calls of each row in its ``name`` window ending at :meth:`default_end_ms`.

        The ``call_volume`` of that window in :meth:`features`, read from the
        ring alone (see :func:`features.block.read.window_calls`).
        """
        return window_calls(self, rows, self.default_end_ms(rows), name)

    # -- exactly-once --------------------------------------------------------

    def begin(self, offset: int) -> None:
        """Start applying the message at ``offset`` (:meth:`update` does it).

        Until the next ``begin``, a caller the message has opened stays open
        to the message's later parts (complaints, inbound notes).
        """
        self._message_offset = offset
        self._opened = set()

    def open(self, rows: Int64Array, offset: int) -> NDArray[np.bool_]:
        """Which of ``rows`` the current message (at ``offset``) may change.

        A row is open if this message already opened it, or if its
        ``last_offset`` is before ``offset``; then its ``last_offset`` becomes
        ``offset``. A row already at ``offset`` when the message begins is
        closed: the message was applied before (a replay).
        """
        if offset != self._message_offset:
            self.begin(offset)
        last_offset = self.callers.columns["last_offset"]
        unique, inverse = distinct_rows(rows, self.callers.capacity, inverse=True)
        opened = np.fromiter((row in self._opened for row in unique.tolist()), bool, len(unique))
        newly = ~opened & (last_offset[unique] < offset)
        last_offset[unique[newly]] = offset
        self._opened.update(unique[newly].tolist())
        return (opened | newly)[inverse]

    def _open_each(self, rows: Int64Array, offsets: Int64Array) -> NDArray[np.bool_]:
        """Replay mask for calls with their own (ascending) offsets; advances the offsets."""
        last_offset = self.callers.columns["last_offset"]
        replayed = offsets <= last_offset[rows]
        live = np.flatnonzero(~replayed)
        np.maximum.at(last_offset, rows[live], offsets[live])
        self.begin(int(offsets.max()) if len(offsets) else -1)
        self._opened.update(rows[live][offsets[live] == self._message_offset].tolist())
        return replayed

    # -- calls ---------------------------------------------------------------

    def update(
        self,
        numbers: Sequence[str] | Sequence[int] | Int64Array,
        calls: CallBatch,
        cdr_fingerprints: NDArray[np.uint32],
        offset: int | Int64Array,
        *,
        rows: Int64Array | None = None,
        continued: bool = False,
    ) -> BlockUpdate:
        """Apply one message's calls (``numbers[i]`` placed call ``i``), in arrival order.

        Call it once per message, first (with no calls if the message has
        none): it begins the message (see :meth:`begin`).

        ``offset`` may also be one offset per call, ascending: the calls of
        several consecutive messages applied as one batch (for sources that
        send one CDR per message). A call is then replayed if its caller's
        offset had reached the call's own offset; the features are those of
        the same calls applied as one message.

        ``rows``: what ``rows_of(numbers, create=False)`` returns now, if the
        caller has it (saves looking every number up again). ``continued``:
        these calls are a later piece of the message the previous call
        began (callers it opened stay open), not a replay of it.
        """
        if len(numbers) != len(calls) or len(cdr_fingerprints) != len(calls):
            raise ValueError("numbers, calls and fingerprints must have one entry per call")
        if rows is None:
            rows = self.rows_of(numbers, create=True)
        elif (rows < 0).any():
            rows = self._create_missing(as_keys(numbers), rows.copy())
        size = len(rows)
        if np.ndim(offset) == 0:
            if not continued or offset != self._message_offset:
                self.begin(int(offset))
            replayed = ~self.open(rows, int(offset)) if size else np.zeros(0, bool)
        else:
            replayed = self._open_each(rows, np.asarray(offset, dtype=np.int64))
        ids = np.asarray(cdr_fingerprints, np.uint32)
        fresh = np.zeros(size, bool)
        dropped = np.zeros(size, bool)
        late = np.zeros(size, bool)
        unchained = np.zeros(size, bool)
        candidates = np.flatnonzero(~replayed)
        if len(candidates):
            # Per caller in arrival order: new ids, the watermark each call met.
            columns = self.callers.columns
            admit_calls(
                candidates[np.argsort(rows[candidates], kind="stable")],
                rows, ids, calls.start_ms, calls.ended_ms, self.config.grace_s * 1000,
                columns["watermark"], columns["recent"], columns["recent_n"],
                columns["recent_next"], fresh, dropped, late, unchained,
            )
        accepted = fresh & ~dropped
        chosen = np.flatnonzero(accepted)
        if len(chosen):
            taken = calls.take(chosen)
            self._count(rows[chosen], taken)
            chained = ~unchained[chosen]
            if chained.any():
                self._hold_back(
                    rows[chosen][chained], taken.start_ms[chained], taken.callee[chained]
                )
        if fresh.any():
            self._release_complaints(self.distinct(rows[fresh]))
        return BlockUpdate(
            rows=rows,
            replayed=replayed,
            duplicate=~replayed & ~fresh,
            dropped=dropped,
            accepted=accepted,
            late=late,
            called=self.distinct(rows[chosen]),
        )

    def _count(self, rows: Int64Array, calls: CallBatch) -> None:
        """Add calls to the bucket of each window they fall in (claiming slots).

        One compiled pass (:func:`features.block.ring_kernel.count_into_rings`);
        the slot pool grows between passes when its free records run out.
        """
        callers, slots = self.callers.columns, self.slots
        held, records = callers["bucket"].reshape(-1), callers["slot"].reshape(-1)
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        done = 0
        while done < len(rows):
            free, free_top = slots.free_stack()
            columns = slots.columns
            done, free_top = count_into_rings(
                done, rows, calls.start_ms, calls.flags, calls.segment_bin, calls.callee_hash,
                self._hops_ms, self._ring_lengths, self._first_columns, self._ring_slots,
                held, records, columns["counters"], columns["segment_hist"],
                columns["kmv_hash"], columns["kmv_count"], free, free_top,
            )
            slots.taken_from_stack(free_top)
            if done < len(rows):
                slots.reserve(len(self._hops_ms))  # grows by half the pool, as allocate does

    def _claim(self, cells: Int64Array, buckets: Int64Array) -> Int64Array:
        """Open ``buckets`` in their ring cells where newer than the held bucket.

        Returns the bucket each cell holds afterwards (calls for older buckets
        are dropped, as ``CallerState._claim_slot`` does).
        """
        held = self.callers.columns["bucket"].reshape(-1)
        records = self.callers.columns["slot"].reshape(-1)
        newer = buckets > held[cells]
        claimed = cells[newer]
        held[claimed] = buckets[newer]
        reused = records[claimed]
        self.slots.clear(reused[reused >= 0])
        empty = claimed[reused < 0]
        if len(empty):
            records[empty] = self.slots.allocate(len(empty))
        return held[cells]

    # -- the reorder buffer and the call chain -------------------------------

    def _hold_back(
        self, rows: Int64Array, start_ms: Int64Array, callee: NDArray[np.uint64]
    ) -> None:
        """Buffer the accepted calls; chain what the watermark has settled."""
        columns = self.callers.columns
        settled_rows, settled_ms, settled_keys = hold_back_calls(
            np.argsort(rows, kind="stable"),
            np.ascontiguousarray(rows, dtype=np.int64),
            np.ascontiguousarray(start_ms, dtype=np.int64),
            np.ascontiguousarray(callee, dtype=np.uint64),
            self.config.grace_s * 1000,
            columns["watermark"], columns["pending_ms"], columns["pending_key"],
            columns["pending_n"],
        )
        if len(settled_rows):
            self._chain(settled_rows, settled_ms, settled_keys)

    def _chain(self, rows: Int64Array, start_ms: Int64Array, callee: NDArray[np.uint64]) -> None:
        """Chain settled calls (sorted by caller, time, callee) into the buckets that hold them.

        One compiled pass (:func:`features.block.ring_kernel.chain_into_rings`):
        the calls of a caller's short bucket form a part, merged in order into
        each window's bucket as :func:`features.aggregate.merge_row` merges a later row.
        """
        chain_into_rings(
            np.ascontiguousarray(rows, dtype=np.int64),
            np.ascontiguousarray(start_ms, dtype=np.int64),
            np.ascontiguousarray(callee).astype(np.int64),
            self.config.short_hop_s * 1000,
            self.config.sequential_max_gap,
            self._hops_ms, self._ring_lengths, self._first_columns, self._ring_slots,
            self.callers.columns["bucket"].reshape(-1),
            self.callers.columns["slot"].reshape(-1),
            self.slots.columns["counters"],
        )

    # -- complaints and inbound calls ----------------------------------------

    def note_complaints(
        self, numbers: Sequence[str], time_ms: Int64Array, offset: int
    ) -> NDArray[np.bool_]:
        """Count complaints about ``numbers`` at their report times (arrival order).

        Returns which complaints landed in the short window's ring or were held
        (what ``CallerState.note_complaints`` counts); replayed ones do not land.
        A complaint dated after its caller's watermark short bucket is held
        until the watermark reaches it, as ``CallerState.note_complaints`` does.
        """
        time_ms = np.asarray(time_ms, dtype=np.int64)
        rows = self.rows_of(numbers, create=True)
        landed = np.zeros(len(rows), bool)
        if len(rows) == 0:
            return landed
        live = np.flatnonzero(self.open(rows, offset))
        rows, time_ms = rows[live], time_ms[live]
        short_hop_ms = self.config.short_hop_s * 1000
        buckets = time_ms // short_hop_ms
        ahead = buckets > self.callers.columns["watermark"][rows] // short_hop_ms
        if ahead.any():
            self._hold_complaints(rows[ahead], buckets[ahead])
            landed[live[ahead]] = True
        now = np.flatnonzero(~ahead)
        landed[live[now]] = self._land_complaints(
            rows[now], time_ms[now], np.ones(len(now), np.int64)
        )
        return landed

    def _land_complaints(
        self, rows: Int64Array, time_ms: Int64Array, counts: Int64Array
    ) -> NDArray[np.bool_]:
        """Add ``counts[i]`` complaints at ``time_ms[i]`` to ``rows[i]``, in order.

        Returns which landed in the short ring (a newer bucket in their slot drops them).
        """
        landed = np.zeros(len(rows), bool)
        if len(rows) == 0:
            return landed
        held = self.callers.columns["bucket"].reshape(-1)
        records = self.callers.columns["slot"].reshape(-1)
        for window, first_column in self._windows:
            buckets = time_ms // window.hop_ms
            cells = rows * self._ring_slots + first_column + buckets % window.slots
            order = np.lexsort((np.arange(len(cells)), cells))
            sorted_cells, sorted_buckets = cells[order], buckets[order]
            starts = run_starts(sorted_cells)
            before = held[sorted_cells[starts]]
            if first_column == 0:
                # In arrival order, a complaint lands if no newer bucket holds its slot.
                seen = segmented_cummax(sorted_buckets, starts)
                met = np.empty_like(seen)
                met[1:] = seen[:-1]
                met[starts] = before
                met = np.maximum(met, np.repeat(before, run_lengths(starts, len(order))))
                landed[order[sorted_buckets >= met]] = True
            newest = self._claim(sorted_cells[starts], np.maximum.reduceat(sorted_buckets, starts))
            landing = sorted_buckets == np.repeat(newest, run_lengths(starts, len(order)))
            counters = self.slots.columns["counters"]  # after _claim: the pool may have grown
            added = counts[order][landing]
            np.add.at(counters[:, COMPLAINTS], records[sorted_cells[landing]], added)
        return landed

    def _hold_complaints(self, rows: Int64Array, buckets: Int64Array) -> None:
        """Hold one complaint per entry for a future short bucket (as ``CallerState`` does).

        Per row, the :data:`HELD_COMPLAINTS` oldest buckets are kept in
        ascending order; complaints of later buckets join the last kept one.
        """
        columns = self.callers.columns
        held_bucket, held_count, held_n = (
            columns["held_bucket"],
            columns["held_count"],
            columns["held_n"],
        )
        unique = np.unique(rows)
        count = held_n[unique].astype(np.int64)
        waiting = np.arange(HELD_COMPLAINTS) < count[:, None]
        all_rows = np.concatenate((np.repeat(unique, count), rows))
        all_buckets = np.concatenate((held_bucket[unique][waiting], buckets))
        all_counts = np.concatenate(
            (held_count[unique][waiting].astype(np.int64), np.ones(len(rows), np.int64))
        )
        order = np.lexsort((all_buckets, all_rows))
        all_rows, all_buckets, all_counts = all_rows[order], all_buckets[order], all_counts[order]
        distinct = run_starts(all_rows, all_buckets)
        rows_d, buckets_d = all_rows[distinct], all_buckets[distinct]
        counts_d = np.add.reduceat(all_counts, distinct)
        rank = np.minimum(rank_in_group(run_starts(rows_d), len(rows_d)), HELD_COMPLAINTS - 1)
        kept = run_starts(rows_d, rank)
        held_bucket[unique] = NO_BUCKET
        held_count[unique] = 0
        held_bucket[rows_d[kept], rank[kept]] = buckets_d[kept]
        held_count[rows_d[kept], rank[kept]] = np.add.reduceat(counts_d, kept)
        held_n[unique] = run_lengths(run_starts(rows_d[kept]), len(kept))

    def _release_complaints(self, rows: Int64Array) -> None:
        """Land held complaints whose short bucket the watermark of ``rows`` has reached."""
        columns = self.callers.columns
        held_n = columns["held_n"]
        rows = rows[held_n[rows] > 0]
        if len(rows) == 0:
            return
        short_hop_ms = self.config.short_hop_s * 1000
        held_bucket, held_count = columns["held_bucket"], columns["held_count"]
        count = held_n[rows].astype(np.int64)
        waiting = np.arange(HELD_COMPLAINTS) < count[:, None]
        due = waiting & (held_bucket[rows] <= (columns["watermark"][rows] // short_hop_ms)[:, None])
        owner, position = np.nonzero(due)
        if len(owner) == 0:
            return
        self._land_complaints(
            rows[owner],
            held_bucket[rows[owner], position] * short_hop_ms,
            held_count[rows[owner], position].astype(np.int64),
        )
        self._drop_held(rows, due.sum(axis=1))

    def _drop_held(self, rows: Int64Array, dropped: Int64Array) -> None:
        """Remove the first (oldest) ``dropped[i]`` held complaints of ``rows[i]``."""
        self._drop_first(rows, dropped, "held_n", {"held_bucket": NO_BUCKET, "held_count": 0})

    def _drop_first(
        self, rows: Int64Array, dropped: Int64Array, count_name: str, fills: dict[str, int]
    ) -> None:
        """Shift out the first ``dropped[i]`` entries of ``rows[i]`` in columns kept as prefixes.

        ``count_name`` holds each row's entries; ``fills`` names the columns
        and the value of an empty entry.
        """
        columns = self.callers.columns
        count = columns[count_name][rows].astype(np.int64)
        capacity = columns[next(iter(fills))].shape[1]
        position = np.arange(capacity)[None, :] + dropped[:, None]
        inside = position < count[:, None]
        source = np.minimum(position, capacity - 1)
        for name, fill in fills.items():
            values = columns[name][rows]
            shifted = np.full_like(values, fill)
            shifted[inside] = np.take_along_axis(values, source, axis=1)[inside]
            columns[name][rows] = shifted
        columns[count_name][rows] = count - dropped

    def note_inbound(
        self,
        numbers: Sequence[str],
        caller_keys: NDArray[np.uint64],
        time_ms: Int64Array,
        offset: int | None = None,
        frontier_ms: int | None = None,
    ) -> int:
        """Record that ``caller_keys[i]`` called ``numbers[i]`` at ``time_ms[i]``.

        Every number learns it, with or without calls of its own (a row is
        made for a number the block does not hold), as in the feature stage.
        Returns how many notes were applied. With ``offset``, the noted rows
        count as touched by that message (their offset advances);
        ``frontier_ms`` as in :meth:`note_inbound_rows`.
        """
        return self.note_inbound_rows(
            self.rows_of(numbers, create=True),
            np.asarray(caller_keys, dtype=np.uint64),
            np.asarray(time_ms, dtype=np.int64),
            offset,
            frontier_ms,
        )

    def note_inbound_rows(
        self,
        rows: Int64Array,
        caller_keys: NDArray[np.uint64],
        time_ms: Int64Array,
        offset: int | None = None,
        frontier_ms: int | None = None,
    ) -> int:
        """:meth:`note_inbound` for numbers already mapped to their rows (all held).

        As :meth:`features.reference.state.CallerState.note_inbound`: a call at or
        after ``frontier_ms`` (no window ending at or before it is emitted
        again; None: not known) waits in the row's inbox with its time, the
        others join the inbound filter; when an inbox would hold more than
        ``inbound_pending`` calls, its oldest join the filter.
        """
        if len(rows) == 0:
            return 0
        if offset is not None:
            self.open(rows, offset)
        rows = np.asarray(rows, dtype=np.int64)
        hashes = key_hash32(np.asarray(caller_keys, dtype=np.uint64))
        times = np.asarray(time_ms, dtype=np.int64)
        columns = self.callers.columns
        capacity = columns["inbox_ms"].shape[1]
        unique = self.distinct(rows)
        held = np.arange(capacity) < columns["inbox_n"][unique].astype(np.int64)[:, None]
        owner = np.nonzero(held)[0]
        every_row = np.concatenate((unique[owner], rows))
        every_ms = np.concatenate((columns["inbox_ms"][unique][held], times))
        every_hash = np.concatenate((columns["inbox_hash"][unique][held], hashes))
        order = np.lexsort((every_hash, every_ms, every_row))
        settle_inboxes(
            every_row[order], every_ms[order], every_hash[order],
            np.iinfo(np.int64).min if frontier_ms is None else int(frontier_ms),
            self.config.inbound_generation_s * 1000, BLOOM_HASHES,
            columns["inbox_ms"], columns["inbox_hash"], columns["inbox_n"],
            columns["inbound"], columns["inbound_generation"],
        )
        return len(rows)

    # -- expiry --------------------------------------------------------------

    def expire(self, now_ms: int) -> list[str]:
        """Drop buckets no window ending after ``now_ms`` needs; free and return empty callers.

        Per caller, what ``CallerState.expire`` does; a caller whose buckets,
        buffer, inbound filter and held complaints are all empty is removed
        from the block.
        """
        return self.expire_rows(now_ms)[0]

    def expire_rows(
        self, now_ms: int, rows: Int64Array | None = None
    ) -> tuple[list[str], Int64Array]:
        """:meth:`expire`, also returning the rows it changed and kept (for the changelog).

        ``rows`` limits it to those callers (default: every caller held).
        """
        if rows is None:
            rows = self.held_rows()
        if len(rows) == 0:
            return [], rows
        config, columns = self.config, self.callers.columns
        held, records = columns["bucket"], columns["slot"]
        changed = []
        for window, first_column in self._windows:
            oldest = -(-now_ms // window.hop_ms) - window.buckets_per_window
            ring = slice(first_column, first_column + window.slots)
            stale = (held[rows, ring] < oldest) & (held[rows, ring] != NO_BUCKET)
            stale_rows, stale_slots = np.nonzero(stale)
            cells = rows[stale_rows], first_column + stale_slots
            self.slots.release(records[cells])
            held[cells] = NO_BUCKET
            records[cells] = -1
            changed.append(rows[stale_rows])
        pending_n = columns["pending_n"]
        buffered = rows[pending_n[rows] > 0]
        newest = columns["pending_ms"][buffered, pending_n[buffered].astype(np.int64) - 1]
        flushed = buffered[newest < now_ms - config.long_window_s * 1000]
        pending_n[flushed] = 0
        generation = now_ms // (config.inbound_generation_s * 1000)
        current = columns["inbound_generation"][rows]
        old = rows[(current < generation - 1) & (current != NO_BUCKET)]
        columns["inbound"][old] = 0
        columns["inbound_generation"][old] = NO_BUCKET
        changed.extend((flushed, old, self._expire_held(rows, now_ms)))
        changed.append(self._expire_inbox(rows, generation))
        empty = (
            (held[rows] == NO_BUCKET).all(axis=1)
            & (pending_n[rows] == 0)
            & ~columns["inbound"][rows].any(axis=1)
            & (columns["held_n"][rows] == 0)
            & (columns["inbox_n"][rows] == 0)
        )
        kept = np.setdiff1d(np.concatenate(changed), rows[empty])
        return self.remove(rows[empty]), kept

    def _expire_inbox(self, rows: Int64Array, generation: int) -> Int64Array:
        """Drop inbox calls older than the previous inbound generation; the rows changed."""
        columns = self.callers.columns
        rows = rows[columns["inbox_n"][rows] > 0]
        if len(rows) == 0:
            return rows
        count = columns["inbox_n"][rows].astype(np.int64)
        capacity = columns["inbox_ms"].shape[1]
        held = np.arange(capacity) < count[:, None]
        generation_ms = self.config.inbound_generation_s * 1000
        stale = held & (columns["inbox_ms"][rows] // generation_ms < generation - 1)
        dropped = stale.sum(axis=1)  # a prefix: the inbox is in time order
        rows, dropped = rows[dropped > 0], dropped[dropped > 0]
        self._drop_first(rows, dropped, "inbox_n", {"inbox_ms": 0, "inbox_hash": 0})
        return rows

    def _expire_held(self, rows: Int64Array, now_ms: int) -> Int64Array:
        """Drop held complaints older than every long window ending after ``now_ms``."""
        columns = self.callers.columns
        held_n = columns["held_n"]
        rows = rows[held_n[rows] > 0]
        if len(rows) == 0:
            return rows
        long = self.config.windows[1]
        oldest_long = -(-now_ms // long.hop_ms) - long.buckets_per_window
        short_hop_ms = self.config.short_hop_s * 1000
        waiting = np.arange(HELD_COMPLAINTS) < held_n[rows][:, None]
        long_bucket = (columns["held_bucket"][rows] * short_hop_ms) // long.hop_ms
        stale = waiting & (long_bucket < oldest_long)  # a prefix: buckets ascend
        dropped = stale.sum(axis=1)
        self._drop_held(rows[dropped > 0], dropped[dropped > 0])
        return rows[dropped > 0]

    def remove(self, rows: Int64Array) -> list[str]:
        """Free ``rows`` (their slots too); returns their numbers."""
        records = self.callers.columns["slot"][rows]
        self.slots.release(records[records >= 0])
        numbers = [self.number(row) for row in rows.tolist()]
        self._index.remove(self._keys[rows])
        self._keys[rows] = -1
        for row in rows.tolist():
            self._numbers[row] = None
            self._opened.discard(row)
        self.callers.release(rows)
        return numbers

    def compact(self, slack: float = 1.0, floor: int = 1024) -> bool:
        """Give back memory after many callers left: whether it did.

        A pool whose capacity exceeds its records in use by more than
        ``slack`` of them (and by ``floor`` records) is cut to half again
        what it uses; records move to the front, so rows change (and the
        slot references in the callers' rows with them). Call it between
        messages, not while one is applied. The defaults leave a pool alone
        between half full and full, and leave room for half again as many
        after a cut: a block whose callers come and go (evicted, loaded
        back) neither shrinks nor grows at every turn (each is a copy of
        the pool).
        """
        done = False
        for pool in (self.slots, self.callers):
            if pool.capacity - pool.used <= max(floor, slack * pool.used):
                continue
            remap = pool.compact(pool.used + max(16, pool.used // 2))
            done = True
            if pool is self.slots:
                held = self.callers.columns["slot"]
                held[held >= 0] = remap[held[held >= 0]]
                continue
            numbers = self._numbers
            kept = np.flatnonzero(remap >= 0)
            moved: list[str | None] = [numbers[row] for row in kept.tolist()]
            self._numbers = moved + [None] * (self.callers.capacity - len(moved))
            keys = np.full(self.callers.capacity, -1, np.int64)
            keys[: len(kept)] = self._keys[kept]
            self._keys = keys
            self._index.clear()
            self._index.insert(keys[: len(kept)], np.arange(len(kept), dtype=np.int64))
            self._opened = set()
        return done

    # -- bytes for the changelog ----------------------------------------------

    def row_bytes(self, row: int) -> bytes:
        """The changelog value of ``row`` (see :mod:`features.block.rows`)."""
        return row_bytes(self, row)

    def rows_bytes(self, rows: Int64Array) -> list[bytes]:
        """:meth:`row_bytes` of many rows, built at once (for batches: see ``rows_bytes``)."""
        return rows_bytes(self, rows)

    def load_row(self, number: str, data: bytes) -> int:
        """Restore ``number`` from :meth:`row_bytes` output (replacing its state); its row."""
        key = np.array([number_key(number)], np.int64)
        existing = self.row(int(key[0]))
        if existing is not None:
            self.remove(np.array([existing]))
        row = int(self.callers.allocate(1)[0])
        try:
            load_row_bytes(self, row, data)
        except Exception:
            self.callers.release(np.array([row]))
            raise
        self._register(key, np.array([row]), [number])
        return row

    def load_rows(
        self, numbers: list[str], datas: list[bytes], keys: Int64Array | None = None
    ) -> Int64Array:
        """:meth:`load_row` for many numbers the block does not hold, at once; their rows.

        ``keys``: the numbers' keys, if the caller has them. Rows that the
        batch reader does not take (version 2 rows, malformed ones) are
        loaded one by one instead, which names what is wrong.
        """
        keys = number_keys(numbers) if keys is None else keys
        if len(np.unique(keys)) != len(keys) or (self._index.get(keys) >= 0).any():
            raise ValueError("load_rows takes distinct numbers the block does not hold")
        rows = np.empty(len(numbers), np.int64)
        for first in range(0, len(numbers), _LOAD_AT_ONCE):
            part = slice(first, first + _LOAD_AT_ONCE)
            chunk, data = numbers[part], datas[part]
            taken = self.callers.allocate(len(chunk))
            try:
                load_rows_bytes(self, taken, data)
            except ValueError:  # checked before anything is written: load one by one
                self.callers.release(taken)
                rows[part] = [
                    self.load_row(number, row) for number, row in zip(chunk, data, strict=True)
                ]
                continue
            self._register(keys[part], taken, chunk)
            rows[part] = taken
        return rows

    # -- size ----------------------------------------------------------------

    def bytes_per_caller(self) -> float:
        """Bytes held per caller: its record plus its share of slot records."""
        if not len(self):
            return float(self.callers.record_bytes)
        return self.callers.record_bytes + self.slots.used * self.slots.record_bytes / len(self)


def warm_up_kernels() -> float:
    """Compile the state kernels (or load them from numba's disk cache); seconds it took.

    Applies two calls of a fresh caller (the second settles the first into
    the chain), notes a call to it, reads its features, packs its row
    (:meth:`CallerBlock.rows_bytes`) and loads it into another block, so the
    kernels are ready for the argument types the worker's messages,
    emissions, checkpoints and loads pass.
    """
    started = time.perf_counter()
    warm_up_index()
    config = FeatureConfig()
    block = CallerBlock(config)
    number = "+8613800138000"
    later = (config.grace_s + 1) * 1000
    rows = block.update([number, number], CallBatch.from_arrays(
        config, start_ms=[0, later], callee=[8613800138001, 8613800138003],
        duration_s=[1.0, 1.0], answered=[True, False], ring_s=[np.nan, 2.0],
    ), np.array([1, 2], np.uint32), 0).rows[:1]
    block.note_inbound_rows(rows, np.array([8613800138002], np.uint64), np.array([0], np.int64))
    block.features(rows, end_ms=config.short_hop_s * 1000)
    CallerBlock(config).load_rows([number], block.rows_bytes(rows))
    return time.perf_counter() - started
