"""The reference feature stage: apply one ``cdr.by_caller`` message to per-caller records.

The records stage of the reference engine: one
:class:`~features.reference.caller_record.CallerRecord` per caller, as bytes
in a ``MutableMapping[str, bytes]``. The worker runs
:mod:`streams.stages.block_stage`; this stage is what the tests and
benchmarks compare it with (same stats, same emission, bit for bit).

Emission (which callers go on to scoring, and when): driven by event time,
not by arrival. Each ``cdr.by_caller`` partition has a clock
(:class:`~streams.stages.event_clock.OpenBuckets`): once the partition's watermark
has passed a short bucket's end by the grace, every caller that called in
that bucket is a candidate, with its features at the bucket's end, and
:class:`~features.emission.EmissionPolicy` keeps those with a burst (at least ``min_calls``
calls in the short window) or a steady activity (at least
``min_long_calls`` in the long window). So each caller is scored at most
once per short hop, on the same rows whatever the arrival speed or
batching, an occasional caller is never scored, and an idle caller is not
re-scored: its flag, if any, lapses by the flag lifecycle
(:mod:`models.decisions`). Training keeps exactly these rows
(:mod:`models.dataset`).
"""

from __future__ import annotations

from collections.abc import MutableMapping

import numpy as np
from numpy.typing import NDArray

from contracts.by_caller import RoutedBatch, with_number_texts
from features.batch import call_batch, callee_keys
from features.caller_number import caller_number_dict
from features.config import FeatureConfig
from features.emission import EmissionPolicy
from features.fingerprints import fingerprints
from features.reference.caller_record import CallerRecord
from features.vector import FEATURE_NAMES
from streams.pipeline.partitions import partitions_of
from streams.stages.caller_features import Emission
from streams.stages.event_clock import OpenBuckets, by_piece
from streams.stages.stage_stats import StageStats

__all__ = ["FeatureStage"]

_SHORT_VOLUME = FEATURE_NAMES.index("short_call_volume")
_LONG_VOLUME = FEATURE_NAMES.index("long_call_volume")


