"""JSON CDR messages validated by column: the contract of :mod:`contracts.cdr`, a field at a time.

The ingest agent takes many ``cdr.raw`` messages at once.
:func:`validate_json_messages` decodes each one as :func:`~contracts.cdr.validate_message`
does, puts the records of all of them end to end and checks each field over
the whole column (numpy; numbers with :func:`~contracts.numbers.normalise_many`,
or for long columns with polars as the Arrow path does), so a common record
costs no Python call per field. A record the
column rules do not accept is handed to the per-record validator itself
(:func:`~contracts.cdr.validate_element`), which gives the reason the JSON
path gives, or, should the two ever disagree, accepts it: the column rules
only have to be right about what they accept.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Sequence
from dataclasses import dataclass, fields
from itertools import accumulate, chain, repeat
from typing import Any, cast

import numpy as np
import orjson
import polars as pl

from contracts.cdr import (
    _MAX_DURATION_S,
    _MAX_ID_LENGTH,
    CDR,
    DEFAULT_MAX_MESSAGE_BYTES,
    Disposition,
    FieldError,
    Rejection,
    _parse_rfc3339_ms,
    cdr_from_mapping,
    decode_message,
    in_time_bounds,
    validate_element,
)
from contracts.cdr_vector import normalise_numbers
from contracts.numbers import normalise_many

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
_TEXT = {str}
_COLUMN_CHUNK = 2048
_POLARS_NUMBERS = 20_000  # numbers in a column from which polars normalises them
# RFC 3339 texts read by column, by length: (digits of fraction, "Z" rather than +HH:MM).
_RFC3339_SHAPES = {
    19 + (fraction + 1 if fraction else 0) + (1 if zulu else 6): (fraction, zulu)
    for fraction in (0, 3, 6)
    for zulu in (True, False)
}
_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int64)


@dataclass(frozen=True, slots=True)
class CdrArrays:
    """Valid CDRs as parallel arrays, in message order: the fields ingest routes.

    Text columns are object arrays of ``str``; ``ring_s`` holds ``float`` or
    ``None``; ``disposition`` is the :class:`~contracts.cdr.Disposition` value.
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
        """The rows of a frame of :data:`contracts.cdr_arrow.CDR_FRAME_SCHEMA`."""

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
    latest_start_ms: int | None = None,
) -> JsonCdrs:
    """Validate ``cdr.raw`` JSON messages together: each as ``validate_message`` would."""
    items, starts, singles, rejections = _decoded_alike(raws, max_bytes) or _decoded_each(
        raws, max_bytes
    )
    arrays, good = _checked_columns(items, default_region)
    if latest_start_ms is not None:
        good &= arrays.start_ms <= latest_start_ms
    if not good.all():
        for row in np.flatnonzero(~good).tolist():
            message = int(np.searchsorted(starts, row, side="right")) - 1
            index = None if singles[message] else row - starts[message]
            raw = raws[message]
            assert raw is not None  # a message with rows has a value
            outcome = validate_element(
                items[row],
                lambda fields: cdr_from_mapping(fields, default_region, latest_start_ms),
                index=index,
                raw=raw,
            )
            if isinstance(outcome, Rejection):
                rejections[message].append(outcome)
            else:
                _keep(arrays, good, row, outcome)
        arrays = arrays.filter(good)
    return JsonCdrs(arrays, rejections)


# The records of messages end to end, each message's first row, whether each is
# one JSON object (its rejections have no batch index), each message's rejections.
_Decoded = tuple[list[Any], list[int], list[bool], list[list[Rejection]]]


def _decoded_each(raws: Sequence[bytes | None], max_bytes: int) -> _Decoded:
    """Each message decoded by :func:`~contracts.cdr.decode_message`: any mix of outcomes."""
    items: list[Any] = []
    starts: list[int] = []
    singles: list[bool] = []
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
    return items, starts, singles, rejections


