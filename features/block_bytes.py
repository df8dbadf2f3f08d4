"""One caller's row of a :class:`~features.block.CallerBlock` as bytes, and back.

For the changelog: the value written per caller after a message, read back
by :meth:`~features.block.CallerBlock.load_row` when a worker recovers a
partition. Layout (little-endian): a header (version, layout fingerprint,
watermark, last offset, last emission, inbound generation, buffer length,
recent-id count and position, whether the inbound filter follows, a bit per
held ring slot, how many future complaint buckets are held), then the held
buckets, the buffer, the recent ids, the held complaints (buckets, counts),
one slot record per held bucket (counters, sketch, histogram) and the filter.
"""

from __future__ import annotations

import struct
import zlib
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from features.block_layout import HELD_COMPLAINTS, NO_BUCKET, RECENT_IDS
from features.config import FeatureConfig

if TYPE_CHECKING:
    from features.block import CallerBlock

__all__ = ["layout_fingerprint", "load_row_bytes", "row_bytes", "rows_bytes"]

_VERSION = 2
_HEADER = struct.Struct("<BIqqqqBBBBHB")
_SLOT_COLUMNS = ("counters", "kmv_hash", "kmv_count", "segment_hist")


def layout_fingerprint(config: FeatureConfig) -> int:
    """CRC of every setting the bytes depend on."""
    layout = (
        [(window.window_s, window.hop_s, window.slots) for window in config.windows],
        config.kmv_k,
        config.segment_bins,
        config.inbound_bloom_bits,
        config.inbound_generation_s,
        config.reorder_capacity,
        RECENT_IDS,
        HELD_COMPLAINTS,
    )
    return zlib.crc32(repr(layout).encode())


_HEADER_FIELDS = np.dtype(
    [
        ("version", "u1"),
        ("fingerprint", "<u4"),
        ("watermark", "<i8"),
        ("last_offset", "<i8"),
        ("last_emitted", "<i8"),
        ("inbound_generation", "<i8"),
        ("pending_n", "u1"),
        ("recent_n", "u1"),
        ("recent_next", "u1"),
        ("has_inbound", "u1"),
        ("mask", "<u2"),
        ("held_n", "u1"),
    ]
)  # _HEADER as a packed numpy record


def row_bytes(block: CallerBlock, row: int) -> bytes:
    """The bytes of ``row`` (see the module docstring); :func:`rows_bytes` for many rows."""
    columns = block.callers.columns
    held = columns["bucket"][row]
    used = held != NO_BUCKET
    pending_n = int(columns["pending_n"][row])
    recent_n = int(columns["recent_n"][row])
    inbound = columns["inbound"][row]
    has_inbound = bool(inbound.any())
    held_n = int(columns["held_n"][row])
    header = _HEADER.pack(
        _VERSION,
        block.fingerprint,
        int(columns["watermark"][row]),
        int(columns["last_offset"][row]),
        int(columns["last_emitted"][row]),
        int(columns["inbound_generation"][row]),
        pending_n,
        recent_n,
        int(columns["recent_next"][row]),
        has_inbound,
        _mask(used),
        held_n,
    )
    records = columns["slot"][row][used]
    slots = block.slots.columns
    parts = [
        header,
        held[used].tobytes(),
        columns["pending_ms"][row, :pending_n].tobytes(),
        columns["pending_key"][row, :pending_n].tobytes(),
        columns["recent"][row, :recent_n].tobytes(),
        columns["held_bucket"][row, :held_n].tobytes(),
        columns["held_count"][row, :held_n].tobytes(),
    ]
    parts.extend(slots[name][records].tobytes() for name in _SLOT_COLUMNS)
    if has_inbound:
        parts.append(inbound.tobytes())
    return b"".join(parts)


def _mask(used: np.ndarray) -> int:
    """One bit per ring slot (short slots in the low bits)."""
    return int((used.astype(np.int64) << np.arange(len(used))).sum())