class FeatureStage:
    """Applies routed batches to a table of :class:`CallerRecord` bytes."""

    def __init__(
        self, config: FeatureConfig, policy: EmissionPolicy | None = None, partitions: int = 1
    ) -> None:
        self.config = config
        self.policy = policy or EmissionPolicy()
        self.clock = OpenBuckets(config.short_hop_s * 1000, config.grace_s * 1000)
        self.partitions = partitions  # of cdr.by_caller: which callers a partition's clock holds

    def load(self, table: MutableMapping[str, bytes], number: str) -> CallerRecord | None:
        """The stored record of ``number``, if any."""
        raw = table.get(number)
        return None if raw is None else CallerRecord.from_bytes(raw, self.config)

    def snapshot(self, number: str, table: MutableMapping[str, bytes]) -> dict[str, object] | None:
        """The caller's current features and clocks, read from the table."""
        record = self.load(table, number)
        if record is None:
            return None
        return {
            "window_end_ms": record.state.default_end_ms(),
            "watermark_ms": record.state.watermark_ms,
            "features": record.state.feature_dict() | caller_number_dict(number),
        }

    def apply(
        self,
        batch: RoutedBatch,
        offset: int,
        table: MutableMapping[str, bytes],
        partition: int = 0,
    ) -> tuple[StageStats, Emission]:
        """Apply one message read at ``offset`` of ``partition``; write back what it touched.

        The emission holds the callers of the buckets this message's calls
        closed (see the module doc).
        """
        batch = with_number_texts(batch)  # this stage keeps callers by their text
        stats = StageStats()
        touched: dict[str, CallerRecord] = {}
        prior_offset: dict[str, int] = {}
        if partition not in self.clock:
            self._recover_clock(table, partition)

        def record_of(number: str, create: bool) -> CallerRecord | None:
            record = touched.get(number)
            if record is None:
                record = self.load(table, number)
                if record is None and create:
                    record = CallerRecord.new(self.config)
                if record is not None:
                    touched[number] = record
            if record is not None and number not in prior_offset:
                prior_offset[number] = record.last_offset  # opened by this message
            return record

        calls, emission = batch.calls, Emission()
        pieces = self.clock.cuts(partition, calls.start_ms)
        notes = by_piece(pieces, calls.start_ms, batch.inbound.time_ms)
        complaints = by_piece(pieces, calls.start_ms, batch.complaints.time_ms)
        stats.calls = len(calls)
        for number, piece in enumerate(pieces):
            # Inbound notes before the calls they precede: rows emitted at the
            # message's cuts count the call-backs before their window's end
            # (see BlockFeatureStage._apply).
            self._apply_inbound(
                batch, notes[number], record_of, stats, self.clock.frontier(partition)
            )
            self._apply_calls(batch, piece, offset, record_of, prior_offset, stats)
            self._apply_complaints(
                batch, complaints[number], offset, record_of, prior_offset, stats
            )
            if number < len(pieces) - 1:  # calls that closed buckets (see OpenBuckets.cuts)
                self.clock.note(partition, calls.caller[piece], calls.start_ms[piece])
                emission.extend(self._emit(self.clock.closed(partition), touched, table, stats))
        for number in prior_offset:  # not the callers only emitted
            touched[number].last_offset = max(touched[number].last_offset, offset)
        last = pieces[-1]
        self.clock.note(partition, calls.caller[last], calls.start_ms[last])
        emission.extend(self._emit(self.clock.closed(partition), touched, table, stats))
        stats.emitted = len(emission)
        for number, record in touched.items():
            table[number] = record.to_bytes()
        stats.caller_writes = len(touched)
        return stats, emission

    def _recover_clock(self, table: MutableMapping[str, bytes], partition: int) -> None:
        """``BlockFeatureStage._recover_clock`` over records (decodes every caller)."""
        hop_ms = self.config.short_hop_s * 1000
        keys = list(table.keys())
        mine = np.flatnonzero(partitions_of(keys, self.partitions) == partition) if keys else []
        records = {keys[i]: self.load(table, keys[i]) for i in mine.tolist()} if keys else {}
        if not records:
            self.clock.restore(partition, None, [], [])
            return
        latest = max(record.state.watermark_ms for record in records.values())
        names, starts = [], []
        for number, record in records.items():
            assert record is not None  # noqa: S101  # the key was just listed
            for bucket in record.state.short_buckets().tolist():
                if (bucket + 1) * hop_ms > record.last_emitted_ms:
                    names.append(number)
                    starts.append(bucket * hop_ms)
        self.clock.restore(partition, latest, names, starts)

    def emit_idle(
        self,
        partition: int,
        buckets: list[tuple[int, list[str]]],
        table: MutableMapping[str, bytes],
    ) -> Emission:
        """A silent partition's open ``buckets`` as they stand.

        See :mod:`streams.stages.event_clock`.
        """
        touched: dict[str, CallerRecord] = {}
        emission = self._emit(buckets, touched, table, StageStats(), final=False)
        for number, record in touched.items():
            table[number] = record.to_bytes()
        return emission

    def _apply_calls(self, batch, piece, offset, record_of, prior_offset, stats) -> list[str]:  # type: ignore[no-untyped-def]
        calls = batch.calls
        if piece.stop <= piece.start:
            return []
        columns = call_batch(calls, self.config)
        ids = fingerprints(calls.cdr_id)
        called = []
        for number, rows in _group_rows(calls.caller[piece]):
            rows = rows + piece.start
            record = record_of(number, True)
            if prior_offset[number] >= offset:
                stats.replayed += len(rows)
                continue
            fresh = rows[record.unseen(ids[rows])]
            stats.duplicates += len(rows) - len(fresh)
            if not len(fresh):
                continue
            kept = fresh[
                self._not_too_late(record, columns.start_ms[fresh], columns.ended_ms[fresh])
            ]
            update = record.state.update(columns.take(fresh))
            # Only calls that counted may enter the ring: old ids dropped as late
            # (a resent backlog) must not push out the ids of the latest calls,
            # whose resends would then be counted twice.
            record.remember(ids[kept])
            stats.accepted += update.accepted
            stats.late_accepted += update.late_accepted
            stats.late_dropped += update.late_dropped
            if update.accepted:
                called.append(number)
        return called

    def _not_too_late(
        self, record: CallerRecord, start_ms: NDArray[np.int64], ended_ms: NDArray[np.int64]
    ) -> NDArray[np.bool_]:
        """Mask of calls (arrival order) that ``CallerState.update`` will not drop as late."""
        met = np.empty_like(start_ms)
        met[0] = record.state.watermark_ms
        np.maximum(np.maximum.accumulate(start_ms)[:-1], record.state.watermark_ms, out=met[1:])
        return ended_ms >= met - self.config.grace_s * 1000

    def _apply_complaints(self, batch, chosen, offset, record_of, prior_offset, stats) -> None:  # type: ignore[no-untyped-def]
        complaints = batch.complaints
        if not len(chosen):
            return
        times = np.asarray(complaints.time_ms, np.int64)[chosen]
        numbers = [complaints.number[index] for index in chosen.tolist()]
        for number, rows in _group_rows(numbers):
            record = record_of(number, True)
            if prior_offset[number] >= offset:
                continue
            stats.complaints += record.state.note_complaints(times[rows])

    def _apply_inbound(self, batch, chosen, record_of, stats, frontier_ms) -> None:  # type: ignore[no-untyped-def]
        # Adding to a Bloom filter is idempotent: replays need no guard. Every
        # called number learns who called it, with or without calls of its own,
        # so reciprocity does not depend on the order notes and calls arrive in.
        inbound = batch.inbound
        if not len(chosen):
            return
        times = np.asarray(inbound.time_ms, np.int64)[chosen]
        keys = callee_keys([inbound.from_number[index] for index in chosen.tolist()])
        numbers = [inbound.number[index] for index in chosen.tolist()]
        for number, rows in _group_rows(numbers):
            record = record_of(number, True)
            record.state.note_inbound(keys[rows], times[rows], frontier_ms)
            stats.inbound += len(rows)

    def _emit(
        self,
        closed: list[tuple[int, list[str]]],
        touched: dict[str, CallerRecord],
        table: MutableMapping[str, bytes],
        stats: StageStats,
        *,
        final: bool = True,
    ) -> Emission:
        """Features at each closed bucket's end of its callers the policy selects.

        A caller already emitted at that end (a replay after a restart) is
        not emitted again; one whose window the ring no longer holds (a
        message that carried it more than a hop past the end) is counted in
        ``stats.unemitted``. ``final``: the bucket is closed (the caller's
        ``last_emitted`` moves to its end); not so for a silent partition's.
        """
        emission = Emission()
        for end_ms, numbers in closed:
            for number in sorted(numbers):
                record = touched.get(number) or self.load(table, number)
                if record is None or record.last_emitted_ms >= end_ms:
                    continue
                try:
                    row = record.state.features(end_ms)
                except ValueError:
                    stats.unemitted += 1
                    continue
                if not self.policy.selects(row[[_SHORT_VOLUME]], row[[_LONG_VOLUME]])[0]:
                    continue
                if final:
                    record.last_emitted_ms = end_ms
                    touched[number] = record
                emission.numbers.append(number)
                emission.window_end_ms.append(end_ms)
                emission.rows.append(row)
        return emission


def _group_rows(names: list[str]) -> list[tuple[str, NDArray[np.intp]]]:
    """Row indices of each distinct name, rows in arrival order."""
    values = np.asarray(names)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(order)]
    return [(str(ordered[s]), order[s:e]) for s, e in zip(starts, ends, strict=True)]
