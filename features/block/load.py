"""Many callers' rows loaded into a :class:`~features.block.engine.CallerBlock` at once.

:func:`features.block.rows.load_row_bytes` reads one row in about 50 µs,
mostly Python and numpy calls per part of the layout. A worker that keeps
idle callers as bytes (``CALLGUARD_CALLER_HOT_S``) loads hundreds of them per
message, so :func:`load_rows_bytes` reads a list of version 3 or 4 rows at once:

1. the headers, as one record array, checked and copied with numpy;
2. the slot records every row needs, taken from the pool in one call;
3. one compiled pass (:func:`features.block.row_kernel.unpack_rows`) that
   unpacks each row's body by words and copies each part of the layout
   (held buckets, buffer, recent ids, held complaints, slot records, filter,
   inbox) where the row's counts say.

The result equals one :func:`~features.block.rows.load_row_bytes` per row
(a test checks it on every configuration's rows). Rows this does not read
(version 2, or anything malformed) raise :class:`ValueError`; the caller
then loads them one by one, for the precise error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from features.block.row_kernel import unpack_rows
from features.block.rows import (
    _HEADER,
    _HEADER_FIELDS,
    _HEADER_WORDS,
    _READ_VERSIONS,
    _SLOT_COLUMNS,
    _WORD,
    _body_bytes,
    _row_bytes_view,
)

if TYPE_CHECKING:
    from features.block.engine import CallerBlock

__all__ = ["load_rows_bytes"]


def load_rows_bytes(block: CallerBlock, rows: NDArray[np.int64], datas: list[bytes]) -> None:
    """Fill the fresh ``rows`` (no slots held) from version 3 or 4 row bytes, one row each.

    Raises :class:`ValueError` for rows it does not read, with the slot pool
    as it was (the rows may be partly written: the caller resets them).
    """
    count = len(rows)
    if count == 0:
        return
    lengths = np.fromiter(map(len, datas), np.int64, count)
    if (lengths < _HEADER.size).any() or (lengths % 4).any():
        raise ValueError("a row is not a whole number of words")
    joined = b"".join(datas)
    raw = np.frombuffer(joined, _WORD)
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
    words = -(-body_bytes // 4)
    if (lengths < _HEADER.size + -(-words // 32) * 4).any():
        raise ValueError("a row is shorter than its bitmap")
    for name in ("watermark", "last_offset", "last_emitted", "inbound_generation"):
        columns[name][rows] = header[name]
    for name in ("pending_n", "recent_n", "recent_next", "held_n"):
        columns[name][rows] = header[name]
    columns["inbox_n"][rows] = inbox_n
    records = block.slots.allocate(int(n_used.sum()))
    slot_columns = block.slots.columns  # after allocating: the pool may have grown
    before = ("pending_ms", "pending_key", "recent", "held_bucket", "held_count")
    before_items = (counts["pending_n"], counts["pending_n"], counts["recent_n"],
                    counts["held_n"], counts["held_n"])
    after = ("inbound", "inbox_ms", "inbox_hash")
    after_items = (has_inbound.astype(np.int64) * columns["inbound"].shape[1], inbox_n, inbox_n)
    slot_views = tuple(_row_bytes_view(slot_columns[name]) for name in _SLOT_COLUMNS)
    bad = unpack_rows(
        np.frombuffer(joined, np.uint8),
        starts * 4,
        lengths,
        _HEADER.size,
        body_bytes,
        np.ascontiguousarray(rows, dtype=np.int64),
        used,
        np.cumsum(n_used) - n_used,
        records,
        _row_bytes_view(columns["bucket"]),
        columns["slot"],
        tuple(_row_bytes_view(columns[name]) for name in before),
        np.stack([items * columns[name].itemsize for name, items in zip(before, before_items,
                                                                       strict=True)], axis=1),
        slot_views,
        np.array([view.shape[1] for view in slot_views], np.int64),
        _SLOT_COLUMNS.index("kmv_hash"),
        tuple(_row_bytes_view(columns[name]) for name in after),
        np.stack([items * columns[name].itemsize for name, items in zip(after, after_items,
                                                                       strict=True)], axis=1),
    )
    if bad >= 0:  # the caller resets the rows; the records go back to the pool
        block.slots.release(records)
        raise ValueError("a row's length is not what its header says")
