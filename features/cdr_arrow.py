"""CDR batches as Arrow IPC streams: decode, validate by column, same contract as JSON.

A ``cdr.raw`` message whose Kafka header ``content-type`` is
:data:`ARROW_STREAM_CONTENT_TYPE` holds an Arrow IPC *stream* (schema, then
record batches) with one row per CDR. :func:`validate_arrow_message` checks
it against the rules of :mod:`features.cdr` column by column and returns the
good rows as one normalised polars frame (no object per CDR) plus one
:class:`~features.cdr.Rejection` per bad row, whose reason is the one the
JSON path gives for the same record: a bad row is rare, so it is simply
handed to :func:`~features.cdr.cdr_from_mapping` to be explained.

A message that cannot be read, or whose columns are missing or of a type
the contract cannot hold, is rejected whole. Column types are listed in
``docs/cdr-contract.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import polars as pl
from polars.exceptions import PanicException

from features.cdr import (
    _MAX_DURATION_S,
    _MAX_ID_LENGTH,
    CDR,
    DEFAULT_MAX_MESSAGE_BYTES,
    Disposition,
    FieldError,
    Rejection,
    cdr_from_mapping,
)
from features.cdr_vector import epoch_ms_from_instants, normalise_numbers

__all__ = [
    "ARROW_STREAM_CONTENT_TYPE",
    "CDR_FRAME_SCHEMA",
    "CONTENT_TYPE_HEADER",
    "CdrFrame",
    "validate_arrow_message",
    "validate_cdr_frame",
]

logger = logging.getLogger(__name__)

CONTENT_TYPE_HEADER = "content-type"
ARROW_STREAM_CONTENT_TYPE = "application/vnd.apache.arrow.stream"

CDR_FRAME_SCHEMA = pl.Schema(
    {
        "cdr_id": pl.String,
        "caller": pl.String,
        "callee": pl.String,
        "start_ms": pl.Int64,
        "duration_s": pl.Float64,
        "disposition": pl.String,
        "ring_s": pl.Float64,
        "carrier": pl.String,
    }
)

_TEXT, _INTEGER, _NUMBER, _INSTANT = (
    "text",
    "integer",
    "integer or float",
    "epoch-ms integer, RFC 3339 text or time-zone-aware timestamp",
)


def _is_text(dtype: pl.DataType) -> bool:
    return dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum)


def _is_number(dtype: pl.DataType) -> bool:
    return dtype.is_integer() or dtype.is_float()


def _is_instant(dtype: pl.DataType) -> bool:
    aware = isinstance(dtype, pl.Datetime) and dtype.time_zone is not None
    return _is_text(dtype) or dtype.is_integer() or aware


# column -> (required, accepted types in words, test); a Null column (no value
# at all) is always accepted: its rows are then missing that field.
_COLUMNS: dict[str, tuple[bool, str, Callable[[pl.DataType], bool]]] = {
    "cdr_id": (True, _TEXT, _is_text),
    "caller": (True, _TEXT, _is_text),
    "callee": (True, _TEXT, _is_text),
    "start_time": (True, _INSTANT, _is_instant),
    "duration_s": (True, _NUMBER, _is_number),
    "disposition": (True, _TEXT, _is_text),
    "ring_s": (False, _NUMBER, _is_number),
    "carrier": (False, _TEXT, _is_text),
}
_DISPOSITIONS = [member.value for member in Disposition]


@dataclass(frozen=True, slots=True)
class CdrFrame:
    """What one message yielded: the good CDRs as columns and the rejected parts.

    ``cdrs`` has the columns of :data:`CDR_FRAME_SCHEMA` (the fields of
    :class:`~features.cdr.CDR`, disposition as its text), in message order.
    """

    cdrs: pl.DataFrame
    rejections: list[Rejection]


def validate_arrow_message(
    raw: bytes | None,
    *,
    default_region: str = "CN",
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> CdrFrame:
    """Validate one ``cdr.raw`` message holding an Arrow IPC stream of CDRs."""
    if raw is None:
        return _rejected("empty message (no value)", b"")
    if len(raw) > max_bytes:
        return _rejected(f"message of {len(raw)} bytes exceeds the limit of {max_bytes} bytes", raw)
    try:
        frame = pl.read_ipc_stream(raw)
    # A corrupt stream can make the reader panic (PanicException is a BaseException).
    except (Exception, PanicException) as error:
        return _rejected(f"not a valid Arrow IPC stream: {str(error)[:200]}", raw)
    return validate_cdr_frame(frame, default_region=default_region, original=raw)


def validate_cdr_frame(
    frame: pl.DataFrame, *, default_region: str = "CN", original: bytes = b""
) -> CdrFrame:
    """Validate a frame of CDRs, one per row (``original``: the message, for whole rejections)."""
    problem = _schema_problem(frame)
    if problem is not None:
        return _rejected(problem, original)
    if frame.height == 0:
        return _rejected("empty batch: an Arrow stream with no row", original)
    frame = frame.with_columns(
        pl.lit(None).alias(name) for name in ("ring_s", "carrier") if name not in frame.columns
    )
    normalised = frame.select(
        pl.col("cdr_id").cast(pl.String),
        normalise_numbers(frame["caller"], default_region).alias("caller"),
        normalise_numbers(frame["callee"], default_region).alias("callee"),
        epoch_ms_from_instants(frame["start_time"]).alias("start_ms"),
        pl.col("duration_s").cast(pl.Float64),
        pl.col("disposition").cast(pl.String),
        pl.col("ring_s").cast(pl.Float64),
        pl.col("carrier").cast(pl.String),
    )
    good = normalised.select(_valid_rows()).to_series()
    if good.all():
        return CdrFrame(normalised, [])
    return _explain_bad_rows(frame, normalised, good, default_region)


def _schema_problem(frame: pl.DataFrame) -> str | None:
    schema = frame.schema
    missing = [
        name for name, (required, _, _) in _COLUMNS.items() if required and name not in schema
    ]
    if missing:
        return f"Arrow batch lacks required column(s): {', '.join(missing)}"
    for name, (_, accepted, accepts) in _COLUMNS.items():
        dtype = schema.get(name)
        if dtype is not None and dtype != pl.Null and not accepts(dtype):
            return f"Arrow column {name} is {dtype}; expected {accepted}"
    return None


def _valid_rows() -> pl.Expr:
    """Whether each normalised row passes every rule of ``cdr_from_mapping``."""
    duration, ring = pl.col("duration_s"), pl.col("ring_s")
    answered = pl.col("disposition") == Disposition.ANSWERED.value
    id_length = pl.col("cdr_id").str.len_chars()
    return pl.all_horizontal(
        id_length.is_between(1, _MAX_ID_LENGTH),
        pl.col("caller").is_not_null(),
        pl.col("callee").is_not_null(),
        pl.col("start_ms").is_not_null(),
        duration.is_finite() & duration.is_between(0, _MAX_DURATION_S),
        pl.col("disposition").is_in(_DISPOSITIONS),
        (duration <= 0) | answered,
        ring.is_null() | (ring.is_finite() & ring.is_between(0, _MAX_DURATION_S)),
    ).fill_null(False)


def _explain_bad_rows(
    frame: pl.DataFrame, normalised: pl.DataFrame, good: pl.Series, default_region: str
) -> CdrFrame:
    """Reasons for the bad rows, from the JSON path itself."""
    if isinstance(frame.schema["start_time"], pl.Datetime):
        # As the JSON path would see the instant: epoch milliseconds.
        frame = frame.with_columns(pl.col("start_time").dt.epoch("ms"))
    bad_indices = good.not_().arg_true().to_list()
    rejections: list[Rejection] = []
    kept: list[tuple[int, CDR]] = []
    for index, row in zip(bad_indices, frame[bad_indices].iter_rows(named=True), strict=True):
        try:
            kept.append((index, cdr_from_mapping(row, default_region)))
        except FieldError as error:
            rejections.append(Rejection(f"[{index}] {error}", _row_json(row), index))
    cdrs = normalised.filter(good)
    if kept:
        cdrs = _merge_kept(normalised, good, kept)
    return CdrFrame(cdrs, rejections)


def _merge_kept(
    normalised: pl.DataFrame, good: pl.Series, kept: list[tuple[int, CDR]]
) -> pl.DataFrame:
    """Rows the column rules refused but the JSON rules accept go on, in their place.

    Should never happen; if it does, the JSON path is the contract, so its
    answer wins and the disagreement is logged to be fixed here.
    """
    logger.warning(
        "Arrow validation refused rows the JSON rules accept (first at index %d): kept",
        kept[0][0],
    )
    rows = pl.DataFrame(
        [
            {"index": index, **cdr.to_json_dict(), "disposition": cdr.disposition.value}
            for index, cdr in kept
        ]
    ).rename({"start_time": "start_ms"})
    return (
        pl.concat(
            [
                normalised.with_row_index("index").filter(good),
                rows.select("index", *CDR_FRAME_SCHEMA).cast(CDR_FRAME_SCHEMA),
            ],
            how="vertical_relaxed",
        )
        .sort("index")
        .drop("index")
    )


def _row_json(row: dict[str, Any]) -> bytes:
    """A row re-encoded as a JSON object, as a dead letter holds a failed batch element."""
    return orjson.dumps(row, default=str)


def _rejected(reason: str, original: bytes) -> CdrFrame:
    return CdrFrame(pl.DataFrame(schema=CDR_FRAME_SCHEMA), [Rejection(reason, original)])