def rows_bytes(block: CallerBlock, rows: NDArray[np.int64]) -> list[bytes]:
    """``[row_bytes(block, row) for row in rows]``, built for all rows at once.

    About 6 us a row for thousands of rows (``row_bytes``: about 14 us), but
    some 150 us for the call: for batches.

    Each part of the layout is gathered for every row as one flat array
    (row-major, so each row's piece is contiguous), then copied into one
    buffer at the row's offset; a row's bytes are one slice of it.
    """
    rows = np.asarray(rows, dtype=np.int64)
    columns, slots = block.callers.columns, block.slots.columns
    held = columns["bucket"][rows]
    used = held != NO_BUCKET
    inbound = columns["inbound"][rows]
    has_inbound = inbound.any(axis=1)
    header = np.zeros(len(rows), _HEADER_FIELDS)
    header["version"], header["fingerprint"] = _VERSION, block.fingerprint
    for name in ("watermark", "last_offset", "last_emitted", "inbound_generation"):
        header[name] = columns[name][rows]
    for name in ("pending_n", "recent_n", "recent_next", "held_n"):
        header[name] = columns[name][rows]
    header["has_inbound"] = has_inbound
    header["mask"] = (used.astype(np.int64) << np.arange(used.shape[1])).sum(axis=1)
    records = columns["slot"][rows][used]  # row-major: each row's slots in ring order
    n_used = used.sum(axis=1)

    def first(name: str, count_column: str) -> tuple[NDArray[np.generic], NDArray[np.int64]]:
        values = columns[name][rows]
        count = columns[count_column][rows].astype(np.int64)
        return values[np.arange(values.shape[1]) < count[:, None]], count

    parts: list[tuple[NDArray[np.generic], NDArray[np.int64]]] = [
        (header, np.ones(len(rows), np.int64)),
        (held[used], n_used),
        first("pending_ms", "pending_n"),
        first("pending_key", "pending_n"),
        first("recent", "recent_n"),
        first("held_bucket", "held_n"),
        first("held_count", "held_n"),
    ]
    parts.extend((slots[name][records], n_used) for name in _SLOT_COLUMNS)
    parts.append((inbound[has_inbound], np.asarray(has_inbound, dtype=np.int64)))
    # Bytes of each part in each row: its count times one element's (a record's) size.
    sizes = [count * (values[0].nbytes if len(values) else 0) for values, count in parts]
    row_size = np.sum(sizes, axis=0)
    row_start = np.cumsum(row_size) - row_size
    buffer = np.empty(int(row_size.sum()), np.uint8)
    offset_in_row = np.zeros(len(rows), np.int64)
    for (values, _), size in zip(parts, sizes, strict=True):
        data = np.ascontiguousarray(values).view(np.uint8).reshape(-1)
        if len(data):
            piece_start = row_start + offset_in_row
            within = np.arange(len(data)) - np.repeat(np.cumsum(size) - size, size)
            buffer[np.repeat(piece_start, size) + within] = data
        offset_in_row += size
    raw = buffer.tobytes()
    return [
        raw[start : start + size]
        for start, size in zip(row_start.tolist(), row_size.tolist(), strict=True)
    ]


def load_row_bytes(block: CallerBlock, row: int, data: bytes) -> None:
    """Fill the fresh ``row`` (no slots held) from :func:`row_bytes` output."""
    fields = _HEADER.unpack_from(data, 0)
    version, fingerprint, watermark, last_offset, last_emitted, generation = fields[:6]
    pending_n, recent_n, recent_next, has_inbound, mask, held_n = fields[6:]
    if version != _VERSION:
        raise ValueError(f"caller block row version {version}, this code reads {_VERSION}")
    if fingerprint != block.fingerprint:
        raise ValueError("caller block row was written under another FeatureConfig")
    columns = block.callers.columns
    ring = columns["bucket"].shape[1]
    used = ((mask >> np.arange(ring)) & 1).astype(bool)
    n_used = int(used.sum())
    offset = _HEADER.size

    def take(dtype: np.dtype, count: int, shape: tuple[int, ...] = ()) -> np.ndarray:
        nonlocal offset
        values = np.frombuffer(data, dtype, count * int(np.prod(shape, dtype=np.int64)), offset)
        offset += values.nbytes
        return values.reshape(count, *shape) if shape else values

    held = take(columns["bucket"].dtype, n_used)
    columns["watermark"][row] = watermark
    columns["last_offset"][row] = last_offset
    columns["last_emitted"][row] = last_emitted
    columns["inbound_generation"][row] = generation
    columns["pending_n"][row] = pending_n
    columns["pending_ms"][row, :pending_n] = take(columns["pending_ms"].dtype, pending_n)
    columns["pending_key"][row, :pending_n] = take(columns["pending_key"].dtype, pending_n)
    columns["recent_n"][row] = recent_n
    columns["recent_next"][row] = recent_next
    columns["recent"][row, :recent_n] = take(columns["recent"].dtype, recent_n)
    columns["held_n"][row] = held_n
    columns["held_bucket"][row, :held_n] = take(columns["held_bucket"].dtype, held_n)
    columns["held_count"][row, :held_n] = take(columns["held_count"].dtype, held_n)
    records = block.slots.allocate(n_used)
    slots = block.slots.columns
    for name in _SLOT_COLUMNS:
        slots[name][records] = take(slots[name].dtype, n_used, slots[name].shape[1:])
    columns["bucket"][row, used] = held
    columns["slot"][row, used] = records
    if has_inbound:
        columns["inbound"][row] = take(columns["inbound"].dtype, 1, columns["inbound"].shape[1:])[0]
    if offset != len(data):
        raise ValueError(f"caller block row has {len(data) - offset} trailing bytes")
