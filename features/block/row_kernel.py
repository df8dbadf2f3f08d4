"""The compiled part of the row codec: many callers' rows packed by words in one pass.

:func:`features.block.rows.rows_bytes` gathers each part of the layout for
all its rows with numpy (header records, prefixes of per-caller columns,
the held slot records) and hands them here as bytes; :func:`pack_rows`
lays each row's body out part after part, then writes the row as version 3
and 4 hold it: the header, a bitmap with one bit per 4-byte word of the
body, and the body's non-zero words. numba compiles it once and caches it on
disk beside this module (:func:`features.block.engine.warm_up_codec` loads it
before the worker joins its groups); no Python object is touched inside.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

__all__ = ["pack_rows"]


@njit(cache=True, nogil=True)  # type: ignore[misc]  # numba ships no type information
def pack_rows(  # noqa: PLR0913 - the parts of the layout, in order
    header: NDArray[np.uint8],
    before: tuple[NDArray[np.uint8], ...],
    before_bytes: NDArray[np.int64],
    slots: tuple[NDArray[np.uint8], ...],
    slot_widths: NDArray[np.int64],
    first_record: NDArray[np.int64],
    records: NDArray[np.int64],
    after: tuple[NDArray[np.uint8], ...],
    after_bytes: NDArray[np.int64],
    out: NDArray[np.uint8],
) -> NDArray[np.int64]:
    """Write each row packed into ``out``, one after another; each row's end in ``out``.

    ``header``: (rows, header bytes). ``before`` and ``after``: parts held as
    a row's prefix of a column, (rows, bytes) each, of which row ``i`` keeps
    ``before_bytes[i, p]`` bytes. ``slots``: the slot records' columns, one
    record after another, ``slot_widths[p]`` bytes each; row ``i`` holds
    ``records[i]`` records from ``first_record[i]``. ``out`` must hold every
    row unpacked (header, bitmap and every body word).
    """
    rows = header.shape[0]
    longest = 0
    for i in range(rows):
        body = before_bytes[i].sum() + after_bytes[i].sum() + records[i] * slot_widths.sum()
        longest = max(longest, body)
    scratch = np.empty(longest + 4, np.uint8)
    ends = np.empty(rows, np.int64)
    at = 0
    for i in range(rows):
        size = 0
        for p in range(len(before)):
            count = before_bytes[i, p]
            scratch[size : size + count] = before[p][i, :count]
            size += count
        for p in range(len(slots)):
            width = slot_widths[p]
            count = records[i] * width
            start = first_record[i] * width
            scratch[size : size + count] = slots[p][start : start + count]
            size += count
        for p in range(len(after)):
            count = after_bytes[i, p]
            scratch[size : size + count] = after[p][i, :count]
            size += count
        words = (size + 3) // 4
        scratch[size : words * 4] = 0
        header_bytes = header.shape[1]
        out[at : at + header_bytes] = header[i]
        at += header_bytes
        bitmap = at
        bitmap_bytes = (words + 31) // 32 * 4
        out[bitmap : bitmap + bitmap_bytes] = 0
        at += bitmap_bytes
        for word in range(words):
            first = word * 4
            if (scratch[first] | scratch[first + 1] | scratch[first + 2] | scratch[first + 3]) != 0:
                out[bitmap + (word >> 3)] |= np.uint8(1 << (word & 7))
                out[at : at + 4] = scratch[first : first + 4]
                at += 4
        ends[i] = at
    return ends

