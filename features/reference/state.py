"""The reference engine's per-caller streaming state: rings of buckets for both windows.

:class:`CallerState` is one caller's state, as one object; the block engine
(:mod:`features.block`) holds the same for many callers as columns, and is
tested against it bit for bit. It holds

* a ring of ``slots`` bucket aggregates per window (short and long), each
  slot tagged with its bucket index (``start_ms // hop``); a bucket is
  replaced when a newer bucket needs its slot, which is how buckets expire;
* the watermark: the latest call start seen for this caller. A call that
  ended (start plus talk time) before ``watermark - grace`` is dropped and
  counted; any other lands in its bucket, if the ring still holds it. A
  record is written when its call ends, so a long call arrives after shorter
  ones that started later; judging by the end keeps it;
* the reorder buffer: the last calls (at most ``reorder_capacity``) not yet
  put in the gap and sequential-dialling chain. A call is chained once it
  is older than ``watermark - grace``: no call chained later can precede
  it (a long call accepted by its end after that point counts, but not in
  the chain), so the chain is in exact event-time order and matches the
  offline path. Features read the buffer too, so nothing waits to be counted. Only
  when more than ``reorder_capacity`` calls fall within the grace are the
  oldest chained early; a late call that then lands before them adds no gap
  and no pair (see :mod:`features.aggregate`);
* a two-generation Bloom filter of the numbers that called this caller
  (:meth:`CallerState.note_inbound`), for reciprocity;
* complaints dated after the watermark's short bucket, held as (short
  bucket, count) until the watermark reaches them (see
  :meth:`CallerState.note_complaints`).

Counts, sketches and complaints are applied at once; duplicates by
``cdr_id`` are dropped before a call reaches this state, by the feature
stage, from the fingerprints kept with each caller
(:mod:`features.reference.caller_record` for this engine,
:mod:`features.block.engine` for the block engine).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from features.aggregate import (
    CHAIN_LEN,
    COMPLAINTS,
    COUNTER_NAMES,
    FIRST_KEY,
    FIRST_MS,
    LAST_KEY,
    LAST_MS,
    Aggregates,
    aggregate_calls,
    chain_calls,
    combine,
    merge_row,
)
from features.batch import CallBatch, key_hash32
from features.config import HELD_COMPLAINTS, FeatureConfig, WindowName, WindowSpec
from features.runs import run_starts
from features.sketch import (
    EMPTY_HASH,
    bloom_add,
    bloom_contains,
    filter_half,
    inbound_numbers,
    inbox_counts,
)
from features.vector import WINDOW_FEATURE_NAMES, reciprocity, window_features

__all__ = ["CallerState", "UpdateStats"]

_NO_BUCKET = np.iinfo(np.int64).min
_NO_TIME = -(2**62)


@dataclass(frozen=True, slots=True)
class UpdateStats:
    """What one update did with its calls.

    ``late_accepted``: calls that arrived after a call of the same caller
    that started later, and ended within the grace of it (counted in the
    features). ``late_dropped``: calls that ended before the watermark minus
    the grace (not counted).
    """

    accepted: int
    late_accepted: int
    late_dropped: int


class CallerState:
    """One caller's buckets, reorder buffer and inbound filter (see the module docstring)."""

    __slots__ = (
        "_buckets",
        "_held_bucket",
        "_held_count",
        "_inbound",
        "_inbound_generation",
        "_inbox_hash",
        "_inbox_ms",
        "_pending_key",
        "_pending_ms",
        "_rings",
        "config",
        "watermark_ms",
    )

    def __init__(self, config: FeatureConfig) -> None:
        self.config = config
        self.watermark_ms = _NO_TIME
        windows = config.windows
        self._rings = tuple(Aggregates.empty(window.slots, config) for window in windows)
        self._buckets = tuple(np.full(window.slots, _NO_BUCKET, np.int64) for window in windows)
        self._pending_ms = np.empty(0, np.int64)
        self._pending_key = np.empty(0, np.uint64)
        self._inbound = np.zeros(2 * config.inbound_bloom_bits // 64, np.uint64)
        self._inbound_generation = _NO_BUCKET
        self._inbox_ms = np.empty(0, np.int64)  # calls not yet in the filter, ascending
        self._inbox_hash = np.empty(0, np.uint32)
        self._held_bucket = np.empty(0, np.int64)  # ascending short buckets
        self._held_count = np.empty(0, np.int64)

    # -- updates -----------------------------------------------------------

    def update(self, calls: CallBatch) -> UpdateStats:
        """Add this caller's calls, given in arrival order.

        Complaints held for short buckets the watermark has now reached land
        afterwards (see :meth:`note_complaints`).
        """
        stats = self._update(calls)
        if len(self._held_bucket):
            self._release_complaints()
        return stats

    def _update(self, calls: CallBatch) -> UpdateStats:
        config = self.config
        if len(calls) == 0:
            return UpdateStats(0, 0, 0)
        start_ms = calls.start_ms
        # The watermark each call met on arrival: the latest start before it.
        seen = np.maximum.accumulate(start_ms)
        met = np.empty_like(start_ms)
        met[0] = self.watermark_ms
        np.maximum(seen[:-1], self.watermark_ms, out=met[1:])
        # Late beyond the grace only if the call *ended* that long before: a CDR is
        # written at the call's end, so a long call arrives after shorter ones that
        # started later (a trunk's parallel calls) and is not late for that.
        # Such a call counts in every window but stays out of the gap and
        # sequential chain, which is settled up to the cutoff it started before.
        cutoff = met - config.grace_s * 1000
        dropped = calls.ended_ms < cutoff
        chained = start_ms >= cutoff
        late = int(np.count_nonzero(start_ms < met)) - int(np.count_nonzero(dropped))
        self.watermark_ms = max(self.watermark_ms, int(seen[-1]))
        n_dropped = int(np.count_nonzero(dropped))
        if n_dropped:
            calls, chained = calls.take(~dropped), chained[~dropped]
            if len(calls) == 0:
                return UpdateStats(0, 0, n_dropped)
        order = np.lexsort((calls.callee, calls.start_ms))
        calls, chained = calls.take(order), chained[order]
        self._count(calls, config)
        if chained.any():
            self._hold_back(calls.start_ms[chained], calls.callee[chained], config)
        return UpdateStats(len(calls), late, n_dropped)

    def _count(self, calls: CallBatch, config: FeatureConfig) -> None:
        short_hop_ms = config.short_hop_s * 1000
        short_buckets = calls.start_ms // short_hop_ms
        starts = run_starts(short_buckets)
        partial = aggregate_calls(calls, starts, config, chain=False)
        for group, first_row in enumerate(starts.tolist()):
            start_ms = int(calls.start_ms[first_row])
            for index, window in enumerate(config.windows):
                slot = self._claim_slot(index, window, start_ms // window.hop_ms)
                if slot is not None:
                    merge_row(self._rings[index], slot, partial, group, config)

    def _hold_back(
        self, start_ms: NDArray[np.int64], callee: NDArray[np.uint64], config: FeatureConfig
    ) -> None:
        pending_ms = np.concatenate((self._pending_ms, start_ms))
        pending_key = np.concatenate((self._pending_key, callee))
        order = np.lexsort((pending_key, pending_ms))
        pending_ms, pending_key = pending_ms[order], pending_key[order]
        settled = int(np.searchsorted(pending_ms, self.watermark_ms - config.grace_s * 1000))
        settled = max(settled, len(pending_ms) - config.reorder_capacity)
        if settled:
            self._chain(pending_ms[:settled], pending_key[:settled], config)
        self._pending_ms, self._pending_key = pending_ms[settled:], pending_key[settled:]

    def _chain(
        self, start_ms: NDArray[np.int64], callee: NDArray[np.uint64], config: FeatureConfig
    ) -> None:
        short_buckets = start_ms // (config.short_hop_s * 1000)
        starts = run_starts(short_buckets)
        partial = chain_calls(start_ms, callee, starts, config)
        for group, first_row in enumerate(starts.tolist()):
            first_ms = int(start_ms[first_row])
            for index, window in enumerate(config.windows):
                slot = self._find_slot(index, window, first_ms // window.hop_ms)
                if slot is not None:  # else the bucket expired before the call settled
                    merge_row(self._rings[index], slot, partial, group, config)

    def note_complaints(self, time_ms: NDArray[np.int64]) -> int:
        """Count complaints about this caller at their report times; returns how many landed.

        A complaint in the watermark's short bucket or before lands in each
        window whose ring still has (or can open) its bucket; complaints older
        than the ring are dropped. A complaint dated in a later short bucket
        (the caller has no calls that recent yet, or none at all) is held and
        lands when the watermark reaches its bucket, so it never opens a
        bucket ahead of the caller's calls: that would evict buckets the
        current windows need. Held complaints count as landed; they do not
        move the watermark. This is the offline path's rule
        (:func:`features.offline.compute_features`): a complaint counts in
        windows ending after its report time.
        """
        short_hop_ms = self.config.short_hop_s * 1000
        watermark_bucket = self.watermark_ms // short_hop_ms
        landed, ahead = 0, []
        for moment in np.asarray(time_ms, dtype=np.int64).tolist():
            if moment // short_hop_ms > watermark_bucket:
                ahead.append(moment // short_hop_ms)
                landed += 1
            else:
                landed += self._land_complaints(moment, 1)
        if ahead:
            self._hold_complaints(np.array(ahead, np.int64))
        return landed

    def _land_complaints(self, moment: int, count: int) -> int:
        """Add ``count`` complaints at ``moment``; 1 if they landed in the short ring."""
        landed = 0
        for index, window in enumerate(self.config.windows):
            slot = self._claim_slot(index, window, moment // window.hop_ms)
            if slot is not None:
                self._rings[index].counters[slot, COMPLAINTS] += count
                landed += index == 0
        return landed

    def _hold_complaints(self, buckets: NDArray[np.int64]) -> None:
        """Hold complaints of future short buckets (one each), at most HELD_COMPLAINTS buckets.

        The oldest buckets are kept exactly; complaints of later buckets join
        the last kept one (counted a little early rather than lost). The
        result does not depend on the order complaints arrive in.
        """
        held, inverse = np.unique(
            np.concatenate((self._held_bucket, buckets)), return_inverse=True
        )
        weights = np.concatenate((self._held_count, np.ones(len(buckets), np.int64)))
        counts = np.bincount(inverse, weights=weights).astype(np.int64)
        if len(held) > HELD_COMPLAINTS:
            counts[HELD_COMPLAINTS - 1] = counts[HELD_COMPLAINTS - 1 :].sum()
            held, counts = held[:HELD_COMPLAINTS], counts[:HELD_COMPLAINTS]
        self._held_bucket, self._held_count = held.astype(np.int64), counts.astype(np.int64)

    def _release_complaints(self) -> None:
        """Land the held complaints whose short bucket the watermark has reached."""
        short_hop_ms = self.config.short_hop_s * 1000
        due = int(np.searchsorted(self._held_bucket, self.watermark_ms // short_hop_ms, "right"))
        for bucket, count in zip(
            self._held_bucket[:due].tolist(), self._held_count[:due].tolist(), strict=True
        ):
            self._land_complaints(bucket * short_hop_ms, count)
        self._held_bucket, self._held_count = self._held_bucket[due:], self._held_count[due:]

    def note_inbound(
        self,
        caller_keys: NDArray[np.uint64],
        time_ms: NDArray[np.int64],
        frontier_ms: int | None = None,
    ) -> None:
        """Record that these numbers (callee keys) called this caller at these times.

        The agent calls this on the *callee's* state for every CDR, so that a
        caller's callees who call back can be recognised. Two generations of
        ``inbound_generation_s`` are kept: a call-back counts if it happened
        in the current generation or the one before, and before the end of
        the window whose features are read.

        That last condition is why calls wait in an inbox, with their times,
        until the event clock has passed them: ``frontier_ms`` is the time at
        or before which no window end will be emitted again (the partition's
        closed buckets; None: not known), so a call before it can join the
        filter, which has no times. Otherwise a row emitted after a restart
        or a slow batch would count call-backs made after its window ended.
        At most ``inbound_pending`` calls wait; beyond that the oldest join
        the filter early.
        """
        hashes = key_hash32(np.asarray(caller_keys, dtype=np.uint64))
        times = np.asarray(time_ms, dtype=np.int64)
        if len(hashes) == 0:
            return
        every_ms = np.concatenate((self._inbox_ms, times))
        every_hash = np.concatenate((self._inbox_hash, hashes))
        order = np.lexsort((every_hash, every_ms))
        every_ms, every_hash = every_ms[order], every_hash[order]
        first = run_starts(every_ms, every_hash)  # a call noted twice counts once
        every_ms, every_hash = every_ms[first], every_hash[first]
        keep = np.arange(len(every_ms)) >= len(every_ms) - self.config.inbound_pending
        if frontier_ms is not None:
            keep &= every_ms >= frontier_ms
        self._merge_inbound(every_hash[~keep], every_ms[~keep])
        self._inbox_ms, self._inbox_hash = every_ms[keep], every_hash[keep]

    def _merge_inbound(self, hashes: NDArray[np.uint32], time_ms: NDArray[np.int64]) -> None:
        """Add calls (callers' 32-bit hashes) to the inbound filter by generation."""
        if len(hashes) == 0:
            return
        generation_ms = self.config.inbound_generation_s * 1000
        generations = time_ms // generation_ms
        order = np.argsort(generations, kind="stable")
        hashes, generations = hashes[order], generations[order]
        words = len(self._inbound) // 2
        for generation in np.unique(generations).tolist():
            self._rotate_inbound(generation, words)
            offset = self._inbound_generation - generation
            if offset in (0, 1):
                filter_words = self._inbound[offset * words : (offset + 1) * words]
                bloom_add(filter_words, hashes[generations == generation])

    def _rotate_inbound(self, generation: int, words: int) -> None:
        if generation <= self._inbound_generation:
            return
        if generation == self._inbound_generation + 1:
            self._inbound[words:] = self._inbound[:words]
        else:
            self._inbound[words:] = 0
        self._inbound[:words] = 0
        self._inbound_generation = generation

    def _claim_slot(self, index: int, window: WindowSpec, bucket: int) -> int | None:
        """The slot for ``bucket``, opening it (and expiring its occupant) if it is newer."""
        slot = bucket % window.slots
        held = int(self._buckets[index][slot])
        if held == bucket:
            return slot
        if held > bucket:
            return None
        self._buckets[index][slot] = bucket
        self._rings[index].clear(slot)
        return slot

    def _find_slot(self, index: int, window: WindowSpec, bucket: int) -> int | None:
        slot = bucket % window.slots
        return slot if int(self._buckets[index][slot]) == bucket else None

    def expire(self, now_ms: int) -> bool:
        """Drop buckets no window ending after ``now_ms`` needs; True if nothing is left.

        An agent can delete the state of a caller for whom this returns True.
        """
        config = self.config
        for index, window in enumerate(config.windows):
            oldest = -(-now_ms // window.hop_ms) - window.buckets_per_window
            stale = (self._buckets[index] < oldest) & (self._buckets[index] != _NO_BUCKET)
            for slot in np.flatnonzero(stale).tolist():
                self._buckets[index][slot] = _NO_BUCKET
                self._rings[index].clear(slot)
        if len(self._pending_ms) and self._pending_ms[-1] < now_ms - config.long_window_s * 1000:
            self._pending_ms = self._pending_ms[:0]
            self._pending_key = self._pending_key[:0]
        generation = now_ms // (config.inbound_generation_s * 1000)
        if self._inbound_generation < generation - 1:
            self._inbound[:] = 0
            self._inbound_generation = _NO_BUCKET
        generation_ms = config.inbound_generation_s * 1000
        fresh = self._inbox_ms // generation_ms >= generation - 1
        self._inbox_ms, self._inbox_hash = self._inbox_ms[fresh], self._inbox_hash[fresh]
        long = config.windows[1]
        oldest_long = -(-now_ms // long.hop_ms) - long.buckets_per_window
        stale = (self._held_bucket * (config.short_hop_s * 1000)) // long.hop_ms < oldest_long
        self._held_bucket, self._held_count = self._held_bucket[~stale], self._held_count[~stale]
        buckets_left = any(bool((held != _NO_BUCKET).any()) for held in self._buckets)
        return (
            not buckets_left
            and len(self._pending_ms) == 0
            and not self._inbound.any()
            and len(self._inbox_ms) == 0
            and len(self._held_bucket) == 0
        )

    # -- reading -----------------------------------------------------------

    def short_buckets(self) -> NDArray[np.int64]:
        """The short buckets the ring holds calls of (bucket numbers, ``start // short hop``)."""
        held = self._buckets[0]
        return held[held != _NO_BUCKET]

    def default_end_ms(self) -> int:
        """End of the short bucket holding the watermark: the window "now"."""
        hop_ms = self.config.short_hop_s * 1000
        return (self.watermark_ms // hop_ms + 1) * hop_ms

    def window_aggregate(self, window: WindowName, end_ms: int | None = None) -> Aggregates:
        """One window's aggregate (one row): ring buckets, held-back calls, held complaints.

        Held complaints count where the window reaches past the watermark's
        bucket, up to ``end_ms`` (not to the end of the long bucket, as the
        offline path). The window ends at the first bucket boundary at or after ``end_ms``
        and spans ``buckets_per_window`` buckets.
        """
        config = self.config
        spec = config.window(window)
        index = 0 if window == "short" else 1
        end_ms = self.default_end_ms() if end_ms is None else end_ms
        last = -(-end_ms // spec.hop_ms)
        first = last - spec.buckets_per_window
        held = self._buckets[index]
        newest = int(held.max())
        if newest != _NO_BUCKET and first <= newest - spec.slots:
            raise ValueError(
                f"the {window} window ending at {end_ms} is older than the ring holds "
                f"(its first bucket may have been reused); evaluate windows before the "
                f"watermark passes their end plus the grace"
            )
        slots = np.flatnonzero((held >= first) & (held < last))
        slots = slots[np.argsort(held[slots])]
        parts = self._rings[index].take(slots)
        pending_buckets = self._pending_ms // spec.hop_ms
        pending = (pending_buckets >= first) & (pending_buckets < last)
        if pending.any():
            chain = chain_calls(
                self._pending_ms[pending], self._pending_key[pending], np.zeros(1, np.intp), config
            )
            parts = parts.concatenate(chain)
        short_hop_ms = config.short_hop_s * 1000
        held = self._held_bucket
        inside = (held >= first * spec.hop_ms // short_hop_ms) & (
            held < min(last * spec.hop_ms // short_hop_ms, -(-end_ms // short_hop_ms))
        )
        if inside.any():
            complaints = Aggregates.empty(1, config)
            complaints.counters[0, COMPLAINTS] = self._held_count[inside].sum()
            parts = parts.concatenate(complaints)
        return combine(parts, np.zeros(1, np.intp), config)

    def features(self, end_ms: int | None = None) -> NDArray[np.float64]:
        """The window features, in :data:`~features.vector.WINDOW_FEATURE_NAMES` order.

        ``end_ms`` defaults to :meth:`default_end_ms`; it should be a short
        hop boundary. The long window is the one whose last bucket holds
        ``end_ms - 1``.
        """
        return np.concatenate(
            [self.window_features("short", end_ms), self.window_features("long", end_ms)]
        )

    def window_features(self, window: WindowName, end_ms: int | None = None) -> NDArray[np.float64]:
        """One window's half of :meth:`features`."""
        aggregate = self.window_aggregate(window, end_ms)
        end = self.default_end_ms() if end_ms is None else end_ms
        return window_features(
            aggregate, self._reciprocity(aggregate, end), self._inbound_callers(end)
        )[0]

    def feature_dict(self, end_ms: int | None = None) -> dict[str, float]:
        """:meth:`features` as a name -> value mapping."""
        return dict(zip(WINDOW_FEATURE_NAMES, self.features(end_ms).tolist(), strict=True))

    def _reciprocity(self, aggregate: Aggregates, end_ms: int) -> NDArray[np.float64]:
        """Share of the sampled callees in the filter, or in the inbox before ``end_ms``."""
        sampled = aggregate.kmv_hash[0][aggregate.kmv_hash[0] != EMPTY_HASH]
        if len(sampled) == 0 or not (self._inbound.any() or len(self._inbox_ms)):
            return np.zeros(1)
        words = len(self._inbound) // 2
        generation_ms = self.config.inbound_generation_s * 1000
        wanted = self.config.inbound_generation(end_ms)  # counts with the one before
        current = np.array([self._inbound_generation], np.int64)
        called_back = np.zeros(len(sampled), bool)
        for generation in (wanted, wanted - 1):  # the filter's halves that hold either
            half, held = filter_half(current, np.array([generation], np.int64))
            if held[0]:
                start = int(half[0]) * words
                called_back |= bloom_contains(self._inbound[start : start + words], sampled)
        live = inbox_counts(self._inbox_ms, end_ms, wanted, generation_ms)
        called_back |= np.isin(sampled, self._inbox_hash[live])
        return reciprocity(np.array([np.count_nonzero(called_back)]), np.array([len(sampled)]))

    def _inbound_callers(self, end_ms: int) -> NDArray[np.float64]:
        """Numbers that called in the inbound horizon, from the filter and the inbox."""
        generation_ms = self.config.inbound_generation_s * 1000
        wanted = self.config.inbound_generation(end_ms)  # counts with the one before
        live = inbox_counts(self._inbox_ms, end_ms, wanted, generation_ms)
        return inbound_numbers(
            self._inbound[None, :],
            np.array([self._inbound_generation], np.int64),
            np.array([wanted], np.int64),
            self._inbox_ms[None, :],
            self._inbox_hash[None, :],
            live[None, :],
            generation_ms,
        )

    # -- serialisation -----------------------------------------------------

    def to_bytes(self) -> bytes:
        """Compact encoding: non-empty buckets, used sketch entries, the buffer, the filter."""
        return _encode(self)

    @classmethod
    def from_bytes(cls, data: bytes, config: FeatureConfig) -> CallerState:
        """Inverse of :meth:`to_bytes`; the config must be the one that wrote it."""
        return _decode(data, config)


# -- the byte format ---------------------------------------------------------
# Header: version, config fingerprint, watermark, inbound generation, buffer length, used slots
# per window, whether the inbound filter is stored, (version 2) held complaint
# buckets. Then the buffer (start as a u32 offset below the watermark, callee
# key), (version 2) the held complaints, then per used slot a fixed record, its
# sketch entries and its non-zero histogram counters, then the filter words.
# Version 1 is written when no complaint is held, so workers of the previous
# release still read most states during a rolling upgrade. Version 3 adds the
# inbox (a count in the header; after the filter, its times as i8 then its
# hashes as u4) and is written only when the inbox holds calls, for the same
# reason.

_VERSION = 3
_HEADERS = {
    1: struct.Struct("<BIqqBBBB"),
    2: struct.Struct("<BIqqBBBBB"),
    3: struct.Struct("<BIqqBBBBBB"),
}
_SLOT = np.dtype(
    [
        ("bucket_back", "<i4"),  # watermark bucket minus this bucket
        ("calls", "<u4"),
        ("answered", "<u4"),
        ("short_answered", "<u4"),
        ("one_ring", "<u4"),
        ("night", "<u4"),
        ("talk_ms", "<u8"),
        ("complaints", "<u4"),
        ("chain_len", "<u4"),
        ("gap_count", "<u4"),
        ("gap_sum_ms", "<u8"),
        ("gap_sumsq_ms2", "<u8"),
        ("sequential_pairs", "<u4"),
        ("first_offset_ms", "<u4"),  # from the bucket's start
        ("last_offset_ms", "<u4"),
        ("first_key", "<u8"),
        ("last_key", "<u8"),
        ("sketch_used", "u1"),
        ("histogram_used", "u1"),
    ]
)
_PENDING = np.dtype([("back_ms", "<u4"), ("key", "<u8")])
_HELD = np.dtype([("bucket", "<i8"), ("count", "<u4")])
_SKETCH = np.dtype([("hash", "<u4"), ("count", "u1")])
_HISTOGRAM = np.dtype([("bin", "u1"), ("count", "<u4")])
# The stored record's counter fields: the aggregates' counters up to the first and last
# calls, which the record keeps as offsets and keys instead.
_COUNTER_FIELDS = COUNTER_NAMES[: COUNTER_NAMES.index("first_ms")]


def _encode(state: CallerState) -> bytes:
    config = state.config
    used = [np.flatnonzero(held != _NO_BUCKET) for held in state._buckets]
    has_inbound = bool(state._inbound.any())
    pending = np.empty(len(state._pending_ms), _PENDING)
    pending["back_ms"] = state.watermark_ms - state._pending_ms
    pending["key"] = state._pending_key
    fields = [
        _layout_fingerprint(config),
        state.watermark_ms,
        state._inbound_generation,
        len(pending),
        len(used[0]),
        len(used[1]),
        has_inbound,
    ]
    complaints = np.empty(len(state._held_bucket), _HELD)
    complaints["bucket"], complaints["count"] = state._held_bucket, state._held_count
    inbox = len(state._inbox_ms)
    version = 3 if inbox else 2 if len(complaints) else 1
    extra = [len(complaints), inbox][: version - 1]
    header = _HEADERS[version].pack(version, *fields, *extra)
    parts = [header, pending.tobytes(), complaints.tobytes()]
    for index, window in enumerate(config.windows):
        ring, held = state._rings[index], state._buckets[index]
        watermark_bucket = state.watermark_ms // window.hop_ms
        for slot in used[index].tolist():
            parts.extend(_encode_slot(ring, slot, int(held[slot]), watermark_bucket, window))
    if has_inbound:
        parts.append(state._inbound.astype("<u8").tobytes())
    if inbox:
        parts.append(state._inbox_ms.astype("<i8").tobytes())
        parts.append(state._inbox_hash.astype("<u4").tobytes())
    return b"".join(parts)


def _encode_slot(
    ring: Aggregates, slot: int, bucket: int, watermark_bucket: int, window: WindowSpec
) -> list[bytes]:
    counters = ring.counters[slot]
    record = np.zeros(1, _SLOT)
    record["bucket_back"] = watermark_bucket - bucket
    for position, name in enumerate(_COUNTER_FIELDS):
        record[name] = counters[position]
    if counters[CHAIN_LEN]:
        bucket_start = bucket * window.hop_ms
        record["first_offset_ms"] = counters[FIRST_MS] - bucket_start
        record["last_offset_ms"] = counters[LAST_MS] - bucket_start
        record["first_key"] = counters[FIRST_KEY]
        record["last_key"] = counters[LAST_KEY]
    used = ring.kmv_hash[slot] != EMPTY_HASH
    sketch = np.empty(int(used.sum()), _SKETCH)
    sketch["hash"] = ring.kmv_hash[slot][used]
    sketch["count"] = ring.kmv_count[slot][used]
    occupied = np.flatnonzero(ring.segment_hist[slot])
    histogram = np.empty(len(occupied), _HISTOGRAM)
    histogram["bin"] = occupied
    histogram["count"] = ring.segment_hist[slot][occupied]
    record["sketch_used"] = len(sketch)
    record["histogram_used"] = len(histogram)
    return [record.tobytes(), sketch.tobytes(), histogram.tobytes()]


def _layout_fingerprint(config: FeatureConfig) -> int:
    """CRC of every setting the stored bytes depend on."""
    layout = (
        [(window.window_s, window.hop_s, window.slots) for window in config.windows],
        config.kmv_k,
        config.segment_bins,
        config.inbound_bloom_bits,
        config.inbound_generation_s,
        config.reorder_capacity,
    )
    return zlib.crc32(repr(layout).encode())


def _decode(data: bytes, config: FeatureConfig) -> CallerState:
    state = CallerState(config)
    version = data[0] if data else 0
    if version not in _HEADERS:
        raise ValueError(f"caller state version {version}, this code reads 1 to {_VERSION}")
    fields = _HEADERS[version].unpack_from(data, 0)
    fingerprint, watermark, generation, n_pending, used_short, used_long, has_inbound = fields[1:8]
    n_held = fields[8] if version >= 2 else 0
    n_inbox = fields[9] if version >= 3 else 0
    if fingerprint != _layout_fingerprint(config):
        raise ValueError("caller state was written under another FeatureConfig (windows, sketches)")
    state.watermark_ms, state._inbound_generation = watermark, generation
    offset = _HEADERS[version].size
    pending = np.frombuffer(data, _PENDING, n_pending, offset)
    offset += pending.nbytes
    state._pending_ms = watermark - pending["back_ms"].astype(np.int64)
    state._pending_key = pending["key"].astype(np.uint64)
    held = np.frombuffer(data, _HELD, n_held, offset)
    offset += held.nbytes
    state._held_bucket = held["bucket"].astype(np.int64)
    state._held_count = held["count"].astype(np.int64)
    for index, (window, used) in enumerate(
        zip(config.windows, (used_short, used_long), strict=True)
    ):
        watermark_bucket = watermark // window.hop_ms
        for _ in range(used):
            offset = _decode_slot(state, index, window, watermark_bucket, data, offset)
    if has_inbound:
        words = len(state._inbound)
        state._inbound[:] = np.frombuffer(data, "<u8", words, offset)
        offset += 8 * words
    if n_inbox > config.inbound_pending:
        raise ValueError(f"caller state holds {n_inbox} inbox calls, inbound_pending allows fewer")
    state._inbox_ms = np.frombuffer(data, "<i8", n_inbox, offset).astype(np.int64)
    offset += 8 * n_inbox
    state._inbox_hash = np.frombuffer(data, "<u4", n_inbox, offset).astype(np.uint32)
    offset += 4 * n_inbox
    if offset != len(data):
        raise ValueError(f"caller state has {len(data) - offset} trailing bytes (config mismatch?)")
    return state


def _decode_slot(
    state: CallerState,
    index: int,
    window: WindowSpec,
    watermark_bucket: int,
    data: bytes,
    offset: int,
) -> int:
    record = np.frombuffer(data, _SLOT, 1, offset)[0]
    offset += _SLOT.itemsize
    bucket = watermark_bucket - int(record["bucket_back"])
    slot = bucket % window.slots
    ring = state._rings[index]
    state._buckets[index][slot] = bucket
    counters = ring.counters[slot]
    for position, name in enumerate(_COUNTER_FIELDS):
        counters[position] = int(record[name])
    if counters[CHAIN_LEN]:
        bucket_start = bucket * window.hop_ms
        counters[FIRST_MS] = bucket_start + int(record["first_offset_ms"])
        counters[LAST_MS] = bucket_start + int(record["last_offset_ms"])
        counters[FIRST_KEY] = int(record["first_key"])
        counters[LAST_KEY] = int(record["last_key"])
    sketch = np.frombuffer(data, _SKETCH, int(record["sketch_used"]), offset)
    offset += sketch.nbytes
    ring.kmv_hash[slot, : len(sketch)] = sketch["hash"]
    ring.kmv_count[slot, : len(sketch)] = sketch["count"]
    histogram = np.frombuffer(data, _HISTOGRAM, int(record["histogram_used"]), offset)
    offset += histogram.nbytes
    ring.segment_hist[slot, histogram["bin"].astype(np.intp)] = histogram["count"]
    return offset
