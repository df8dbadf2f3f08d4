"""The internal wire format of ``cdr.by_caller``: everything one partition needs.

A message carries, for one partition of callers, columns of three kinds of
record (each kind may be empty):

- ``calls``: validated CDRs whose *caller* belongs to the partition;
- ``inbound``: (callee, caller, time) of CDRs whose *callee* belongs to the
  partition, so that a caller's state learns who called it (reciprocity);
- ``complaints``: complaints whose *reported* number belongs to the partition;
- ``appeals``: operators' upheld appeals (``callguard appeal``), so the
  worker that owns the number's flag lifts it.

Columns let the feature stage hand numpy arrays to the feature code without
a per-CDR object; numbers are already normalised, nothing is validated again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from streams.feature_stage import Emission

from features.cdr import CDR
from features.complaints import Complaint
from features.vector import FEATURE_NAMES

__all__ = [
    "AppealColumns",
    "CdrColumns",
    "ComplaintColumns",
    "InboundColumns",
    "RoutedBatch",
    "decode_features",
    "decode_routed",
    "encode_features",
    "encode_routed",
]


@dataclass(slots=True)
class CdrColumns:
    """Validated CDRs as parallel lists (disposition as its string value)."""

    cdr_id: list[str] = field(default_factory=list)
    caller: list[str] = field(default_factory=list)
    callee: list[str] = field(default_factory=list)
    start_ms: list[int] = field(default_factory=list)
    duration_s: list[float] = field(default_factory=list)
    disposition: list[str] = field(default_factory=list)
    ring_s: list[float | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.cdr_id)

    def append(self, cdr: CDR) -> None:
        """Add one record at the end."""
        self.cdr_id.append(cdr.cdr_id)
        self.caller.append(cdr.caller)
        self.callee.append(cdr.callee)
        self.start_ms.append(cdr.start_ms)
        self.duration_s.append(cdr.duration_s)
        self.disposition.append(cdr.disposition.value)
        self.ring_s.append(cdr.ring_s)

    @classmethod
    def from_cdrs(cls, cdrs: Sequence[CDR]) -> CdrColumns:
        """Columns of the given records, in their order."""
        columns = cls()
        for cdr in cdrs:
            columns.append(cdr)
        return columns


@dataclass(slots=True)
class InboundColumns:
    """Who called a number of this partition, and when."""

    number: list[str] = field(default_factory=list)
    from_number: list[str] = field(default_factory=list)
    time_ms: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.number)


@dataclass(slots=True)
class ComplaintColumns:
    """Complaints about numbers of this partition."""

    complaint_id: list[str] = field(default_factory=list)
    number: list[str] = field(default_factory=list)
    time_ms: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.number)

    def append(self, complaint: Complaint) -> None:
        """Add one complaint at the end."""
        self.complaint_id.append(complaint.complaint_id)
        self.number.append(complaint.reported)
        self.time_ms.append(complaint.time_ms)


@dataclass(slots=True)
class AppealColumns:
    """Operators' upheld appeals about numbers of this partition."""

    number: list[str] = field(default_factory=list)
    actor: list[str] = field(default_factory=list)
    why: list[str] = field(default_factory=list)
    time_ms: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.number)

    def rows(self) -> list[tuple[str, str, str, int]]:
        """(number, actor, why, time_ms) per appeal."""
        return list(zip(self.number, self.actor, self.why, self.time_ms, strict=True))


@dataclass(slots=True)
class RoutedBatch:
    """One ``cdr.by_caller`` message."""

    calls: CdrColumns = field(default_factory=CdrColumns)
    inbound: InboundColumns = field(default_factory=InboundColumns)
    complaints: ComplaintColumns = field(default_factory=ComplaintColumns)
    appeals: AppealColumns = field(default_factory=AppealColumns)

    def __len__(self) -> int:
        return len(self.calls) + len(self.inbound) + len(self.complaints) + len(self.appeals)


_PARTS = {
    "calls": CdrColumns,
    "inbound": InboundColumns,
    "complaints": ComplaintColumns,
    "appeals": AppealColumns,
}


def encode_routed(batch: RoutedBatch) -> bytes:
    """Serialise for ``cdr.by_caller`` (empty parts are left out)."""
    message = {}
    for name in _PARTS:
        part = getattr(batch, name)
        if len(part):
            message[name] = {column.name: getattr(part, column.name) for column in fields(part)}
    return orjson.dumps(message)


def decode_routed(raw: bytes) -> RoutedBatch:
    """Inverse of :func:`encode_routed`; ``ValueError`` on a foreign message."""
    decoded = orjson.loads(raw)
    if not isinstance(decoded, dict) or not set(decoded) <= set(_PARTS):
        raise ValueError("not a cdr.by_caller batch")
    batch = RoutedBatch()
    for name, part_type in _PARTS.items():
        if name in decoded:
            columns = decoded[name]
            if len({len(values) for values in columns.values()}) != 1:
                raise ValueError(f"cdr.by_caller {name} has columns of different lengths")
            setattr(batch, name, part_type(**columns))
    return batch


def encode_features(emission: Emission) -> bytes:
    """One ``caller.features`` message: emitted callers and their feature rows.

    ``{"feature_names": [...], "numbers": [...], "window_end_ms": [...], "rows": [[...]]}``
    """
    return orjson.dumps(
        {
            "feature_names": list(FEATURE_NAMES),
            "numbers": emission.numbers,
            "window_end_ms": emission.window_end_ms,
            "rows": emission.matrix(),
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


def decode_features(raw: bytes) -> dict[str, list]:  # type: ignore[type-arg]
    """Inverse of :func:`encode_features`, as plain lists."""
    return orjson.loads(raw)  # type: ignore[no-any-return]
