"""The internal format of ``cdr.by_caller``: everything one partition needs.

A message carries, for one partition of callers, columns of three kinds of
record (each kind may be empty):

- ``calls``: validated CDRs whose *caller* belongs to the partition;
- ``inbound``: (callee, caller, time) of CDRs whose *callee* belongs to the
  partition, so that a caller's state learns who called it (reciprocity);
- ``complaints``: complaints whose *reported* number belongs to the partition;
- ``appeals``: operators' actions on a number's flag, so the worker that
  owns it applies them: upheld appeals (``callguard appeal``), and the
  review queue's confirmations and dismissals (``callguard review``), told
  apart by the optional ``kind`` column (absent: every row is an appeal, as
  in messages written before it existed).

Columns let the feature stage hand numpy arrays to the feature code without
a per-CDR object; numbers are already normalised, nothing is validated again.
The numbers of calls and inbound notes travel as their 64-bit keys
(:mod:`contracts.number_keys`: an E.164 number's digits as an integer, a
service number's with a tag), written as one base64 text of little-endian
int64 values per column, so they go from ingest's arrays to the feature
stage's compiled index as arrays, without a Python object per number.
Messages written before that hold lists of texts: :func:`decode_routed`
makes them keys too. Complaints and appeals keep their
numbers as text (few, and read by people).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

import numpy as np
import orjson
from numpy.typing import NDArray

from contracts.cdr import CDR
from contracts.complaints import Complaint
from contracts.number_keys import are_keys, number_key, number_keys, number_texts

__all__ = [
    "AppealColumns",
    "CdrColumns",
    "ComplaintColumns",
    "InboundColumns",
    "RoutedBatch",
    "decode_routed",
    "encode_routed",
    "encode_routed_parts",
    "in_time_order",
    "with_number_texts",
]

# Kafka's default record limit (message.max.bytes, max.request.size) is 1 MiB;
# internal messages stay below it with room for the record's overhead.
DEFAULT_MAX_MESSAGE_BYTES = 900_000


def _same_columns(one: object, other: object) -> bool:
    """Whether two parts of a batch hold the same values (lists and arrays alike)."""
    if type(one) is not type(other):
        return NotImplemented
    return all(
        _as_list(getattr(one, column.name)) == _as_list(getattr(other, column.name))
        for column in fields(one)  # type: ignore[arg-type]
    )


def _as_list(values: Sequence[Any] | NDArray[np.generic]) -> list[Any]:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


@dataclass(slots=True, eq=False)
class CdrColumns:
    """Validated CDRs as parallel lists (disposition as its string value).

    ``caller`` and ``callee``: number keys, as a list or an int64 array (texts
    in older messages).
    """

    cdr_id: list[str] = field(default_factory=list)
    caller: list[int] = field(default_factory=list)
    callee: list[int] = field(default_factory=list)
    start_ms: list[int] = field(default_factory=list)
    duration_s: list[float] = field(default_factory=list)
    disposition: list[str] = field(default_factory=list)
    ring_s: list[float | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.cdr_id)

    def __eq__(self, other: object) -> bool:
        return _same_columns(self, other)

    def append(self, cdr: CDR) -> None:
        """Add one record at the end."""
        if isinstance(self.caller, np.ndarray):  # filled from arrays before: lists again
            self.caller, self.callee = self.caller.tolist(), self.callee.tolist()
        self.cdr_id.append(cdr.cdr_id)
        self.caller.append(number_key(cdr.caller))
        self.callee.append(number_key(cdr.callee))
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


@dataclass(slots=True, eq=False)
class InboundColumns:
    """Who called a number of this partition, and when (numbers as keys, or older texts)."""

    number: list[int] = field(default_factory=list)
    from_number: list[int] = field(default_factory=list)
    time_ms: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.number)

    def __eq__(self, other: object) -> bool:
        return _same_columns(self, other)

    def append(self, number: int, from_number: int, time_ms: int) -> None:
        """Add one note at the end (numbers as keys)."""
        if isinstance(self.number, np.ndarray):  # filled from arrays before: lists again
            self.number, self.from_number = self.number.tolist(), self.from_number.tolist()
        self.number.append(number)
        self.from_number.append(from_number)
        self.time_ms.append(time_ms)


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
    """Operators' actions on flags of numbers of this partition.

    ``kind`` per row: ``appeal``, ``confirm`` or ``dismiss``
    (:data:`streams.stages.decision_stage.OPERATOR_ACTIONS`); left empty, every row
    is an appeal.
    """

    number: list[str] = field(default_factory=list)
    actor: list[str] = field(default_factory=list)
    why: list[str] = field(default_factory=list)
    time_ms: list[int] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.number)

    def actions(self) -> list[tuple[str, str, str, str, int]]:
        """(kind, number, actor, why, time_ms) per action."""
        kinds = self.kind or ["appeal"] * len(self.number)
        return list(zip(kinds, self.number, self.actor, self.why, self.time_ms, strict=True))


@dataclass(slots=True)
class RoutedBatch:
    """One ``cdr.by_caller`` message."""

    calls: CdrColumns = field(default_factory=CdrColumns)
    inbound: InboundColumns = field(default_factory=InboundColumns)
    complaints: ComplaintColumns = field(default_factory=ComplaintColumns)
    appeals: AppealColumns = field(default_factory=AppealColumns)

    def __len__(self) -> int:
        return len(self.calls) + len(self.inbound) + len(self.complaints) + len(self.appeals)


_Part = TypeVar("_Part", "CdrColumns", "InboundColumns", "ComplaintColumns", "AppealColumns")

_PARTS = {
    "calls": CdrColumns,
    "inbound": InboundColumns,
    "complaints": ComplaintColumns,
    "appeals": AppealColumns,
}


# Each part's column names, in their order: looked up once, not per message.
_COLUMNS = {name: tuple(column.name for column in fields(part)) for name, part in _PARTS.items()}
# Columns added later: left out of a message while empty, so older readers take it.
_OPTIONAL = {"appeals": frozenset({"kind"})}
# Number columns written as keys: base64 of little-endian int64 values.
_KEY_COLUMNS = {"calls": frozenset({"caller", "callee"}),
                "inbound": frozenset({"number", "from_number"})}
_KEY_DTYPE = np.dtype("<i8")


def _column_value(values: Sequence[object] | NDArray[np.int64], key_column: bool) -> object:
    """A column as the message holds it: keys as one base64 text, anything else as a list."""
    if key_column and len(values) and not isinstance(values[0], str):
        raw = np.ascontiguousarray(values, dtype=_KEY_DTYPE).tobytes()
        return base64.b64encode(raw).decode("ascii")
    return values


def encode_routed(batch: RoutedBatch) -> bytes:
    """Serialise for ``cdr.by_caller`` (empty parts are left out)."""
    message = {}
    for name, columns in _COLUMNS.items():
        part = getattr(batch, name)
        if len(part):
            optional = _OPTIONAL.get(name, frozenset())
            keys = _KEY_COLUMNS.get(name, frozenset())
            message[name] = {
                column: _column_value(getattr(part, column), column in keys)
                for column in columns
                if column not in optional or len(getattr(part, column))
            }
    return orjson.dumps(message)


def _slice(part: _Part, start: int, stop: int | None) -> _Part:
    return type(part)(**{c.name: getattr(part, c.name)[start:stop] for c in fields(part)})


def _halves(batch: RoutedBatch) -> tuple[RoutedBatch, RoutedBatch]:
    """Two batches that, applied in order, hold what ``batch`` holds.

    Calls and complaints are cut in the middle; inbound notes and appeals go
    with the second half, so they still come after every call of the
    original message (a number learns who called it once it has state, as
    it would have from the whole message). Once calls and complaints cannot
    be cut further, inbound notes and appeals are.
    """
    calls, complaints = len(batch.calls), len(batch.complaints)
    if calls > 1 or complaints > 1:
        cut_calls, cut_complaints = calls // 2, complaints // 2
        first = RoutedBatch(
            calls=_slice(batch.calls, 0, cut_calls),
            complaints=_slice(batch.complaints, 0, cut_complaints),
        )
        second = RoutedBatch(
            calls=_slice(batch.calls, cut_calls, None),
            complaints=_slice(batch.complaints, cut_complaints, None),
            inbound=batch.inbound,
            appeals=batch.appeals,
        )
        return first, second
    cut_inbound, cut_appeals = len(batch.inbound) // 2, len(batch.appeals) // 2
    first = RoutedBatch(
        calls=batch.calls,
        complaints=batch.complaints,
        inbound=_slice(batch.inbound, 0, cut_inbound),
        appeals=_slice(batch.appeals, 0, cut_appeals),
    )
    second = RoutedBatch(
        inbound=_slice(batch.inbound, cut_inbound, None),
        appeals=_slice(batch.appeals, cut_appeals, None),
    )
    return first, second


def encode_routed_parts(
    batch: RoutedBatch, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> list[bytes]:
    """``batch`` as one message, or as several (in order) when one would exceed ``max_bytes``.

    A batch of a single record that is still too large is returned as is:
    the producer then refuses it with Kafka's own error.
    """
    encoded = encode_routed(batch)
    if len(encoded) <= max_bytes or len(batch) <= 1:
        return [encoded]
    pieces = _pieces(batch, -(-len(encoded) * 10 // (max_bytes * 9)))  # 10% to spare
    if len(pieces) < 2:
        pieces = list(_halves(batch))
    return [part for piece in pieces for part in encode_routed_parts(piece, max_bytes)]


def _pieces(batch: RoutedBatch, count: int) -> list[RoutedBatch]:
    """``batch`` cut into about ``count`` pieces of about equal size, in order.

    One encoding per piece instead of one per level of halving: a routed
    batch ten times the limit was encoded four times. With calls to cut,
    the pieces follow event time (:func:`_pieces_in_time`); otherwise calls
    and complaints come first, then inbound notes and appeals.
    """
    if len(batch.calls) >= 2:
        return _pieces_in_time(batch, min(count, len(batch.calls)))
    heads = max(len(batch.calls), len(batch.complaints))
    tails = max(len(batch.inbound), len(batch.appeals))
    total = heads + tails
    pieces = []
    for names, rows in ((("calls", "complaints"), heads), (("inbound", "appeals"), tails)):
        cuts = max(1, round(count * rows / total)) if rows else 0
        for index in range(cuts):
            piece = RoutedBatch(**{
                name: _slice(
                    getattr(batch, name),
                    len(getattr(batch, name)) * index // cuts,
                    len(getattr(batch, name)) * (index + 1) // cuts,
                )
                for name in names
            })
            if len(piece):
                pieces.append(piece)
    return pieces


def _pieces_in_time(batch: RoutedBatch, count: int) -> list[RoutedBatch]:
    """Calls cut into ``count`` runs, each with the notes and complaints it reaches in time.

    An inbound note or a complaint goes with the first run whose calls reach
    its time (the latest call start of the runs so far), the later ones and
    the appeals with the last run. The stages apply a message's notes
    before the calls that follow them in time
    (:func:`streams.stages.event_clock.by_piece`), so the pieces, applied in
    order, emit the rows the whole message would: sent after all the calls
    instead, the notes of a message spanning hours missed every row
    emitted at its earlier cuts.
    """
    calls = batch.calls
    edges = [len(calls) * index // count for index in range(count + 1)]
    starts = np.asarray(calls.start_ms, dtype=np.int64)
    runs = list(zip(edges[:-1], edges[1:], strict=True))
    latest = np.maximum.accumulate([int(starts[first:last].max()) for first, last in runs[:-1]])

    def run_of(times: list[int]) -> NDArray[np.intp]:
        return np.searchsorted(latest, np.asarray(times, dtype=np.int64), side="left")

    notes, complaints = run_of(batch.inbound.time_ms), run_of(batch.complaints.time_ms)
    pieces = [
        RoutedBatch(
            calls=_slice(calls, first, last),
            inbound=_take(batch.inbound, np.flatnonzero(notes == index)),
            complaints=_take(batch.complaints, np.flatnonzero(complaints == index)),
        )
        for index, (first, last) in enumerate(runs)
    ]
    pieces[-1].appeals = batch.appeals
    return pieces


def in_time_order(batch: RoutedBatch) -> RoutedBatch:
    """``batch`` with its calls in start order and its inbound notes in time order (stable)."""
    calls, inbound = batch.calls, batch.inbound
    for name, times in (("calls", calls.start_ms), ("inbound", inbound.time_ms)):
        starts = np.asarray(times, dtype=np.int64)
        if len(starts) > 1 and not (starts[1:] >= starts[:-1]).all():
            setattr(batch, name, _take(getattr(batch, name), np.argsort(starts, kind="stable")))
    return batch


def _take(part: _Part, rows: NDArray[np.intp]) -> _Part:
    chosen = rows.tolist()

    def take(values: Sequence[Any] | NDArray[np.generic]) -> Any:
        if isinstance(values, np.ndarray):
            return values[rows]
        return [values[row] for row in chosen]

    return type(part)(**{c.name: take(getattr(part, c.name)) for c in fields(part)})


def with_number_texts(batch: RoutedBatch) -> RoutedBatch:
    """``batch`` with the numbers of its calls and inbound notes as texts (a new batch).

    For readers that work on texts (the reference feature stage); numbers
    already texts are kept.
    """

    def texts(column: list[int] | list[str] | NDArray[np.int64]) -> Any:
        if not len(column) or isinstance(column[0], str):
            return list(column)
        return number_texts(column)  # type: ignore[arg-type]

    calls, inbound = batch.calls, batch.inbound
    return replace(
        batch,
        calls=replace(calls, caller=texts(calls.caller), callee=texts(calls.callee)),
        inbound=replace(inbound, number=texts(inbound.number),
                        from_number=texts(inbound.from_number)),
    )


def decode_routed(raw: bytes) -> RoutedBatch:
    """Inverse of :func:`encode_routed`; ``ValueError`` on a foreign message."""
    decoded = orjson.loads(raw)
    if not isinstance(decoded, dict) or not set(decoded) <= set(_PARTS):
        raise ValueError("not a cdr.by_caller batch")
    batch = RoutedBatch()
    for name, part_type in _PARTS.items():
        if name in decoded:
            columns = decoded[name]
            required = set(_COLUMNS[name]) - _OPTIONAL.get(name, frozenset())
            if not isinstance(columns, dict) or not required <= set(columns) <= set(
                _COLUMNS[name]
            ):
                raise ValueError(f"cdr.by_caller {name} lacks the columns {_COLUMNS[name]}")
            for column in _KEY_COLUMNS.get(name, frozenset()) & set(columns):
                columns[column] = _keys_of(columns[column], name, column)
            if not all(isinstance(values, list | np.ndarray) for values in columns.values()):
                raise ValueError(f"cdr.by_caller {name} has a column that is not a list")
            if len({len(values) for values in columns.values()}) != 1:
                raise ValueError(f"cdr.by_caller {name} has columns of different lengths")
            setattr(batch, name, part_type(**columns))
    return batch


def _keys_of(value: object, part: str, column: str) -> NDArray[np.int64]:
    """A number column read back as keys: from its base64 text, or from a list.

    A list holds texts in messages written before the keys (made keys here,
    so the stage gets arrays from every message). Anything that is not a
    valid key raises ``ValueError`` naming the column: the worker dead-letters
    the message instead of applying it.
    """
    where = f"cdr.by_caller {part}.{column}"
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:
            raise ValueError(f"{where} is not base64") from None
        if len(raw) % _KEY_DTYPE.itemsize:
            raise ValueError(f"{where} is not a whole number of int64 keys")
        keys = np.frombuffer(raw, dtype=_KEY_DTYPE).astype(np.int64, copy=False)
    elif isinstance(value, list):
        if not all(isinstance(number, str) for number in value):
            raise ValueError(f"{where} is a list of something other than number texts")
        try:
            keys = number_keys(value)
        except ValueError as error:  # names the text that is not a normalised number
            raise ValueError(f"{where}: {error}") from None
    else:
        raise ValueError(f"{where} is neither base64 nor a list")
    valid = are_keys(keys)
    if not valid.all():
        raise ValueError(f"{where} holds {int(keys[np.argmin(valid)])}, which is no number key")
    return keys
