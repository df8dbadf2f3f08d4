"""One caller's row of a :class:`~features.block.engine.CallerBlock` as bytes, and back.

For the changelog: the value written per caller, read back by
:meth:`~features.block.engine.CallerBlock.load_row` when a worker recovers a
partition. Layout (little-endian): a header (version, layout fingerprint,
watermark, last offset, last emission, inbound generation, buffer length,
recent-id count and position, whether the inbound filter follows and how
many inbox calls do (one byte: the flag, then the count shifted left by
one), a bit per held ring slot, how many future complaint buckets are
held), then the body: the held buckets, the buffer, the recent ids, the held
complaints (buckets, counts), one slot record per held bucket (counters,
sketch, histogram), the filter and the inbox (times, then hashes).

**Version 3 packs the body by 4-byte words**: a bitmap with one bit per
word of the body (padded to whole words), then only the words that are not
zero. Counters are int64 and mostly small, histograms and filters mostly
empty, so most words are zero; the sketch's empty entries (all ones) are
stored inverted so that they are zero too. On the simulator's traffic this
took the mean row from 1,163 to about 330 bytes: less to send at every
checkpoint, to store on the broker and to hold in the worker's table. The
header says how long the body is, so the bitmap needs no length of its own.
Version 2 rows (the body as is) are still read, and version 3 rows (no
inbox: the same layout with a count of 0), which version 4 extends.
"""

from __future__ import annotations

import math
import struct
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from features.block.layout import HELD_COMPLAINTS, NO_BUCKET, RECENT_IDS
from features.block.row_kernel import pack_rows
from features.config import FeatureConfig
from features.sketch import EMPTY_HASH

if TYPE_CHECKING:
    from features.block.engine import CallerBlock

__all__ = ["layout_fingerprint", "load_row_bytes", "row_bytes", "row_watermarks", "rows_bytes"]

_VERSION = 4
_READ_VERSIONS = (3, 4)  # packed by words; 3 never has an inbox
_UNPACKED_VERSION = 2  # the body as is, not packed by words
_HEADER = struct.Struct("<BIqqqqBBBBHB")
_HEADER_WORDS = _HEADER.size // 4  # 44 bytes: the body starts on a word boundary
_WORD = np.dtype("<u4")
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
    inbox_n = int(columns["inbox_n"][row])
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
        int(has_inbound) | inbox_n << 1,
        _mask(used),
        held_n,
    )
    records = columns["slot"][row][used]
    slots = block.slots.columns
    parts = [
        held[used].tobytes(),
        columns["pending_ms"][row, :pending_n].tobytes(),
        columns["pending_key"][row, :pending_n].tobytes(),
        columns["recent"][row, :recent_n].tobytes(),
        columns["held_bucket"][row, :held_n].tobytes(),
        columns["held_count"][row, :held_n].tobytes(),
    ]
    parts.extend(_stored(name, slots[name][records]).tobytes() for name in _SLOT_COLUMNS)
    if has_inbound:
        parts.append(inbound.tobytes())
    parts.append(columns["inbox_ms"][row, :inbox_n].tobytes())
    parts.append(columns["inbox_hash"][row, :inbox_n].tobytes())
    return header + _packed_body(b"".join(parts))


def _stored(name: str, values: NDArray[Any]) -> NDArray[Any]:
    """A slot column as the bytes hold it: the sketch's hashes inverted (empty is 0)."""
    return values ^ EMPTY_HASH if name == "kmv_hash" else values


