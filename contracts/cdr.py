"""The CDR contract: one record type and the one validator that enforces it.

A message on ``cdr.raw`` is one CDR as a JSON object, or a batch as a JSON
array of such objects. :func:`validate_message` turns the message's bytes
into valid, normalised :class:`CDR` values plus one :class:`Rejection` per
part that failed, so a bad CDR in a batch never costs the good ones.
The fields are documented in ``docs/cdr-contract.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import orjson

from contracts.numbers import NumberError, normalise

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

__all__ = [
    "CDR",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "FieldError",
    "Disposition",
    "Rejection",
    "TIME_BOUNDS_MS",
    "ValidationResult",
    "cdr_from_mapping",
    "decode_message",
    "epoch_ms_field",
    "future_start_problem",
    "in_time_bounds",
    "number_field",
    "required_field",
    "validate_element",
    "validate_message",
    "validate_records",
]

DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
_MAX_ID_LENGTH = 128
RecordT = TypeVar("RecordT")

_MAX_DURATION_S = 7 * 24 * 3600  # a week: anything longer is a unit error
# The instants a record may hold, in epoch ms: from 2000-01-01T00:00:00Z
# (included) to 2100-01-01T00:00:00Z (excluded), whatever form they come in
# (RFC 3339 text, epoch ms, an Arrow timestamp) and on every path. Outside,
# an epoch value is almost always seconds or microseconds sent by mistake.
TIME_BOUNDS_MS = (946_684_800_000, 4_102_444_800_000)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


class Disposition(StrEnum):
    """How the call ended."""

    ANSWERED = "ANSWERED"
    NO_ANSWER = "NO_ANSWER"
    BUSY = "BUSY"
    REJECTED = "REJECTED"
    FAILED = "FAILED"


_DISPOSITIONS = {member.value: member for member in Disposition}


@dataclass(frozen=True, slots=True)
class CDR:
    """One valid call detail record, numbers normalised, time in epoch ms (UTC)."""

    cdr_id: str
    caller: str
    callee: str
    start_ms: int
    duration_s: float
    disposition: Disposition
    ring_s: float | None = None
    carrier: str | None = None

    @property
    def answered(self) -> bool:
        """Whether the callee picked up."""
        return self.disposition is Disposition.ANSWERED

    def to_json_dict(self) -> dict[str, Any]:
        """The record as a contract-conforming JSON object (epoch ms time)."""
        return {
            "cdr_id": self.cdr_id,
            "caller": self.caller,
            "callee": self.callee,
            "start_time": self.start_ms,
            "duration_s": self.duration_s,
            "disposition": self.disposition.value,
            "ring_s": self.ring_s,
            "carrier": self.carrier,
        }


@dataclass(frozen=True, slots=True)
class Rejection:
    """One part of a message that failed validation, and why.

    ``index`` is the position inside a batch, or ``None`` when the whole
    message failed (garbage bytes, not UTF-8, too large, empty batch...).
    ``original`` is the raw message for a whole-message failure, or the
    failed batch element re-encoded as JSON.
    """

    reason: str
    original: bytes
    index: int | None = None


@dataclass(frozen=True, slots=True)
class ValidationResult(Generic[RecordT]):
    """What one message yielded: the good records and the rejected parts."""

    records: list[RecordT]
    rejections: list[Rejection]

    @property
    def cdrs(self) -> list[RecordT]:
        """The good records of a ``cdr.raw`` message."""
        return self.records


class FieldError(ValueError):
    """One field of a record is missing or wrong; the message names it."""


def validate_message(
    raw: bytes,
    *,
    default_region: str = "CN",
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    latest_start_ms: int | None = None,
) -> ValidationResult[CDR]:
    """Validate one ``cdr.raw`` message (a JSON object or a JSON array of them).

    ``latest_start_ms``: see :func:`cdr_from_mapping`.
    """
    return validate_records(
        raw,
        lambda fields: cdr_from_mapping(fields, default_region, latest_start_ms),
        max_bytes=max_bytes,
    )


def validate_records(
    raw: bytes | None,
    build: Callable[[Mapping[str, Any]], RecordT],
    *,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> ValidationResult[RecordT]:
    """Validate a message holding one JSON object or a JSON array of them.

    ``build`` turns one decoded object into a record or raises
    :class:`FieldError`; every failure becomes a :class:`Rejection`.
    """
    decoded = decode_message(raw, max_bytes=max_bytes)
    if isinstance(decoded, Rejection):
        return ValidationResult([], [decoded])
    if isinstance(decoded, dict):
        assert raw is not None  # decode_message rejects a missing value
        outcome = validate_element(decoded, build, index=None, raw=raw)
        if isinstance(outcome, Rejection):
            return ValidationResult([], [outcome])
        return ValidationResult([outcome], [])
    return _validate_batch(decoded, build)


def decode_message(
    raw: bytes | None, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> dict[str, Any] | list[Any] | Rejection:
    """A message's JSON object or non-empty JSON array, or the rejection of the whole message."""
    if raw is None:
        return Rejection("empty message (no value)", b"")
    if len(raw) > max_bytes:
        reason = f"message of {len(raw)} bytes exceeds the limit of {max_bytes} bytes"
        return Rejection(reason, raw)
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        return Rejection(f"not valid UTF-8 JSON: {error}", raw)
    if isinstance(decoded, list) and not decoded:
        return Rejection("empty batch: a JSON array with no record", raw)
    if isinstance(decoded, dict | list):
        return decoded
    return Rejection(f"expected a JSON object or array, got {type(decoded).__name__}", raw)


