"""The internal wire format of ``cdr.by_caller``: validated CDRs, columnar.

One message carries the validated CDRs of one ingest batch that belong to
one partition, as a JSON object of equal-length columns. Columns let the
feature stage hand numpy arrays to the feature code without a per-CDR
object; numbers are already normalised, so nothing is validated again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from features.cdr import CDR

__all__ = ["CdrColumns", "decode_columns", "encode_columns"]

_COLUMNS = ("cdr_id", "caller", "callee", "start_ms", "duration_s", "disposition", "ring_s")


@dataclass(frozen=True, slots=True)
class CdrColumns:
    """Validated CDRs as parallel lists (disposition as its string value)."""

    cdr_id: list[str]
    caller: list[str]
    callee: list[str]
    start_ms: list[int]
    duration_s: list[float]
    disposition: list[str]
    ring_s: list[float | None]

    def __len__(self) -> int:
        return len(self.cdr_id)

    @classmethod
    def from_cdrs(cls, cdrs: Sequence[CDR]) -> CdrColumns:
        """Columns of the given records, in their order."""
        return cls(
            cdr_id=[cdr.cdr_id for cdr in cdrs],
            caller=[cdr.caller for cdr in cdrs],
            callee=[cdr.callee for cdr in cdrs],
            start_ms=[cdr.start_ms for cdr in cdrs],
            duration_s=[cdr.duration_s for cdr in cdrs],
            disposition=[cdr.disposition.value for cdr in cdrs],
            ring_s=[cdr.ring_s for cdr in cdrs],
        )


def encode_columns(columns: CdrColumns) -> bytes:
    """Serialise for ``cdr.by_caller``."""
    return orjson.dumps({name: getattr(columns, name) for name in _COLUMNS})


def decode_columns(raw: bytes) -> CdrColumns:
    """Inverse of :func:`encode_columns`; raises ``ValueError`` on a foreign message."""
    decoded = orjson.loads(raw)
    if not isinstance(decoded, dict) or set(decoded) != set(_COLUMNS):
        raise ValueError("not a cdr.by_caller columnar batch")
    lengths = {len(decoded[name]) for name in _COLUMNS}
    if len(lengths) != 1:
        raise ValueError("cdr.by_caller batch has columns of different lengths")
    return CdrColumns(**decoded)
