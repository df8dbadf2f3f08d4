"""Ingest: validate ``cdr.raw`` messages, route good CDRs by caller, reject the rest.

Pure logic; the Faust agent in :mod:`streams.agents` reads, calls this and
sends what it returns.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from features.cdr import CDR, validate_message
from streams.deadletter import SourcePosition, deadletter_record
from streams.wire import CdrColumns

__all__ = ["IngestOutcome", "RawMessage", "ingest", "partition_for_caller"]


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A ``cdr.raw`` message as read: value and position."""

    value: bytes
    source: SourcePosition


@dataclass(slots=True)
class IngestOutcome:
    """What one batch of raw messages turned into."""

    by_partition: dict[int, CdrColumns] = field(default_factory=dict)
    deadletters: list[tuple[bytes, bytes]] = field(default_factory=list)  # (key, value)
    valid: int = 0
    rejected: int = 0


def partition_for_caller(caller: str, partitions: int) -> int:
    """Stable partition of a normalised caller (CRC-32: fast, same in every process)."""
    return zlib.crc32(caller.encode()) % partitions


def ingest(
    messages: Iterable[RawMessage],
    *,
    partitions: int,
    default_region: str,
    max_message_bytes: int,
    max_original_bytes: int,
    now_ms: int,
) -> IngestOutcome:
    """Validate messages; group valid CDRs by target partition; encode rejections."""
    outcome = IngestOutcome()
    routed: defaultdict[int, list[CDR]] = defaultdict(list)
    for message in messages:
        result = validate_message(
            message.value, default_region=default_region, max_bytes=max_message_bytes
        )
        for cdr in result.cdrs:
            routed[partition_for_caller(cdr.caller, partitions)].append(cdr)
        outcome.valid += len(result.cdrs)
        outcome.rejected += len(result.rejections)
        for rejection in result.rejections:
            value = deadletter_record(
                rejection,
                message.source,
                rejected_at_ms=now_ms,
                max_original_bytes=max_original_bytes,
            )
            outcome.deadletters.append((message.source.key, value))
    outcome.by_partition = {
        partition: CdrColumns.from_cdrs(cdrs) for partition, cdrs in routed.items()
    }
    return outcome
