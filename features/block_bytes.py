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
from typing import TYPE_CHECKING, Any

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
_COUNTS = ("pending_n", "recent_n", "recent_next", "held_n")  # one byte each in the header


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

    For batches: about 1 us a row for thousands of rows (``row_bytes``:
    about 14 us), most of it the copy into each row's own ``bytes``.

    Every row gets a region of one buffer: its bytes, then some slack. Each
    part of the layout is copied for all rows by one numpy assignment of
    fixed-width items (see :func:`_scatter`): a part held as a prefix of a
    column (the buffer, recent ids, held complaints; the ring's buckets once
    the held ones are moved to the front) is copied whole, the unused tail
    spilling over where the row's next parts, written later, or its slack
    go; slot records are copied one record at a time. A row's bytes are
    then one slice of the buffer.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return []
    columns, slots = block.callers.columns, block.slots.columns
    held = columns["bucket"][rows]
    used = held != NO_BUCKET
    n_used = used.sum(axis=1)
    # Held ring slots first, in ring order (a stable sort of "not held").
    front = np.argsort(~used, axis=1, kind="stable")
    held = np.take_along_axis(held, front, axis=1)
    records = np.take_along_axis(columns["slot"][rows], front, axis=1)
    inbound = columns["inbound"][rows]
    has_inbound = inbound.any(axis=1)
    header = np.zeros(len(rows), _HEADER_FIELDS)
    header["version"], header["fingerprint"] = _VERSION, block.fingerprint
    for name in ("watermark", "last_offset", "last_emitted", "inbound_generation"):
        header[name] = columns[name][rows]
    counts = {name: columns[name][rows].astype(np.int64) for name in _COUNTS}
    for name, count in counts.items():
        header[name] = count
    header["has_inbound"] = has_inbound
    header["mask"] = (used.astype(np.int64) << np.arange(used.shape[1])).sum(axis=1)
    # (values: a 2-D prefix part, one row per caller, or slot records; items per caller)
    prefix_parts: list[tuple[NDArray[Any], NDArray[np.int64]]] = [
        (header[:, None], np.ones(len(rows), np.int64)),
        (held, n_used),
        (columns["pending_ms"][rows], counts["pending_n"]),
        (columns["pending_key"][rows], counts["pending_n"]),
        (columns["recent"][rows], counts["recent_n"]),
        (columns["held_bucket"][rows], counts["held_n"]),
        (columns["held_count"][rows], counts["held_n"]),
    ]
    kept_records = records[np.arange(records.shape[1]) < n_used[:, None]]
    slot_parts = [slots[name][kept_records] for name in _SLOT_COLUMNS]
    item_bytes = [values.itemsize for values, _ in prefix_parts]
    item_bytes += [values[0].nbytes if len(values) else 0 for values in slot_parts]
    item_bytes.append(inbound[0].nbytes)
    items = [count for _, count in prefix_parts] + [n_used] * len(slot_parts)
    items.append(has_inbound.astype(np.int64))
    sizes = [count * size for count, size in zip(items, item_bytes, strict=True)]
    row_size = np.sum(sizes, axis=0)
    slack = max(values[0].nbytes for values, _ in prefix_parts)
    region = row_size + slack
    row_start = np.cumsum(region) - region
    buffer = np.empty(int(region.sum()), np.uint8)  # every byte of every row gets written
    piece_start = row_start.copy()
    for (values, _), size in zip(prefix_parts, sizes[: len(prefix_parts)], strict=True):
        _scatter(buffer, piece_start, values)
        piece_start += size
    held_slot = np.arange(records.shape[1]) < n_used[:, None]
    for values, size in zip(slot_parts, sizes[len(prefix_parts) : -1], strict=True):
        if len(values):
            record_bytes = values[0].nbytes
            starts = piece_start[:, None] + np.arange(records.shape[1]) * record_bytes
            _scatter(buffer, starts[held_slot], values)
        piece_start += size
    if has_inbound.any():
        _scatter(buffer, piece_start[has_inbound], inbound[has_inbound])
    raw = buffer.tobytes()
    return [
        raw[start : start + size]
        for start, size in zip(row_start.tolist(), row_size.tolist(), strict=True)
    ]


def _scatter(buffer: NDArray[np.uint8], starts: NDArray[np.int64], values: NDArray[Any]) -> None:
    """Copy the bytes of ``values[i]`` (a row of a 2-D array) to ``buffer[starts[i]:]``.

    One assignment of opaque items as wide as a row, through a view of the
    buffer with an item starting at every byte.
    """
    values = np.ascontiguousarray(values)
    width = values[0].nbytes if len(values) else 0
    if width == 0:
        return
    items = values.reshape(len(values), -1).view(np.dtype((np.void, width))).reshape(-1)
    view = np.ndarray((len(buffer) - width + 1,), np.dtype((np.void, width)), buffer, 0, (1,))
    view[starts] = items


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