def _decoded_alike(raws: Sequence[bytes | None], max_bytes: int) -> _Decoded | None:
    """The common case without a Python call per message: all objects, or all non-empty arrays.

    ``None`` when some message is not like that (absent, too large, not
    JSON, empty, a scalar, or objects and arrays mixed): then each is
    decoded on its own, rejections included.
    """
    try:
        if max(map(len, raws), default=0) > max_bytes:  # type: ignore[arg-type]
            return None
        decoded = list(map(orjson.loads, raws))  # type: ignore[arg-type]
    except (TypeError, orjson.JSONDecodeError):  # a message without a value, or not JSON
        return None
    kinds = set(map(type, decoded))
    no_rejections: list[list[Rejection]] = [[] for _ in decoded]
    if kinds == {dict}:
        return decoded, list(range(len(decoded))), [True] * len(decoded), no_rejections
    if kinds != {list}:
        return None
    counts = list(map(len, decoded))
    if 0 in counts:
        return None
    starts = list(accumulate(counts, initial=0))[:-1]
    return list(chain.from_iterable(decoded)), starts, [False] * len(decoded), no_rejections


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
        numbers[name] = _normalised(column(name, {str}, ""), default_region)
        good &= _is_not_none(numbers[name])
    caller, callee = _objects(numbers["caller"]), _objects(numbers["callee"])
    good &= caller != callee

    start_ms, known = _epoch_ms(column("start_time", {int, str}, 0))
    good &= known & in_time_bounds(start_ms)

    duration_s = _floats(column("duration_s", {int, float}, -1.0))
    good &= _seconds_ok(duration_s)

    dispositions = column("disposition", {str}, "")
    if not _DISPOSITIONS.issuperset(dispositions):
        good &= np.fromiter(map(_DISPOSITIONS.__contains__, dispositions), bool, rows)
    disposition = _objects(dispositions)
    good &= (duration_s <= 0) | (disposition == Disposition.ANSWERED.value)

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
        caller=caller,
        callee=callee,
        start_ms=start_ms,
        duration_s=duration_s,
        disposition=disposition,
        ring_s=ring_s,
    )
    return arrays, good


def _normalised(texts: Sequence[str], default_region: str) -> list[str | None]:
    """Each number normalised as :func:`~contracts.numbers.normalise` does; ``None`` if invalid.

    Long columns go through polars as Arrow batches do
    (:func:`~contracts.cdr_vector.normalise_numbers`); shorter ones through
    :func:`~contracts.numbers.normalise_many`, since polars' fixed cost per
    column is larger than what it saves below about 20,000 numbers
    (measured on the simulator's numbers, per number: 2.2 µs against 0.9 µs
    in columns of 1,000, 0.5 against 0.9-1.1 in columns of 50,000). Both
    answer every text they do not recognise with ``normalise`` itself.
    """
    if len(texts) < _POLARS_NUMBERS:
        return normalise_many(texts, default_region)
    return normalise_numbers(pl.Series(texts, dtype=pl.String), default_region).to_list()


