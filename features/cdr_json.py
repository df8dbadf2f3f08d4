"""JSON CDR messages validated by column: the contract of :mod:`features.cdr`, a field at a time.

The ingest agent takes many ``cdr.raw`` messages at once.
:func:`validate_json_messages` decodes each one as :func:`~features.cdr.validate_message`
does, puts the records of all of them end to end and checks each field over
the whole column (numpy, and :func:`~features.numbers.normalise_many` for
numbers), so a common record costs no Python call per field. A record the
column rules do not accept is handed to the per-record validator itself
(:func:`~features.cdr.validate_element`), which gives the reason the JSON
path gives, or, should the two ever disagree, accepts it: the column rules
only have to be right about what they accept.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Sequence
from dataclasses import dataclass, fields
from itertools import repeat
from typing import Any, cast

import numpy as np
import polars as pl

from features.cdr import (
    _MAX_DURATION_S,
    _MAX_EPOCH_MS,
    _MAX_ID_LENGTH,
    _MIN_EPOCH_MS,
    CDR,
    DEFAULT_MAX_MESSAGE_BYTES,
    Disposition,
    FieldError,
    Rejection,
    _parse_rfc3339_ms,
    cdr_from_mapping,
    decode_message,
    validate_element,
)
from features.numbers import normalise_many

__all__ = ["CdrArrays", "JsonCdrs", "validate_json_messages"]

logger = logging.getLogger(__name__)

_FIELDS = (
    "cdr_id",
    "caller",
    "callee",
    "start_time",
    "duration_s",
    "disposition",
    "ring_s",
    "carrier",
)
_DISPOSITIONS = frozenset(member.value for member in Disposition)
_NONE = type(None)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True, slots=True)
class CdrArrays:
    """Valid CDRs as parallel arrays, in message order: the fields ingest routes.

    Text columns are object arrays of ``str``; ``ring_s`` holds ``float`` or
    ``None``; ``disposition`` is the :class:`~features.cdr.Disposition` value.
    """

    cdr_id: np.ndarray
    caller: np.ndarray
    callee: np.ndarray
    start_ms: np.ndarray  # int64
    duration_s: np.ndarray  # float64
    disposition: np.ndarray
    ring_s: np.ndarray

    def __len__(self) -> int:
        return len(self.cdr_id)

    def filter(self, keep: np.ndarray) -> CdrArrays:
        """The rows where ``keep`` is true."""
        return CdrArrays(*(getattr(self, column.name)[keep] for column in fields(self)))

    @classmethod
    def from_frame(cls, cdrs: pl.DataFrame) -> CdrArrays:
        """The rows of a frame of :data:`features.cdr_arrow.CDR_FRAME_SCHEMA`."""

        def objects(name: str) -> np.ndarray:
            return _objects(cdrs[name].to_list())

        return cls(
            cdr_id=objects("cdr_id"),
            caller=objects("caller"),
            callee=objects("callee"),
            start_ms=cdrs["start_ms"].to_numpy().astype(np.int64, copy=False),
            duration_s=cdrs["duration_s"].to_numpy().astype(np.float64, copy=False),
            disposition=objects("disposition"),
            ring_s=objects("ring_s"),
        )


@dataclass(frozen=True, slots=True)
class JsonCdrs:
    """What several messages yielded: their good CDRs end to end, each message's rejections."""

    cdrs: CdrArrays
    rejections: list[list[Rejection]]  # one list per message, in message order