def _packed_body(body: bytes) -> bytes:
    """One body packed by words (the module docstring): bitmap, then the non-zero words."""
    words = np.frombuffer(body + bytes(-len(body) % 4), _WORD)
    nonzero = words != 0
    bits = np.zeros(-(-len(words) // 32) * 32, bool)
    bits[: len(words)] = nonzero
    return np.packbits(bits, bitorder="little").tobytes() + words[nonzero].tobytes()


def _mask(used: np.ndarray) -> int:
    """One bit per ring slot (short slots in the low bits)."""
    return int((used.astype(np.int64) << np.arange(len(used))).sum())


_ROWS_AT_ONCE = 4096  # rows per pass: bounds the output buffer (a few MB)


def rows_bytes(block: CallerBlock, rows: NDArray[np.int64]) -> list[bytes]:
    """``[row_bytes(block, row) for row in rows]``, built for many rows at once.

    The headers are built for all rows by numpy, then
    :func:`features.block.row_kernel.pack_rows`, compiled, gathers each
    row's parts from the block's columns, lays its body out and packs it by
    words. Passes of at most ``_ROWS_AT_ONCE`` rows bound the output buffer.
    """
    rows = np.asarray(rows, dtype=np.int64)
    found: list[bytes] = []
    for first in range(0, len(rows), _ROWS_AT_ONCE):
        found.extend(_rows_bytes(block, rows[first : first + _ROWS_AT_ONCE]))
    return found


def _rows_bytes(block: CallerBlock, rows: NDArray[np.int64]) -> list[bytes]:
    """:func:`rows_bytes` of at most ``_ROWS_AT_ONCE`` rows."""
    if len(rows) == 0:
        return []
    columns, slots = block.callers.columns, block.slots.columns
    used = columns["bucket"][rows] != NO_BUCKET
    n_used = used.sum(axis=1).astype(np.int64)
    has_inbound = columns["inbound"][rows].any(axis=1)
    header = np.zeros(len(rows), _HEADER_FIELDS)
    header["version"], header["fingerprint"] = _VERSION, block.fingerprint
    for name in ("watermark", "last_offset", "last_emitted", "inbound_generation"):
        header[name] = columns[name][rows]
    counts = {name: columns[name][rows].astype(np.int64) for name in _COUNTS}
    for name, count in counts.items():
        header[name] = count
    inbox_n = columns["inbox_n"][rows].astype(np.int64)
    header["has_inbound"] = has_inbound.astype(np.int64) | inbox_n << 1
    header["mask"] = (used.astype(np.int64) << np.arange(used.shape[1])).sum(axis=1)
    # (column, items of it each row keeps)
    before = [
        ("pending_ms", counts["pending_n"]),
        ("pending_key", counts["pending_n"]),
        ("recent", counts["recent_n"]),
        ("held_bucket", counts["held_n"]),
        ("held_count", counts["held_n"]),
    ]
    after = [
        ("inbound", has_inbound.astype(np.int64) * columns["inbound"].shape[1]),
        ("inbox_ms", inbox_n),
        ("inbox_hash", inbox_n),
    ]
    before_bytes = _kept_bytes(columns, before)
    after_bytes = _kept_bytes(columns, after)
    slot_width = sum(_row_bytes_view(slots[name]).shape[1] for name in _SLOT_COLUMNS)
    body = (before_bytes.sum(axis=1) + after_bytes.sum(axis=1)
            + n_used * (columns["bucket"].itemsize + slot_width))
    words = (body + 3) // 4
    unpacked = _HEADER.size + (words + 31) // 32 * 4 + words * 4
    out = _buffer(int(unpacked.sum()))
    ends = pack_rows(
        header.view(np.uint8).reshape(len(rows), _HEADER.size),
        np.ascontiguousarray(rows, dtype=np.int64),
        columns["bucket"],
        _row_bytes_view(columns["bucket"]),
        columns["slot"],
        NO_BUCKET,
        tuple(_row_bytes_view(columns[name]) for name, _ in before),
        before_bytes,
        tuple(_row_bytes_view(slots[name]) for name in _SLOT_COLUMNS),
        _SLOT_COLUMNS.index("kmv_hash"),
        tuple(_row_bytes_view(columns[name]) for name, _ in after),
        after_bytes,
        out,
    )
    raw = out[: int(ends[-1])].tobytes()
    starts = np.concatenate(([0], ends[:-1])).tolist()
    return [raw[start:end] for start, end in zip(starts, ends.tolist(), strict=True)]


def _kept_bytes(
    columns: dict[str, NDArray[Any]], parts: list[tuple[str, NDArray[np.int64]]]
) -> NDArray[np.int64]:
    """(rows, parts): the bytes each row keeps of each part."""
    return np.stack([count * columns[name].itemsize for name, count in parts], axis=1)


def _row_bytes_view(column: NDArray[Any]) -> NDArray[np.uint8]:
    """A column as one row of bytes per record (a view)."""
    return column.reshape(len(column), -1).view(np.uint8)


def _buffer(size: int) -> NDArray[np.uint8]:
    """Uninitialised bytes (a test fills them with garbage instead)."""
    return np.empty(size, np.uint8)


def row_watermarks(datas: list[bytes]) -> NDArray[np.int64]:
    """Each row's watermark (its latest call) from its header, without loading it."""
    offset = _HEADER_FIELDS.fields["watermark"][1]  # type: ignore[index]
    stamps = b"".join([data[offset : offset + 8] for data in datas])
    return np.frombuffer(stamps, "<i8").astype(np.int64)


def row_last_emitted(datas: list[bytes]) -> NDArray[np.int64]:
    """Each row's last emission (window end, -1 if never) from its header, without loading it."""
    offset = _HEADER_FIELDS.fields["last_emitted"][1]  # type: ignore[index]
    stamps = b"".join([data[offset : offset + 8] for data in datas])
    return np.frombuffer(stamps, "<i8").astype(np.int64)


def load_row_bytes(block: CallerBlock, row: int, data: bytes) -> None:
    """Fill the fresh ``row`` (no slots held) from :func:`row_bytes` output (or version 2)."""
    fields = _HEADER.unpack_from(data, 0)
    version, fingerprint, watermark, last_offset, last_emitted, generation = fields[:6]
    pending_n, recent_n, recent_next, inbound_byte, mask, held_n = fields[6:]
    has_inbound, inbox_n = inbound_byte & 1, inbound_byte >> 1
    if version not in (*_READ_VERSIONS, _UNPACKED_VERSION):
        raise ValueError(
            f"caller block row version {version}, this code reads {_UNPACKED_VERSION} to "
            f"{_VERSION}"
        )
    if fingerprint != block.fingerprint:
        raise ValueError("caller block row was written under another FeatureConfig")
    columns = block.callers.columns
    ring = columns["bucket"].shape[1]
    used = ((mask >> np.arange(ring)) & 1).astype(bool)
    n_used = int(used.sum())
    if inbox_n > columns["inbox_ms"].shape[1]:
        raise ValueError(
            f"caller block row holds {inbox_n} inbox calls, this FeatureConfig "
            f"{columns['inbox_ms'].shape[1]} (inbound_pending)"
        )
    if version in _READ_VERSIONS:
        body_bytes = _body_bytes(block, n_used, pending_n, recent_n, held_n, has_inbound, inbox_n)
        data = data[: _HEADER.size] + _unpacked_body(data, body_bytes)
    offset = _HEADER.size

    def take(dtype: np.dtype, count: int, shape: tuple[int, ...] = ()) -> np.ndarray:
        nonlocal offset
        values = np.frombuffer(data, dtype, count * math.prod(shape), offset)
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
        values = take(slots[name].dtype, n_used, slots[name].shape[1:])
        slots[name][records] = _stored(name, values) if version in _READ_VERSIONS else values
    columns["bucket"][row, used] = held
    columns["slot"][row, used] = records
    if has_inbound:
        columns["inbound"][row] = take(columns["inbound"].dtype, 1, columns["inbound"].shape[1:])[0]
    columns["inbox_n"][row] = inbox_n
    columns["inbox_ms"][row, :inbox_n] = take(columns["inbox_ms"].dtype, inbox_n)
    columns["inbox_hash"][row, :inbox_n] = take(columns["inbox_hash"].dtype, inbox_n)
    if offset != len(data):
        raise ValueError(f"caller block row has {len(data) - offset} trailing bytes")


def _body_bytes(
    block: CallerBlock,
    slots: Any,
    pending: Any,
    recent: Any,
    held: Any,
    inbound: Any,
    inbox: Any = 0,
) -> Any:
    """How long a row's unpacked body is, from the counts in its header (or many rows').

    Counts are ints for one row, arrays for many (``features.block.load``).
    """
    per_slot, per_pending, per_recent, per_held, filter_bytes = _item_bytes(block)
    columns = block.callers.columns
    per_inbox = columns["inbox_ms"].itemsize + columns["inbox_hash"].itemsize
    return (
        slots * per_slot
        + pending * per_pending
        + recent * per_recent
        + held * per_held
        + inbound * filter_bytes
        + inbox * per_inbox
    )


_ITEM_BYTES: dict[int, tuple[int, int, int, int, int]] = {}  # by layout fingerprint


def _item_bytes(block: CallerBlock) -> tuple[int, int, int, int, int]:
    """Bytes per held slot, buffered call, recent id and held complaint; the filter's bytes."""
    found = _ITEM_BYTES.get(block.fingerprint)
    if found is None:
        columns, records = block.callers.columns, block.slots.columns

        def width(column: NDArray[Any]) -> int:
            return column.itemsize * int(np.prod(column.shape[1:]))

        found = (
            columns["bucket"].itemsize + sum(width(records[name]) for name in _SLOT_COLUMNS),
            columns["pending_ms"].itemsize + columns["pending_key"].itemsize,
            columns["recent"].itemsize,
            columns["held_bucket"].itemsize + columns["held_count"].itemsize,
            width(columns["inbound"]),
        )
        _ITEM_BYTES[block.fingerprint] = found
    return found


def _unpacked_body(data: bytes, body_bytes: int) -> bytes:
    """The body of a version 3 row, as version 2 holds it (see :func:`_packed_body`)."""
    body_words = -(-body_bytes // 4)
    bitmap_words = -(-body_words // 32)
    bitmap = np.frombuffer(data, np.uint8, bitmap_words * 4, _HEADER.size)
    nonzero = np.unpackbits(bitmap, bitorder="little")[:body_words].astype(bool)
    start = _HEADER.size + bitmap_words * 4
    expected = start + 4 * int(nonzero.sum())
    if len(data) != expected:
        raise ValueError(f"caller block row of {len(data)} bytes, its header says {expected}")
    words = np.zeros(body_words, _WORD)
    words[nonzero] = np.frombuffer(data, _WORD, offset=start)
    return words.tobytes()[:body_bytes]
