"""The columns of :class:`features.block.engine.CallerBlock`: one table of callers, one of slots.

Callers (one record each): watermark, the streaming bookkeeping (last
applied offset, last emission, a ring of recent ``cdr_id`` fingerprints),
the bucket held by each ring slot of both windows (short slots first) and a
reference into the slot table, the reorder buffer, the inbound filter, the
calls to the number held until the event clock passes them (times and
hashes of their callers, ascending) and the complaints held for short
buckets ahead of the watermark (ascending).

Slots (one record per *held* bucket, allocated on demand and released when
the bucket expires): the counters, sketch and histogram of
:class:`features.aggregate.Aggregates`, in the same layout, so a gather of
slot records *is* an ``Aggregates`` and the offline functions apply.
"""

from __future__ import annotations

import numpy as np

from features.aggregate import COUNTER_NAMES
from features.block.pool import Layout
from features.config import HELD_COMPLAINTS, FeatureConfig
from features.fingerprints import RECENT_IDS
from features.sketch import EMPTY_HASH

__all__ = [
    "HELD_COMPLAINTS",
    "NO_BUCKET",
    "NO_TIME",
    "RECENT_IDS",
    "caller_layout",
    "ring_slots",
    "slot_layout",
]

NO_BUCKET = np.iinfo(np.int64).min
NO_TIME = -(2**62)


def ring_slots(config: FeatureConfig) -> int:
    """Ring slots of both windows together."""
    return sum(window.slots for window in config.windows)


def caller_layout(config: FeatureConfig) -> Layout:
    """Per-caller columns: trailing shape, dtype, value of an empty caller."""
    slots = ring_slots(config)
    buffer = config.reorder_capacity
    return {
        "watermark": ((), np.dtype(np.int64), NO_TIME),
        "last_offset": ((), np.dtype(np.int64), -1),
        "last_emitted": ((), np.dtype(np.int64), -1),
        "inbound_generation": ((), np.dtype(np.int64), NO_BUCKET),
        "bucket": ((slots,), np.dtype(np.int64), NO_BUCKET),
        "slot": ((slots,), np.dtype(np.int32), -1),
        "pending_ms": ((buffer,), np.dtype(np.int64), 0),
        "pending_key": ((buffer,), np.dtype(np.uint64), 0),
        "pending_n": ((), np.dtype(np.uint8), 0),
        "recent": ((RECENT_IDS,), np.dtype(np.uint32), 0),
        "recent_n": ((), np.dtype(np.uint8), 0),
        "recent_next": ((), np.dtype(np.uint8), 0),
        "inbound": ((2 * config.inbound_bloom_bits // 64,), np.dtype(np.uint64), 0),
        "inbox_ms": ((config.inbound_pending,), np.dtype(np.int64), 0),
        "inbox_hash": ((config.inbound_pending,), np.dtype(np.uint32), 0),
        "inbox_n": ((), np.dtype(np.uint8), 0),
        "held_bucket": ((HELD_COMPLAINTS,), np.dtype(np.int64), NO_BUCKET),
        "held_count": ((HELD_COMPLAINTS,), np.dtype(np.uint32), 0),
        "held_n": ((), np.dtype(np.uint8), 0),
    }


def slot_layout(config: FeatureConfig) -> Layout:
    """Per-slot columns: one bucket's :class:`~features.aggregate.Aggregates` row."""
    return {
        "counters": ((len(COUNTER_NAMES),), np.dtype(np.int64), 0),
        "kmv_hash": ((config.kmv_k,), np.dtype(np.uint32), int(EMPTY_HASH)),
        "kmv_count": ((config.kmv_k,), np.dtype(np.uint8), 0),
        "segment_hist": ((config.segment_bins,), np.dtype(np.uint32), 0),
    }
