"""CDR batches as Arrow IPC streams: decode, validate by column, same contract as JSON.

A ``cdr.raw`` message whose Kafka header ``content-type`` is
:data:`ARROW_STREAM_CONTENT_TYPE` holds an Arrow IPC *stream* (schema, then
record batches) with one row per CDR. :func:`validate_arrow_message` checks
it against the rules of :mod:`contracts.cdr` column by column and returns the
good rows as one normalised polars frame (no object per CDR) plus one
:class:`~contracts.cdr.Rejection` per bad row, whose reason is the one the
JSON path gives for the same record: a bad row is rare, so it is simply
handed to :func:`~contracts.cdr.cdr_from_mapping` to be explained.

A message that cannot be read, or whose columns are missing or of a type
the contract cannot hold, is rejected whole. Column types are listed in
``docs/cdr-contract.md``.

Ingest validates a run of messages at once (:func:`validate_arrow_messages`):
each is read on its own, then all their rows are put end to end, in one
type per column, and normalised and checked in one pass: a polars call has
a fixed cost that dwarfs the work on a few hundred rows, and one message
took dozens of calls. Each message's outcome is the one it gets alone.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import orjson
import polars as pl
from polars.exceptions import PanicException

from contracts.cdr import (
    _MAX_DURATION_S,
    _MAX_ID_LENGTH,
    CDR,
    DEFAULT_MAX_MESSAGE_BYTES,
    Disposition,
    FieldError,
    Rejection,
    cdr_from_mapping,
)
from contracts.cdr_vector import _nulls, epoch_ms_from_parts, instant_parts, normalise_numbers

__all__ = [
    "ARROW_STREAM_CONTENT_TYPE",
    "CDR_FRAME_SCHEMA",
    "ArrowCdrs",
    "CONTENT_TYPE_HEADER",
    "CdrFrame",
    "validate_arrow_message",
    "validate_arrow_messages",
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
    :class:`~contracts.cdr.CDR`, disposition as its text), in message order.
    """

    cdrs: pl.DataFrame
    rejections: list[Rejection]


@dataclass(frozen=True, slots=True)
class ArrowCdrs:
    """What several messages yielded: their good CDRs end to end, each message's rejections.

    ``cdrs`` has the columns of :data:`CDR_FRAME_SCHEMA`, in message order
    and, within a message, in row order.
    """

    cdrs: pl.DataFrame
    rejections: list[list[Rejection]]  # one list per message, in message order