def validate_json_messages(
    raws: Sequence[bytes | None],
    *,
    default_region: str = "CN",
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> JsonCdrs:
    """Validate ``cdr.raw`` JSON messages together: each as ``validate_message`` would."""
    items: list[Any] = []
    starts: list[int] = []  # each message's first row
    singles: list[bool] = []  # each message is one JSON object (no batch index)
    rejections: list[list[Rejection]] = []
    for raw in raws:
        starts.append(len(items))
        decoded = decode_message(raw, max_bytes=max_bytes)
        singles.append(isinstance(decoded, dict))
        rejections.append([])
        if isinstance(decoded, Rejection):
            rejections[-1].append(decoded)
        elif isinstance(decoded, dict):
            items.append(decoded)
        else:
            items.extend(decoded)
    arrays, good = _checked_columns(items, default_region)
    if not good.all():
        for row in np.flatnonzero(~good).tolist():
            message = int(np.searchsorted(starts, row, side="right")) - 1
            index = None if singles[message] else row - starts[message]
            raw = raws[message]
            assert raw is not None  # a message with rows has a value
            outcome = validate_element(
                items[row],
                lambda fields: cdr_from_mapping(fields, default_region),
                index=index,
                raw=raw,
            )
            if isinstance(outcome, Rejection):
                rejections[message].append(outcome)
            else:
                _keep(arrays, good, row, outcome)
        arrays = arrays.filter(good)
    return JsonCdrs(arrays, rejections)


def _keep(arrays: CdrArrays, good: np.ndarray, row: int, cdr: CDR) -> None:
    """A record the column rules refused but the JSON rules accept: it goes on, in its place.

    Should never happen; if it does, the JSON path is the contract, so its
    answer wins and the disagreement is logged to be fixed here.
    """
    logger.warning("JSON column validation refused a record the JSON rules accept: kept")
    for name, value in cdr.to_json_dict().items():
        if name == "start_time":
            arrays.start_ms[row] = value
        elif name != "carrier":
            getattr(arrays, name)[row] = value
    good[row] = True


def _checked_columns(items: list[Any], default_region: str) -> tuple[CdrArrays, np.ndarray]:
    """Every row's routed fields, and whether the column rules accept the row.

    Where a row is not accepted its values are placeholders.
    """
    rows = len(items)
    good = np.ones(rows, bool)
    objects = _of_types(items, {dict})
    if objects is not None:
        good &= objects
        items = [item if ok else {} for item, ok in zip(items, objects, strict=True)]
    columns = _columns(items)

    def column(name: str, allowed: set[type], placeholder: Any) -> Sequence[Any]:
        nonlocal good
        values = columns[name]
        typed = _of_types(values, allowed)
        if typed is None:
            return values
        good &= typed
        return [value if ok else placeholder for value, ok in zip(values, typed, strict=True)]

    cdr_ids = column("cdr_id", {str}, "")
    lengths = np.fromiter(map(len, cdr_ids), np.int64, rows)
    good &= (lengths >= 1) & (lengths <= _MAX_ID_LENGTH)

    numbers = {}
    for name in ("caller", "callee"):
        numbers[name] = normalise_many(column(name, {str}, ""), default_region)
        good &= _is_not_none(numbers[name])

    start_ms, known = _epoch_ms(column("start_time", {int, str}, 0))
    good &= known & (start_ms >= _MIN_EPOCH_MS) & (start_ms < _MAX_EPOCH_MS)

    duration_s = _floats(column("duration_s", {int, float}, -1.0))
    good &= _seconds_ok(duration_s)

    dispositions = column("disposition", {str}, "")
    good &= np.fromiter(map(_DISPOSITIONS.__contains__, dispositions), bool, rows)
    answered = np.fromiter(map(Disposition.ANSWERED.value.__eq__, dispositions), bool, rows)
    good &= (duration_s <= 0) | answered

    rings = column("ring_s", {int, float, _NONE}, None)
    no_ring = ~_is_not_none(rings)
    if no_ring.all():
        ring_s = _objects(rings)
    else:
        ring_floats = _floats([0.0 if ring is None else ring for ring in rings])
        good &= no_ring | _seconds_ok(ring_floats)
        ring_s = _objects(rings if int not in set(map(type, rings)) else ring_floats.tolist())
        ring_s[no_ring] = None

    column("carrier", {str, _NONE}, None)  # checked, not routed
    arrays = CdrArrays(
        cdr_id=_objects(cdr_ids),
        caller=_objects(numbers["caller"]),
        callee=_objects(numbers["callee"]),
        start_ms=start_ms,
        duration_s=duration_s,
        disposition=_objects(dispositions),
        ring_s=ring_s,
    )
    return arrays, good


def _columns(items: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Each field's values, ``None`` where a record lacks it.

    One column at a time: a tuple per record would cost more than the
    lookups, in allocations and garbage collection.
    """
    return {name: list(map(dict.get, items, repeat(name))) for name in _FIELDS}


def _of_types(values: Sequence[Any], allowed: set[type]) -> np.ndarray | None:
    """Where each value is of an allowed type (exactly: a bool is no int); ``None``: everywhere."""
    if set(map(type, values)) <= allowed:
        return None
    return np.fromiter((type(value) in allowed for value in values), bool, len(values))


def _is_not_none(values: Sequence[Any]) -> np.ndarray:
    return np.fromiter(map(operator.is_not, values, repeat(None)), bool, len(values))


def _objects(values: Sequence[Any]) -> np.ndarray:
    """An object array holding exactly these values (no conversion, even of sequences)."""
    array = np.empty(len(values), object)
    array[:] = values
    return array


def _floats(values: Sequence[int | float]) -> np.ndarray:
    """Numbers as float64, as ``float()`` converts them (an int too large for one: infinity)."""
    try:
        return np.array(values, np.float64)
    except OverflowError:
        return np.array([_float_or_inf(value) for value in values], np.float64)


def _float_or_inf(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:
        return float("inf")


def _seconds_ok(seconds: np.ndarray) -> np.ndarray:
    """Where a number of seconds is finite and between 0 and the longest call."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(seconds) & (seconds >= 0) & (seconds <= _MAX_DURATION_S)


def _epoch_ms(instants: Sequence[int | str]) -> tuple[np.ndarray, np.ndarray]:
    """Epoch ms (int64) of integers and RFC 3339 texts, and where that could be read."""
    values: Sequence[int]
    if set(map(type, instants)) <= {int}:
        values = cast(Sequence[int], instants)
    else:
        values = [_text_ms(value) if isinstance(value, str) else value for value in instants]
    try:
        return np.array(values, np.int64), np.ones(len(values), bool)
    except OverflowError:  # past int64: out of range, as is anything else not in 2000-2100
        known = np.fromiter(
            (_INT64_MIN <= value <= _INT64_MAX for value in values), bool, len(values)
        )
        in_int64 = [value if ok else 0 for value, ok in zip(values, known, strict=True)]
        return np.array(in_int64, np.int64), known


def _text_ms(text: str) -> int:
    """Epoch ms of RFC 3339 text as the JSON path reads it; -1 (out of range) if it cannot."""
    try:
        return _parse_rfc3339_ms(text, "start_time")
    except FieldError:
        return -1