def _columns(items: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Each field's values, ``None`` where a record lacks it.

    One column at a time: a tuple per record would cost more than the
    lookups, in allocations and garbage collection. Over a few thousand
    records at a time, so that the records are still in the CPU's cache
    when the next field is read from them.
    """
    if len(items) <= _COLUMN_CHUNK:
        return {name: list(map(dict.get, items, repeat(name))) for name in _FIELDS}
    columns: dict[str, list[Any]] = {name: [] for name in _FIELDS}
    for first in range(0, len(items), _COLUMN_CHUNK):
        chunk = items[first : first + _COLUMN_CHUNK]
        for name, values in columns.items():
            values.extend(map(dict.get, chunk, repeat(name)))
    return columns


def _of_types(values: Sequence[Any], allowed: set[type]) -> np.ndarray | None:
    """Where each value is of an allowed type (exactly: a bool is no int); ``None``: everywhere.

    Values decoded from JSON are of exact built-in types, so text only is
    recognised by joining it (no Python call per value).
    """
    if allowed == _TEXT:
        try:
            "".join(values)
            return None
        except TypeError:
            pass
    elif set(map(type, values)) <= allowed:
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
    kinds = set(map(type, instants))
    if kinds <= {int}:
        return _integers_ms(cast(Sequence[int], instants))
    if kinds <= _TEXT:
        return _texts_ms(cast(Sequence[str], instants)), np.ones(len(instants), bool)
    array = _objects(instants)
    texts = np.fromiter(map(isinstance, instants, repeat(str)), bool, len(instants))
    start_ms = np.empty(len(instants), np.int64)
    known = np.ones(len(instants), bool)
    start_ms[texts] = _texts_ms(array[texts].tolist())
    start_ms[~texts], known[~texts] = _integers_ms(array[~texts].tolist())
    return start_ms, known


def _integers_ms(values: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Integers as int64, and where they fit (past int64: out of range, 0 in their place)."""
    try:
        return np.array(values, np.int64), np.ones(len(values), bool)
    except OverflowError:  # past int64: out of range, as is anything else not in 2000-2100
        known = np.fromiter(
            (_INT64_MIN <= value <= _INT64_MAX for value in values), bool, len(values)
        )
        in_int64 = [value if ok else 0 for value, ok in zip(values, known, strict=True)]
        return np.array(in_int64, np.int64), known


def _texts_ms(texts: Sequence[str]) -> np.ndarray:
    """Epoch ms of RFC 3339 texts as :func:`_text_ms` reads them, one at a time.

    The common shapes (see :data:`_RFC3339_SHAPES`) are read by column, as
    ASCII bytes; any text that is not exactly such a shape, with fields in
    their ranges, is read by :func:`_text_ms` itself.
    """
    rows = len(texts)
    start_ms = np.full(rows, -1, np.int64)
    read = np.zeros(rows, bool)
    lengths = np.fromiter(map(len, texts), np.int64, rows)
    for length in set(np.unique(lengths).tolist()) & _RFC3339_SHAPES.keys():
        group = np.flatnonzero(lengths == length)
        joined = "".join([texts[row] for row in group.tolist()])
        if not joined.isascii():  # rare: only the ASCII texts can be of the shape
            group = np.array([row for row in group.tolist() if texts[row].isascii()], np.int64)
            joined = "".join([texts[row] for row in group.tolist()])
        chars = np.frombuffer(joined.encode(), np.uint8).reshape(len(group), length)
        group_ms, ok = _shape_ms(chars, *_RFC3339_SHAPES[length])
        start_ms[group[ok]] = group_ms[ok]
        read[group[ok]] = True
    for row in np.flatnonzero(~read).tolist():
        start_ms[row] = _text_ms(texts[row])
    return start_ms


def _shape_ms(chars: np.ndarray, fraction: int, zulu: bool) -> tuple[np.ndarray, np.ndarray]:
    """Epoch ms of rows of ASCII ``YYYY-MM-DDTHH:MM:SS[.f]`` then ``Z`` or ``+HH:MM``/``-HH:MM``.

    ``fraction``: 0, 3 or 6 digits after a dot. Also where a row is of that
    shape with every field in range (years 1900-2199), the rows
    ``datetime.fromisoformat`` reads alike. The value is
    :func:`_parse_rfc3339_ms`'s: microseconds since the epoch, cut (floor)
    to the millisecond.
    """
    digits = chars.astype(np.int64) - ord("0")

    def number(first: int, width: int) -> np.ndarray:
        value = digits[:, first]
        for column in range(first + 1, first + width):
            value = value * 10 + digits[:, column]
        return value

    end = 19 + (fraction + 1 if fraction else 0)  # where the offset begins
    digit_columns = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, *range(20, end)]
    punctuation = {4: "-", 7: "-", 10: "T", 13: ":", 16: ":"}
    if fraction:
        punctuation[19] = "."
    if zulu:
        punctuation[end] = "Z"
    else:
        digit_columns += [end + 1, end + 2, end + 4, end + 5]
        punctuation[end + 3] = ":"
    ok = ((digits[:, digit_columns] >= 0) & (digits[:, digit_columns] <= 9)).all(axis=1)
    for column, mark in punctuation.items():
        ok &= chars[:, column] == ord(mark)
    year, month, day = number(0, 4), number(5, 2), number(8, 2)
    hour, minute, second = number(11, 2), number(14, 2), number(17, 2)
    micros = number(20, fraction) * 10 ** (6 - fraction) if fraction else 0
    offset_s = np.zeros(len(chars), np.int64)
    if not zulu:
        sign = chars[:, end]
        ok &= (sign == ord("+")) | (sign == ord("-"))
        offset_hour, offset_minute = number(end + 1, 2), number(end + 4, 2)
        ok &= (offset_hour <= 23) & (offset_minute <= 59)
        offset_s = np.where(sign == ord("-"), -1, 1) * (offset_hour * 3600 + offset_minute * 60)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = _MONTH_DAYS[np.clip(month, 1, 12)] + (leap & (month == 2))
    ok &= (year >= 1900) & (year <= 2199) & (month >= 1) & (month <= 12)
    ok &= (day >= 1) & (day <= month_days) & (hour <= 23) & (minute <= 59) & (second <= 59)
    seconds = _days_since_epoch(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    total_us = (seconds - offset_s) * 1_000_000 + micros
    return total_us // 1000, ok


def _days_since_epoch(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days from 1970-01-01 to each (proleptic Gregorian) date, for years from 1 on."""
    year = year - (month <= 2)  # years begin in March: the leap day comes last
    era, year_of_era = year // 400, year % 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


def _text_ms(text: str) -> int:
    """Epoch ms of RFC 3339 text as the JSON path reads it; -1 (out of range) if it cannot."""
    try:
        return _parse_rfc3339_ms(text, "start_time")
    except FieldError:
        return -1
