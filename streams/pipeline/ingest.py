"""Ingest: validate raw messages, route good records by number, reject the rest.

Pure logic; the ingest loop in :mod:`streams.pipeline.intake` reads ``cdr.raw`` and
``complaints`` (aiokafka, outside Faust), calls this and sends what it
returns to ``cdr.by_caller`` and ``cdr.deadletter``. A CDR message is JSON
unless its Kafka headers say
``content-type: application/vnd.apache.arrow.stream`` (see
:mod:`contracts.cdr_arrow`); both encodings route to the same columns.
Consecutive JSON messages are validated together, by column
(:mod:`contracts.cdr_json`), once they hold enough records to pay for it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

import numpy as np
from aiokafka.partitioner import murmur2

from contracts.by_caller import RoutedBatch, in_time_order
from contracts.cdr import Rejection, ValidationResult, validate_message
from contracts.cdr_arrow import (
    ARROW_STREAM_CONTENT_TYPE,
    CONTENT_TYPE_HEADER,
    validate_arrow_messages,
)
from contracts.cdr_json import CdrArrays, validate_json_messages
from contracts.complaints import validate_complaints
from contracts.number_keys import number_key, number_keys
from streams.pipeline.deadletter import SourcePosition, deadletter_record
from streams.pipeline.partitions import partitions_of_keys

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
# Validates messages, routes their good records into the batches, and
# returns how many were good and each message's rejections.
Accept = Callable[[list["RawMessage"], Batches], tuple[int, list[list[Rejection]]]]

# Below this many bytes of JSON (about 40 CDRs) the columns cost more than
# they save: such messages are validated record by record (same outcome).
_COLUMNAR_MIN_BYTES = 8 * 1024


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
    max_future_s: float | None = None,
) -> IngestOutcome:
    """Validate CDR messages; route each call to its caller's and its callee's partition.

    ``max_future_s``: a call starting more than this after ``now_ms`` goes to
    the dead letter (a switch's clock or time zone is wrong); ``None`` lets
    any start within the contract's bounds through.
    """
    latest_start_ms = None if max_future_s is None else now_ms + round(max_future_s * 1000)

    def validate(raw: bytes) -> ValidationResult[Any]:
        return validate_message(
            raw,
            default_region=default_region,
            max_bytes=max_message_bytes,
            latest_start_ms=latest_start_ms,
        )

    def route(batches: Batches, cdr: Any) -> None:
        batches[partition_for_number(cdr.caller, partitions)].calls.append(cdr)
        batches[partition_for_number(cdr.callee, partitions)].inbound.append(
            number_key(cdr.callee), number_key(cdr.caller), cdr.start_ms
        )

    accept_records = _accept_records(validate, route)

    def accept_json(run: list[RawMessage], batches: Batches) -> tuple[int, list[list[Rejection]]]:
        values = [message.value for message in run]
        if sum(len(value) for value in values if value) < _COLUMNAR_MIN_BYTES:
            return accept_records(run, batches)
        result = validate_json_messages(
            values,
            default_region=default_region,
            max_bytes=max_message_bytes,
            latest_start_ms=latest_start_ms,
        )
        _route_arrays(result.cdrs, partitions, batches)
        return len(result.cdrs), result.rejections

    def accept_arrow(run: list[RawMessage], batches: Batches) -> tuple[int, list[list[Rejection]]]:
        result = validate_arrow_messages(
            [message.value for message in run],
            default_region=default_region,
            max_bytes=max_message_bytes,
            latest_start_ms=latest_start_ms,
        )
        _route_arrays(CdrArrays.from_frame(result.cdrs), partitions, batches)
        return result.cdrs.height, result.rejections

    def accept(messages: list[RawMessage], batches: Batches) -> tuple[int, list[list[Rejection]]]:
        valid, rejections = 0, []
        for arrow, run in groupby(messages, key=lambda message: is_arrow_stream(message.headers)):
            run_valid, run_rejections = (accept_arrow if arrow else accept_json)(list(run), batches)
            valid += run_valid
            rejections.extend(run_rejections)
        return valid, rejections

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


def _route_arrays(cdrs: CdrArrays, partitions: int, batches: Batches) -> None:
    """Route valid CDRs as :func:`ingest_cdrs` routes them one by one.

    Every number of the batch becomes its key and is hashed at once (the
    partition Kafka's client gives its text); rows keep their order
    within each partition. Each column is put in partition order once
    (a stable sort) and each partition takes its slice of it, instead of
    a selection and a list per column and partition.
    """
    rows = len(cdrs)
    if not rows:
        return
    callers, callees = number_keys(cdrs.caller.tolist()), number_keys(cdrs.callee.tolist())
    owners = partitions_of_keys(np.concatenate((callers, callees)), partitions)
    caller_owners, callee_owners = owners[:rows], owners[rows:]
    calls = (
        cdrs.cdr_id,
        callers,
        callees,
        cdrs.start_ms,
        cdrs.duration_s,
        cdrs.disposition,
        cdrs.ring_s,
    )
    for partition, columns in _by_partition(caller_owners, calls, keys=(1, 2)):
        routed = batches[partition].calls
        routed.cdr_id.extend(columns[0])
        _extend_keys(routed, "caller", columns[1])
        _extend_keys(routed, "callee", columns[2])
        routed.start_ms.extend(columns[3])
        routed.duration_s.extend(columns[4])
        routed.disposition.extend(columns[5])
        routed.ring_s.extend(columns[6])
    inbound_columns = (callees, callers, cdrs.start_ms)
    for partition, columns in _by_partition(callee_owners, inbound_columns, keys=(0, 1)):
        inbound = batches[partition].inbound
        _extend_keys(inbound, "number", columns[0])
        _extend_keys(inbound, "from_number", columns[1])
        inbound.time_ms.extend(columns[2])


def _extend_keys(part: Any, name: str, keys: np.ndarray) -> None:
    """Add ``keys`` to the key column ``name`` of ``part``, kept as an int64 array."""
    held = getattr(part, name)
    setattr(part, name, np.concatenate((np.asarray(held, np.int64), keys)) if len(held) else keys)


def _by_partition(
    owners: np.ndarray, columns: Sequence[np.ndarray], keys: Sequence[int] = ()
) -> Iterator[tuple[int, list[Any]]]:
    """Each owning partition (ascending) with its rows of each column, in row order.

    Columns are given as lists, except those whose index is in ``keys``: int64 arrays.
    """
    order = np.argsort(owners, kind="stable")
    ordered = owners[order]
    bounds = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
    firsts = [0, *bounds.tolist()]
    lasts = [*firsts[1:], len(owners)]
    values = [
        column[order] if index in keys else column[order].tolist()
        for index, column in enumerate(columns)
    ]
    for first, last in zip(firsts, lasts, strict=True):
        yield int(ordered[first]), [column[first:last] for column in values]


def _accept_records(
    validate: Callable[[bytes], ValidationResult[Any]],
    route: Callable[[Batches, Any], None],
) -> Accept:
    """Accept JSON messages one at a time: validate each, then route its records one by one."""

    def accept(messages: list[RawMessage], batches: Batches) -> tuple[int, list[list[Rejection]]]:
        valid, rejections = 0, []
        for message in messages:
            result = validate(message.value)
            for record in result.records:
                route(batches, record)
            valid += len(result.records)
            rejections.append(result.rejections)
        return valid, rejections

    return accept


def _ingest(
    messages: Iterable[RawMessage],
    accept: Accept,
    max_original_bytes: int,
    now_ms: int,
) -> IngestOutcome:
    outcome = IngestOutcome()
    batches: Batches = defaultdict(RoutedBatch)
    taken = list(messages)
    outcome.valid, rejections_by_message = accept(taken, batches)
    for message, rejections in zip(taken, rejections_by_message, strict=True):
        outcome.rejected += len(rejections)
        for rejection in rejections:
            value = deadletter_record(
                rejection,
                message.source,
                rejected_at_ms=now_ms,
                max_original_bytes=max_original_bytes,
            )
            outcome.deadletters.append((message.source.key, value))
    # The messages of one read arrive in event-time order by their first call
    # (streams.pipeline.alignment), but an array of CDRs spans minutes of calls: routed
    # message after message, the calls of one array would run past the start of
    # the next, and a caller's calls from the next array would miss the rows the
    # feature stage emitted meanwhile, depending on how the exporter cut its
    # arrays. Sorted, a read's calls close buckets in time order whatever the arrays.
    outcome.by_partition = {partition: in_time_order(batch) for partition, batch in batches.items()}
    return outcome