def validate_element(
    item: Any,
    build: Callable[[Mapping[str, Any]], RecordT],
    *,
    index: int | None,
    raw: bytes,
) -> RecordT | Rejection:
    """One decoded part of a message: its record, or its rejection.

    ``index`` is the part's position in a batch, or ``None`` when the
    message ``raw`` is this one JSON object.
    """
    try:
        return build(_element_fields(item))
    except FieldError as error:
        return _rejection(error, item, index, raw)


def _validate_batch(
    items: list[Any], build: Callable[[Mapping[str, Any]], RecordT]
) -> ValidationResult[RecordT]:
    records: list[RecordT] = []
    rejections: list[Rejection] = []
    for index, item in enumerate(items):
        try:
            records.append(build(_element_fields(item)))
        except FieldError as error:
            rejections.append(_rejection(error, item, index, b""))
    return ValidationResult(records, rejections)


def _element_fields(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise FieldError(f"batch element is {type(item).__name__}, not a JSON object")
    return item


def _rejection(error: FieldError, item: Any, index: int | None, raw: bytes) -> Rejection:
    if index is None:
        return Rejection(str(error), raw)
    return Rejection(f"[{index}] {error}", orjson.dumps(item), index)


def cdr_from_mapping(
    fields: Mapping[str, Any], default_region: str = "CN", latest_start_ms: int | None = None
) -> CDR:
    """Build a :class:`CDR` from decoded JSON, or raise ``ValueError`` with the reason.

    ``latest_start_ms``: the latest start time accepted (the receiving
    worker's clock plus the lead it allows, see :func:`future_start_problem`);
    ``None`` accepts any start within :data:`TIME_BOUNDS_MS`.
    """
    disposition = _disposition(fields)
    duration_s = _seconds(fields, "duration_s", required=True)
    assert duration_s is not None  # required=True never returns None
    if duration_s > 0 and disposition is not Disposition.ANSWERED:
        raise FieldError(
            f"duration_s: talk time must be 0 when disposition is {disposition.value}, "
            f"got {duration_s}"
        )
    cdr_id = _cdr_id(fields)
    caller = number_field(fields, "caller", default_region)
    callee = number_field(fields, "callee", default_region)
    if callee == caller:
        raise FieldError(f"callee: the same number as caller ({caller})")
    start_ms = _start_ms(fields)
    if latest_start_ms is not None and start_ms > latest_start_ms:
        raise FieldError(future_start_problem(start_ms, latest_start_ms))
    return CDR(
        cdr_id=cdr_id,
        caller=caller,
        callee=callee,
        start_ms=start_ms,
        duration_s=duration_s,
        disposition=disposition,
        ring_s=_seconds(fields, "ring_s", required=False),
        carrier=_carrier(fields),
    )


def future_start_problem(start_ms: int, latest_start_ms: int) -> str:
    """Why a call that starts after the latest start accepted is refused.

    A call cannot start after the moment its record is read; one that does,
    by more than the lead the worker allows for clocks that disagree, comes
    from a switch whose clock or time zone is wrong (local time sent as UTC
    is 8 hours ahead in China). Let in, it would move its caller's and its
    partition's event time hours ahead and close every open window early.
    """
    ahead_s = (start_ms - latest_start_ms) / 1000
    return (
        f"start_time: {_iso_ms(start_ms)} is {ahead_s:,.0f} s past the latest start accepted "
        f"({_iso_ms(latest_start_ms)}: the worker's clock plus CALLGUARD_MAX_FUTURE_S); "
        "check the sending switch's clock and time zone"
    )


def _iso_ms(epoch_ms: int) -> str:
    return (_EPOCH + epoch_ms * _MILLISECOND).isoformat(timespec="milliseconds")


def required_field(fields: Mapping[str, Any], name: str) -> Any:
    """The field's value; :class:`FieldError` when it is missing or null."""
    try:
        value = fields[name]
    except KeyError:
        raise FieldError(f"{name}: missing") from None
    if value is None:
        raise FieldError(f"{name}: null")
    return value


def _cdr_id(fields: Mapping[str, Any]) -> str:
    value = required_field(fields, "cdr_id")
    if not isinstance(value, str):
        raise FieldError(f"cdr_id: must be a string, got {type(value).__name__}")
    if not value or len(value) > _MAX_ID_LENGTH:
        raise FieldError(f"cdr_id: must be 1 to {_MAX_ID_LENGTH} characters")
    return value


def number_field(fields: Mapping[str, Any], name: str, default_region: str) -> str:
    """A required phone-number field, normalised (see :mod:`contracts.numbers`)."""
    value = required_field(fields, name)
    if not isinstance(value, str):
        raise FieldError(f"{name}: must be a string, got {type(value).__name__}")
    try:
        return normalise(value, default_region)
    except NumberError as error:
        raise FieldError(f"{name}: {error} ({value[:40]!r})") from None


def _start_ms(fields: Mapping[str, Any]) -> int:
    return epoch_ms_field(fields, "start_time")


def epoch_ms_field(fields: Mapping[str, Any], name: str) -> int:
    """A required instant within :data:`TIME_BOUNDS_MS`: RFC 3339 text with offset, or epoch ms.

    Text finer than the millisecond is cut to it, as an Arrow timestamp is.
    """
    value = required_field(fields, name)
    if isinstance(value, bool):
        raise FieldError(f"{name}: must be RFC 3339 text or epoch milliseconds, got bool")
    if isinstance(value, int):
        epoch_ms = value
    elif isinstance(value, str):
        epoch_ms = _parse_rfc3339_ms(value, name)
    else:
        kind = type(value).__name__
        raise FieldError(f"{name}: must be RFC 3339 text or epoch milliseconds, got {kind}")
    if not in_time_bounds(epoch_ms):
        raise FieldError(
            f"{name}: {value!r} is outside 2000-2100; epoch values must be in milliseconds"
        )
    return epoch_ms


@overload
def in_time_bounds(epoch_ms: int) -> bool: ...
@overload
def in_time_bounds(epoch_ms: np.ndarray) -> np.ndarray: ...
@overload
def in_time_bounds(epoch_ms: pl.Expr) -> pl.Expr: ...
def in_time_bounds(epoch_ms: Any) -> Any:
    """Whether instants in epoch ms are within :data:`TIME_BOUNDS_MS`.

    One rule for every path: an ``int``, or a numpy array or a polars
    expression of them (then where each one is).

    >>> in_time_bounds(946_684_800_000), in_time_bounds(4_102_444_800_000)
    (True, False)
    """
    first, end = TIME_BOUNDS_MS
    return (epoch_ms >= first) & (epoch_ms < end)


def _parse_rfc3339_ms(text: str, name: str) -> int:
    """Epoch ms of RFC 3339 text, cut (not rounded) to the millisecond.

    Cut, so that the instant and its milliseconds fall on the same side of
    each bound: 2099-12-31T23:59:59.9996Z is in 2099, not 2100.
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise FieldError(f"{name}: not RFC 3339 ({text[:40]!r})") from None
    if moment.tzinfo is None:
        raise FieldError(f"{name}: RFC 3339 needs a UTC offset ({text[:40]!r})")
    return (moment - _EPOCH) // _MILLISECOND


def _seconds(fields: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = required_field(fields, name) if required else fields.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(f"{name}: must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or value > _MAX_DURATION_S:
        raise FieldError(f"{name}: must be between 0 and {_MAX_DURATION_S}, got {value}")
    return float(value)


def _disposition(fields: Mapping[str, Any]) -> Disposition:
    value = required_field(fields, "disposition")
    member = _DISPOSITIONS.get(value) if isinstance(value, str) else None
    if member is None:
        allowed = ", ".join(_DISPOSITIONS)
        raise FieldError(f"disposition: must be one of {allowed}, got {str(value)[:40]!r}")
    return member


def _carrier(fields: Mapping[str, Any]) -> str | None:
    value = fields.get("carrier")
    if value is None or isinstance(value, str):
        return value
    raise FieldError(f"carrier: must be a string, got {type(value).__name__}")
