"""The compiled part of the row codec: many callers' rows packed by words, and read back.

:func:`features.block.rows.rows_bytes` builds the rows' headers with numpy
and hands the block's columns here as bytes; :func:`pack_rows` gathers each
row's parts from them (the held buckets, prefixes of per-caller columns,
the held slot records), lays its body out part after part, then writes the
row as version 3 and 4 hold it: the header, a bitmap with one bit per
4-byte word of the body, and the body's non-zero words. :func:`unpack_rows`
reads rows back into the columns. numba compiles both once and caches them
on disk beside this module (:func:`features.block.engine.warm_up_kernels`
loads them before the worker joins its groups); no Python object is
touched inside.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

__all__ = ["pack_rows", "unpack_rows"]


@njit(cache=True, nogil=True)  # type: ignore[misc]  # numba ships no type information
def pack_rows(  # noqa: PLR0913, PLR0912 - the parts of the layout, in order
    header: NDArray[np.uint8],
    rows: NDArray[np.int64],
    bucket: NDArray[np.int64],
    bucket_bytes: NDArray[np.uint8],
    slot: NDArray[np.int32],
    empty_bucket: int,
    before: tuple[NDArray[np.uint8], ...],
    before_bytes: NDArray[np.int64],
    slots: tuple[NDArray[np.uint8], ...],
    inverted: int,
    after: tuple[NDArray[np.uint8], ...],
    after_bytes: NDArray[np.int64],
    out: NDArray[np.uint8],
) -> NDArray[np.int64]:
    """Write each row packed into ``out``, one after another; each row's end in ``out``.

    ``header``: (rows, header bytes). Row ``i`` is block row ``rows[i]``:
    its body is the ring's held buckets (``bucket`` not ``empty_bucket``,
    in ring order, read from ``bucket_bytes``), the ``before`` parts (byte
    views of the callers' columns, a prefix of ``before_bytes[i, p]`` bytes
    each), the held slots' records, part after part (``slots``: byte views
    of the slot pool's columns, part ``inverted`` stored inverted), then the
    ``after`` parts. ``out`` must hold every row unpacked (header, bitmap
    and every body word). Rows, headers and bitmaps are whole 4-byte words,
    so the body's words are written as words (little-endian, as the
    format's ``<u4`` words are on the machines callguard runs on).
    """
    count = len(rows)
    ring = bucket.shape[1]
    width = 0
    for p in range(len(slots)):
        width += slots[p].shape[1]
    longest = 0
    for i in range(count):
        held = 0
        for r in range(ring):
            if bucket[rows[i], r] != empty_bucket:
                held += 1
        body = before_bytes[i].sum() + after_bytes[i].sum() + held * (8 + width)
        longest = max(longest, body)
    scratch = np.empty((longest + 4) // 4 * 4 + 4, np.uint8)
    body_words = scratch.view(np.uint32)
    out_words = out[: len(out) // 4 * 4].view(np.uint32)
    ends = np.empty(count, np.int64)
    at = 0
    for i in range(count):
        row = rows[i]
        size = 0
        for r in range(ring):
            if bucket[row, r] != empty_bucket:
                scratch[size : size + 8] = bucket_bytes[row, r * 8 : r * 8 + 8]
                size += 8
        for p in range(len(before)):
            part = before_bytes[i, p]
            scratch[size : size + part] = before[p][row, :part]
            size += part
        for p in range(len(slots)):
            part_width = slots[p].shape[1]
            for r in range(ring):
                if bucket[row, r] == empty_bucket:
                    continue
                record = slots[p][slot[row, r]]
                if p == inverted:
                    for b in range(part_width):
                        scratch[size + b] = record[b] ^ np.uint8(0xFF)
                else:
                    scratch[size : size + part_width] = record
                size += part_width
        for p in range(len(after)):
            part = after_bytes[i, p]
            scratch[size : size + part] = after[p][row, :part]
            size += part
        words = (size + 3) // 4
        scratch[size : words * 4] = 0
        header_bytes = header.shape[1]
        out[at : at + header_bytes] = header[i]
        at += header_bytes
        bitmap = at // 4
        at = (at + (words + 31) // 32 * 4) // 4
        bits = np.uint32(0)
        for word in range(words):
            value = body_words[word]
            if value != 0:
                bits |= np.uint32(1) << np.uint32(word & 31)
                out_words[at] = value
                at += 1
            if word & 31 == 31 or word == words - 1:
                out_words[bitmap + (word >> 5)] = bits
                bits = np.uint32(0)
        at *= 4
        ends[i] = at
    return ends


@njit(cache=True, nogil=True)  # type: ignore[misc]
def unpack_rows(  # noqa: PLR0913, PLR0912 - the parts of the layout, in order
    raw: NDArray[np.uint8],
    starts: NDArray[np.int64],
    lengths: NDArray[np.int64],
    header_bytes: int,
    body_bytes: NDArray[np.int64],
    rows: NDArray[np.int64],
    used: NDArray[np.bool_],
    first_record: NDArray[np.int64],
    records: NDArray[np.int64],
    bucket: NDArray[np.uint8],
    slot: NDArray[np.int32],
    before: tuple[NDArray[np.uint8], ...],
    before_bytes: NDArray[np.int64],
    slots: tuple[NDArray[np.uint8], ...],
    slot_widths: NDArray[np.int64],
    inverted: int,
    after: tuple[NDArray[np.uint8], ...],
    after_bytes: NDArray[np.int64],
) -> int:
    """Read rows packed by :func:`pack_rows` into the block's columns; -1, or the first bad row.

    ``raw[starts[i]:starts[i] + lengths[i]]`` is row ``i``, for block row
    ``rows[i]``. Its body, unpacked, is: the held buckets (``bucket``, a
    byte view of the ring's buckets, at the ring slots ``used[i]`` marks),
    the ``before`` parts (byte views of the callers' columns, a prefix of
    ``before_bytes[i, p]`` bytes each), the slot records' columns (``slots``,
    byte views of the slot pool; row ``i`` fills records
    ``records[first_record[i]:]``, one per held bucket; part ``inverted`` is
    stored inverted), then the ``after`` parts. A row whose length is not
    what its header and bitmap say is bad: nothing after it is read.
    """
    longest = 0
    for i in range(len(rows)):
        longest = max(longest, body_bytes[i])
    scratch = np.zeros((longest + 3) // 4 * 4, np.uint8)
    ring = used.shape[1]
    for i in range(len(rows)):
        words = (body_bytes[i] + 3) // 4
        bitmap = starts[i] + header_bytes
        at = bitmap + (words + 31) // 32 * 4
        end = starts[i] + lengths[i]
        for word in range(words):
            if raw[bitmap + (word >> 3)] >> (word & 7) & 1:
                if at + 4 > end:
                    return i
                scratch[word * 4 : word * 4 + 4] = raw[at : at + 4]
                at += 4
            else:
                scratch[word * 4 : word * 4 + 4] = 0
        if at != end:
            return i
        row = rows[i]
        size = 0
        record = first_record[i]
        for r in range(ring):  # the held buckets, in ring order
            if used[i, r]:
                bucket[row, r * 8 : r * 8 + 8] = scratch[size : size + 8]
                slot[row, r] = records[record]
                record += 1
                size += 8
        for p in range(len(before)):
            count = before_bytes[i, p]
            before[p][row, :count] = scratch[size : size + count]
            size += count
        held = record - first_record[i]
        for p in range(len(slots)):
            width = slot_widths[p]
            for r in range(held):
                target = slots[p][records[first_record[i] + r]]
                if p == inverted:
                    for b in range(width):
                        target[b] = scratch[size + b] ^ np.uint8(0xFF)
                else:
                    target[:] = scratch[size : size + width]
                size += width
        for p in range(len(after)):
            count = after_bytes[i, p]
            after[p][row, :count] = scratch[size : size + count]
            size += count
    return -1
