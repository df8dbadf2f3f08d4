"""``cdr_id`` fingerprints: how both engines recognise a resent call.

Each caller keeps 32-bit fingerprints (CRC-32) of its last :data:`RECENT_IDS`
``cdr_id`` values, which catch a carrier's resends. A resend of a call that
ended before the caller's watermark minus the grace is dropped as late
anyway, so the memory only has to span about two graces of call starts:
exact unless a caller places more than :data:`RECENT_IDS` calls in that time
(240 s by default). Two distinct ids share a fingerprint with probability
about ``RECENT_IDS / 2**32`` per call (about 1 in 130 million).

The block engine keeps them in its ``recent`` columns
(:mod:`features.block.layout`); the reference engine in its records
(:mod:`features.reference.caller_record`).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["RECENT_IDS", "fingerprints"]

RECENT_IDS = 32


def fingerprints(cdr_ids: Sequence[str]) -> NDArray[np.uint32]:
    """32-bit fingerprints of ``cdr_id`` values (CRC-32: stable across processes)."""
    return np.fromiter((zlib.crc32(cdr_id.encode()) for cdr_id in cdr_ids), np.uint32, len(cdr_ids))