def validate_arrow_message(
    raw: bytes | None,
    *,
    default_region: str = "CN",
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> CdrFrame:
    """Validate one ``cdr.raw`` message holding an Arrow IPC stream of CDRs."""
    result = validate_arrow_messages([raw], default_region=default_region, max_bytes=max_bytes)
    return CdrFrame(result.cdrs, result.rejections[0])


def validate_arrow_messages(
    raws: Sequence[bytes | None],
    *,
    default_region: str = "CN",
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    latest_start_ms: int | None = None,
) -> ArrowCdrs:
    """Validate ``cdr.raw`` Arrow messages together: each as :func:`validate_arrow_message` would.

    Each message is read and its columns checked on its own (a message that
    fails is rejected whole); the rows of the others are put end to end and
    normalised and checked in one pass. A polars call costs about as much
    as a few thousand rows, so a run of small messages costs little more
    than one message as large as all of them.
    """
    rejections: list[list[Rejection]] = []
    frames: list[pl.DataFrame] = []
    owners: list[int] = []  # the message of each frame
    for raw in raws:
        read = _read(raw, max_bytes)
        if isinstance(read, Rejection):
            rejections.append([read])
        else:
            owners.append(len(rejections))
            rejections.append([])
            frames.append(read)
    cdrs, frame_rejections = _validate_frames(frames, default_region, latest_start_ms)
    for owner, found in zip(owners, frame_rejections, strict=True):
        rejections[owner] = found
    return ArrowCdrs(cdrs, rejections)


def validate_cdr_frame(
    frame: pl.DataFrame, *, default_region: str = "CN", original: bytes = b""
) -> CdrFrame:
    """Validate a frame of CDRs, one per row (``original``: the message, for whole rejections)."""
    problem = _frame_problem(frame)
    if problem is not None:
        return _rejected(problem, original)
    cdrs, (rejections,) = _validate_frames([frame], default_region)
    return CdrFrame(cdrs, rejections)


def _read(raw: bytes | None, max_bytes: int) -> pl.DataFrame | Rejection:
    """A message's frame, or why the whole message is rejected."""
    if raw is None:
        return Rejection("empty message (no value)", b"")
    if len(raw) > max_bytes:
        return Rejection(f"message of {len(raw)} bytes exceeds the limit of {max_bytes} bytes", raw)
    try:
        frame = pl.read_ipc_stream(raw)
    # A corrupt stream can make the reader panic (PanicException is a BaseException).
    except (Exception, PanicException) as error:
        return Rejection(f"not a valid Arrow IPC stream: {str(error)[:200]}", raw)
    problem = _frame_problem(frame)
    return frame if problem is None else Rejection(problem, raw)


def _frame_problem(frame: pl.DataFrame) -> str | None:
    """Why a frame is rejected whole: a column missing or of the wrong type, or no row."""
    problem = _schema_problem(frame)
    if problem is None and frame.height == 0:
        return "empty batch: an Arrow stream with no row"
    return problem


def _validate_frames(
    frames: list[pl.DataFrame], default_region: str, latest_start_ms: int | None = None
) -> tuple[pl.DataFrame, list[list[Rejection]]]:
    """The good rows of frames whose schema passed, end to end, and each frame's bad rows."""
    if not frames:
        return pl.DataFrame(schema=CDR_FRAME_SCHEMA), []
    columns = _end_to_end(frames)
    normalised = pl.DataFrame(
        {
            "cdr_id": columns["cdr_id"],
            "caller": normalise_numbers(columns["caller"], default_region),
            "callee": normalise_numbers(columns["callee"], default_region),
            "start_ms": epoch_ms_from_parts(columns["start_text"], columns["start_epoch_ms"]),
            "duration_s": columns["duration_s"],
            "disposition": columns["disposition"],
            "ring_s": columns["ring_s"],
            "carrier": columns["carrier"],
        }
    )
    good = normalised.select(_valid_rows(latest_start_ms)).to_series()
    if good.all():
        return normalised, [[] for _ in frames]
    return _explain_bad_rows(frames, normalised, good, default_region, latest_start_ms)


def _end_to_end(frames: list[pl.DataFrame]) -> dict[str, pl.Series]:
    """The frames' columns of :func:`_common_columns`, each concatenated over all frames."""
    parts = [_common_columns(frame) for frame in frames]
    if len(parts) == 1:
        return parts[0]
    return {name: pl.concat([part[name] for part in parts]) for name in parts[0]}


def _common_columns(frame: pl.DataFrame) -> dict[str, pl.Series]:
    """A frame's columns in one type each, whatever types the message used.

    Text as String, numbers as Float64 (the casts a single message gets),
    ``start_time`` split by :func:`~contracts.cdr_vector.instant_parts` into
    its text and its epoch ms; a missing optional column is all null.
    Series operations only: no query plan per message.
    """
    schema, height = frame.schema, frame.height

    def column(name: str, dtype: pl.DataType) -> pl.Series:
        if name not in schema:
            return _nulls(height, dtype)
        series = frame.get_column(name)
        return series if series.dtype == dtype else series.cast(dtype)

    texts, epoch_ms = instant_parts(frame.get_column("start_time"))
    return {
        "cdr_id": column("cdr_id", pl.String()),
        "caller": column("caller", pl.String()),
        "callee": column("callee", pl.String()),
        "start_text": texts,
        "start_epoch_ms": epoch_ms,
        "duration_s": column("duration_s", pl.Float64()),
        "disposition": column("disposition", pl.String()),
        "ring_s": column("ring_s", pl.Float64()),
        "carrier": column("carrier", pl.String()),
    }


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


def _valid_rows(latest_start_ms: int | None = None) -> pl.Expr:
    """Whether each normalised row passes every rule of ``cdr_from_mapping``."""
    duration, ring = pl.col("duration_s"), pl.col("ring_s")
    answered = pl.col("disposition") == Disposition.ANSWERED.value
    id_length = pl.col("cdr_id").str.len_chars()
    return pl.all_horizontal(
        id_length.is_between(1, _MAX_ID_LENGTH),
        pl.col("caller").is_not_null(),
        pl.col("callee").is_not_null(),
        pl.col("caller") != pl.col("callee"),
        pl.col("start_ms").is_not_null(),
        pl.lit(True) if latest_start_ms is None else pl.col("start_ms") <= latest_start_ms,
        duration.is_finite() & duration.is_between(0, _MAX_DURATION_S),
        pl.col("disposition").is_in(_DISPOSITIONS),
        (duration <= 0) | answered,
        ring.is_null() | (ring.is_finite() & ring.is_between(0, _MAX_DURATION_S)),
    ).fill_null(False)


def _explain_bad_rows(
    frames: list[pl.DataFrame],
    normalised: pl.DataFrame,
    good: pl.Series,
    default_region: str,
    latest_start_ms: int | None,
) -> tuple[pl.DataFrame, list[list[Rejection]]]:
    """Reasons for the bad rows, from the JSON path itself, each with its index in its frame."""
    starts = list(accumulate((frame.height for frame in frames[:-1]), initial=0))
    bad_by_frame: dict[int, list[int]] = defaultdict(list)
    for row in good.not_().arg_true().to_list():
        owner = bisect_right(starts, row) - 1
        bad_by_frame[owner].append(row - starts[owner])
    rejections: list[list[Rejection]] = [[] for _ in frames]
    kept: list[tuple[int, CDR]] = []  # (row of the run, CDR)
    for owner, indices in bad_by_frame.items():
        for index, outcome in _explained(frames[owner], indices, default_region, latest_start_ms):
            if isinstance(outcome, Rejection):
                rejections[owner].append(outcome)
            else:
                if not kept:
                    logger.warning(
                        "Arrow validation refused rows the JSON rules accept "
                        "(first at index %d): kept",
                        index,
                    )
                kept.append((starts[owner] + index, outcome))
    cdrs = _merge_kept(normalised, good, kept) if kept else normalised.filter(good)
    return cdrs, rejections


def _explained(
    frame: pl.DataFrame, indices: list[int], default_region: str, latest_start_ms: int | None
) -> list[tuple[int, Rejection | CDR]]:
    """The rows at ``indices`` of a message's frame, each as the JSON path takes it."""
    frame = frame.with_columns(
        pl.lit(None).alias(name) for name in ("ring_s", "carrier") if name not in frame.columns
    )
    if isinstance(frame.schema["start_time"], pl.Datetime):
        # As the JSON path would see the instant: epoch milliseconds.
        frame = frame.with_columns(pl.col("start_time").dt.epoch("ms"))
    outcomes: list[tuple[int, Rejection | CDR]] = []
    for index, row in zip(indices, frame[indices].iter_rows(named=True), strict=True):
        try:
            outcomes.append((index, cdr_from_mapping(row, default_region, latest_start_ms)))
        except FieldError as error:
            outcomes.append((index, Rejection(f"[{index}] {error}", _row_json(row), index)))
    return outcomes


def _merge_kept(
    normalised: pl.DataFrame, good: pl.Series, kept: list[tuple[int, CDR]]
) -> pl.DataFrame:
    """Rows the column rules refused but the JSON rules accept go on, in their place.

    Should never happen; if it does, the JSON path is the contract, so its
    answer wins and the disagreement is logged (by the caller) to be fixed here.
    """
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
