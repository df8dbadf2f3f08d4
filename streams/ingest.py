"""Ingest: validate raw messages, route good records by number, reject the rest.

Pure logic; the Faust agents in :mod:`streams.agents` read, call this and
send what it returns. A CDR message is JSON unless its Kafka headers say
``content-type: application/vnd.apache.arrow.stream`` (see
:mod:`features.cdr_arrow`); both encodings route to the same columns.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import polars as pl
from aiokafka.partitioner import murmur2

from features.cdr import Rejection, ValidationResult, validate_message
from features.cdr_arrow import (
    ARROW_STREAM_CONTENT_TYPE,
    CONTENT_TYPE_HEADER,
    validate_arrow_message,
)
from features.complaints import validate_complaints
from streams.deadletter import SourcePosition, deadletter_record
from streams.wire import CdrColumns, RoutedBatch

__all__ = [
    "IngestOutcome",
    "RawMessage",
    "ingest_cdrs",
    "ingest_complaints",
    "is_arrow_stream",
    "partition_for_number",
]

Headers = Mapping[str, bytes] | Sequence[tuple[str, bytes]]
Batches = defaultdict[int, RoutedBatch]
# Validates one message, routes its good records into the batches, and
# returns how many were good and the rejections.
Accept = Callable[["RawMessage", Batches], tuple[int, list[Rejection]]]


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A raw message as read: value, position and Kafka headers."""

    value: bytes
    source: SourcePosition
    headers: Headers | None = None


@dataclass(slots=True)
class IngestOutcome:
    """What one batch of raw messages turned into."""

    by_partition: dict[int, RoutedBatch] = field(default_factory=dict)
    deadletters: list[tuple[bytes, bytes]] = field(default_factory=list)  # (key, value)
    valid: int = 0
    rejected: int = 0


_partition_cache: dict[tuple[str, int], int] = {}
_PARTITION_CACHE_LIMIT = 1_000_000


def partition_for_number(number: str, partitions: int) -> int:
    """The partition that owns a normalised number.

    Kafka's default partitioner on the number's UTF-8 bytes (murmur2), so a
    carrier keying ``cdr.raw`` by caller lands on the same partition, and
    Faust's table routing (``GET /numbers/...``) finds the owning worker.
    Cached: the pure-Python hash costs about 2.5 us and callers repeat.
    """
    cached = _partition_cache.get((number, partitions))
    if cached is None:
        if len(_partition_cache) >= _PARTITION_CACHE_LIMIT:
            _partition_cache.clear()
        cached = (murmur2(number.encode()) & 0x7FFFFFFF) % partitions
        _partition_cache[(number, partitions)] = cached
    return cached


def is_arrow_stream(headers: Headers | None) -> bool:
    """Whether Kafka headers announce an Arrow IPC stream (``content-type``).

    The header name is matched without regard to case and the media type
    without parameters (``; charset=...``), as HTTP does.
    """
    if not headers:
        return False
    items = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in items:
        name = key.decode() if isinstance(key, bytes) else str(key)
        if name.lower() != CONTENT_TYPE_HEADER or value is None:
            continue
        text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
        return text.split(";")[0].strip().lower() == ARROW_STREAM_CONTENT_TYPE
    return False


def ingest_cdrs(
    messages: Iterable[RawMessage],
    *,
    partitions: int,
    default_region: str,
    max_message_bytes: int,
    max_original_bytes: int,
    now_ms: int,
) -> IngestOutcome:
    """Validate CDR messages; route each call to its caller's and its callee's partition."""

    def validate(raw: bytes) -> ValidationResult[Any]:
        return validate_message(raw, default_region=default_region, max_bytes=max_message_bytes)

    def route(batches: Batches, cdr: Any) -> None:
        batches[partition_for_number(cdr.caller, partitions)].calls.append(cdr)
        inbound = batches[partition_for_number(cdr.callee, partitions)].inbound
        inbound.number.append(cdr.callee)
        inbound.from_number.append(cdr.caller)
        inbound.time_ms.append(cdr.start_ms)

    accept_json = _accept_records(validate, route)

    def accept(message: RawMessage, batches: Batches) -> tuple[int, list[Rejection]]:
        if not is_arrow_stream(message.headers):
            return accept_json(message, batches)
        result = validate_arrow_message(
            message.value, default_region=default_region, max_bytes=max_message_bytes
        )
        _route_cdr_frame(result.cdrs, partitions, batches)
        return result.cdrs.height, result.rejections

    return _ingest(messages, accept, max_original_bytes, now_ms)


def ingest_complaints(
    messages: Iterable[RawMessage],
    *,
    partitions: int,
    default_region: str,
    max_message_bytes: int,
    max_original_bytes: int,
    now_ms: int,
) -> IngestOutcome:
    """Validate complaint messages; route each to the reported number's partition."""

    def validate(raw: bytes) -> ValidationResult[Any]:
        return validate_complaints(raw, default_region=default_region, max_bytes=max_message_bytes)

    def route(batches: Batches, complaint: Any) -> None:
        batches[partition_for_number(complaint.reported, partitions)].complaints.append(complaint)

    return _ingest(messages, _accept_records(validate, route), max_original_bytes, now_ms)


_CALL_COLUMNS = [column.name for column in fields(CdrColumns)]


def _route_cdr_frame(cdrs: pl.DataFrame, partitions: int, batches: Batches) -> None:
    """Route a frame of valid CDRs as :func:`ingest_cdrs` routes them one by one.

    The partition is computed once per distinct number; rows keep their
    order within each partition.
    """
    if cdrs.height == 0:
        return
    numbers = pl.concat([cdrs["caller"], cdrs["callee"]]).unique()
    owners = pl.Series([partition_for_number(n, partitions) for n in numbers.to_list()])
    routed = cdrs.with_columns(
        caller_partition=pl.col("caller").replace_strict(numbers, owners),
        callee_partition=pl.col("callee").replace_strict(numbers, owners),
    )
    by_caller = routed.partition_by("caller_partition", maintain_order=True, as_dict=True)
    for (partition,), calls in by_caller.items():
        columns = batches[int(partition)].calls
        for name in _CALL_COLUMNS:
            getattr(columns, name).extend(calls[name].to_list())
    by_callee = routed.partition_by("callee_partition", maintain_order=True, as_dict=True)
    for (partition,), notes in by_callee.items():
        inbound = batches[int(partition)].inbound
        inbound.number.extend(notes["callee"].to_list())
        inbound.from_number.extend(notes["caller"].to_list())
        inbound.time_ms.extend(notes["start_ms"].to_list())


def _accept_records(
    validate: Callable[[bytes], ValidationResult[Any]],
    route: Callable[[Batches, Any], None],
) -> Accept:
    """Accept a JSON message: validate it, then route its records one by one."""

    def accept(message: RawMessage, batches: Batches) -> tuple[int, list[Rejection]]:
        result = validate(message.value)
        for record in result.records:
            route(batches, record)
        return len(result.records), result.rejections

    return accept


def _ingest(
    messages: Iterable[RawMessage],
    accept: Accept,
    max_original_bytes: int,
    now_ms: int,
) -> IngestOutcome:
    outcome = IngestOutcome()
    batches: Batches = defaultdict(RoutedBatch)
    for message in messages:
        valid, rejections = accept(message, batches)
        outcome.valid += valid
        outcome.rejected += len(rejections)
        for rejection in rejections:
            value = deadletter_record(
                rejection,
                message.source,
                rejected_at_ms=now_ms,
                max_original_bytes=max_original_bytes,
            )
            outcome.deadletters.append((message.source.key, value))
    outcome.by_partition = dict(batches)
    return outcome
