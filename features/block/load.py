"""Many callers' rows loaded into a :class:`~features.block.engine.CallerBlock` at once.

:func:`features.block.rows.load_row_bytes` reads one row in about 50 µs,
mostly Python and numpy calls per part of the layout. A worker that keeps
idle callers as bytes (``CALLGUARD_CALLER_HOT_S``) loads hundreds of them per
message, so :func:`load_rows_bytes` reads a list of version 3 or 4 rows with a
fixed number of numpy operations:

1. the headers, as one record array;
2. each row's body unpacked by words into one table (a row per caller): the
   bitmaps gathered and unpacked together, the non-zero words scattered to
   where their bits say;
3. each part of the layout (held buckets, buffer, recent ids, held
   complaints, slot records, filter, inbox) gathered from the table at its per-row
   offset, as a fixed-width block per row, and assigned where the row's
   counts say.

The result equals one :func:`~features.block.rows.load_row_bytes` per row
(a test checks it on every configuration's rows). Rows this does not read
(version 2, or anything malformed) raise :class:`ValueError`; the caller
then loads them one by one, for the precise error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from features.block.rows import (
    _HEADER,
    _HEADER_FIELDS,
    _HEADER_WORDS,
    _READ_VERSIONS,
    _SLOT_COLUMNS,
    _WORD,
    _body_bytes,
    _stored,
)

if TYPE_CHECKING:
    from features.block.engine import CallerBlock

__all__ = ["load_rows_bytes"]


def load_rows_bytes(block: CallerBlock, rows: NDArray[np.int64], datas: list[bytes]) -> None:
    """Fill the fresh ``rows`` (no slots held) from version 3 or 4 row bytes, one row each."""
    count = len(rows)
    if count == 0:
        return
    lengths = np.fromiter(map(len, datas), np.int64, count)
    if (lengths < _HEADER.size).any() or (lengths % 4).any():
        raise ValueError("a row is not a whole number of words")
    raw = np.frombuffer(b"".join(datas), _WORD)
    starts = (np.cumsum(lengths) - lengths) // 4  # in words
    header = raw[starts[:, None] + np.arange(_HEADER_WORDS)].view(_HEADER_FIELDS)[:, 0]
    known = np.isin(header["version"], _READ_VERSIONS)
    if not known.all() or (header["fingerprint"] != block.fingerprint).any():
        raise ValueError("a row of another version or FeatureConfig")
    columns = block.callers.columns
    limits = {
        "pending_n": columns["pending_ms"].shape[1],
        "recent_n": columns["recent"].shape[1],
        "recent_next": columns["recent"].shape[1] - 1,
        "held_n": columns["held_bucket"].shape[1],
    }
    inbox_n = header["has_inbound"].astype(np.int64) >> 1
    if any((header[name] > limit).any() for name, limit in limits.items()) or (
        inbox_n > columns["inbox_ms"].shape[1]
    ).any():
        raise ValueError("a row counts more items than the layout holds")
    ring = columns["bucket"].shape[1]
    used = ((header["mask"].astype(np.int64)[:, None] >> np.arange(ring)) & 1).astype(bool)
    n_used = used.sum(axis=1)
    counts = {name: header[name].astype(np.int64) for name in ("pending_n", "recent_n", "held_n")}
    has_inbound = (header["has_inbound"] & 1).astype(bool)
    body_bytes = _body_bytes(
        block, n_used, counts["pending_n"], counts["recent_n"], counts["held_n"], has_inbound,
        inbox_n,
    )
    body = _unpacked_bodies(raw, starts, lengths // 4, body_bytes)
    offset = np.arange(count, dtype=np.int64) * body.shape[1]  # into the flat table
    flat = body.reshape(-1)

    def take(
        dtype: np.dtype[Any], items: NDArray[np.int64], shape: tuple[int, ...] = ()
    ) -> NDArray[Any]:
        """Each row's next ``items`` values of ``dtype`` (a (rows, most items, *shape) array).

        Gathered as opaque items of one value's width, through a view of the
        table with such an item starting at every byte.
        """
        nonlocal offset
        width = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
        most = int(items.max())
        item = np.dtype((np.void, width))
        view = np.ndarray((len(flat) - width + 1,), item, flat, 0, (1,))
        index = offset[:, None] + np.arange(most) * width
        np.minimum(index, len(view) - 1, out=index)  # past a row's items: never used
        offset += items * width
        return view[index].view(dtype).reshape(count, most, *shape)

    def fill(name: str, values: NDArray[Any], items: NDArray[np.int64]) -> None:
        valid = np.arange(values.shape[1]) < items[:, None]
        row_index, item_index = np.nonzero(valid)
        columns[name][rows[row_index], item_index] = values[valid]

    held = take(columns["bucket"].dtype, n_used)
    for name in ("watermark", "last_offset", "last_emitted", "inbound_generation"):
        columns[name][rows] = header[name]
    for name in ("pending_n", "recent_n", "recent_next", "held_n"):
        columns[name][rows] = header[name]
    for name in ("pending_ms", "pending_key"):
        fill(name, take(columns[name].dtype, counts["pending_n"]), counts["pending_n"])
    fill("recent", take(columns["recent"].dtype, counts["recent_n"]), counts["recent_n"])
    for name in ("held_bucket", "held_count"):
        fill(name, take(columns[name].dtype, counts["held_n"]), counts["held_n"])
    records = block.slots.allocate(int(n_used.sum()))
    slot_columns = block.slots.columns
    kept = np.arange(int(n_used.max())) < n_used[:, None]
    for name in _SLOT_COLUMNS:
        column = slot_columns[name]
        values = take(column.dtype, n_used, column.shape[1:])
        slot_columns[name][records] = _stored(name, values[kept])
    row_index, ring_index = np.nonzero(used)
    columns["bucket"][rows[row_index], ring_index] = held[kept]
    columns["slot"][rows[row_index], ring_index] = records
    if has_inbound.any():
        shape = columns["inbound"].shape[1:]
        values = take(columns["inbound"].dtype, has_inbound.astype(np.int64), shape)
        columns["inbound"][rows[has_inbound]] = values[has_inbound, 0]
    columns["inbox_n"][rows] = inbox_n
    if inbox_n.any():
        for name in ("inbox_ms", "inbox_hash"):
            fill(name, take(columns[name].dtype, inbox_n), inbox_n)


def _unpacked_bodies(
    raw: NDArray[np.uint32],
    starts: NDArray[np.int64],
    words: NDArray[np.int64],
    body_bytes: NDArray[np.int64],
) -> NDArray[np.uint8]:
    """Every row's body as version 2 holds it, one row of bytes each (zero padded)."""
    count = len(starts)
    body_words = -(-body_bytes // 4)
    bitmap_words = -(-body_words // 32)
    index = starts[:, None] + _HEADER_WORDS + np.arange(int(bitmap_words.max()))
    bitmaps = raw[np.minimum(index, len(raw) - 1)]
    bitmaps[np.arange(bitmaps.shape[1]) >= bitmap_words[:, None]] = 0  # another row's words
    nonzero = np.unpackbits(bitmaps.view(np.uint8), axis=1, bitorder="little").astype(bool)
    nonzero &= np.arange(nonzero.shape[1]) < body_words[:, None]
    stored = nonzero.sum(axis=1)
    if (words != _HEADER_WORDS + bitmap_words + stored).any():
        raise ValueError("a row's length is not what its header says")
    table = np.zeros((count, nonzero.shape[1] + 1), _WORD)  # a spare word: never empty
    first = starts + _HEADER_WORDS + bitmap_words
    runs = np.repeat(first - (np.cumsum(stored) - stored), stored)
    table[:, :-1][nonzero] = raw[runs + np.arange(int(stored.sum()))]
    return table.view(np.uint8)
