"""The dead-letter record: a rejected message, why, and where it came from.

Value on ``cdr.deadletter`` (JSON)::

    {"reason": "...", "source_topic": "cdr.raw", "source_partition": 0,
     "source_offset": 42, "batch_index": 3 | null, "original_b64": "...",
     "original_size": 1234, "truncated": false, "rejected_at_ms": 1700000000000}

``original_b64`` is the rejected bytes in base64 (they may not be UTF-8): the
whole message when the message itself failed, or the failed batch element,
re-encoded as compact JSON, when only that element failed. Originals larger
than the configured limit are cut to that limit and marked ``truncated``, so
the dead letter itself always fits in a Kafka message.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import orjson

from contracts.cdr import Rejection

__all__ = ["SourcePosition", "deadletter_record"]


@dataclass(frozen=True, slots=True)
class SourcePosition:
    """Where a message was read: topic, partition and offset."""

    topic: str
    partition: int
    offset: int

    @property
    def key(self) -> bytes:
        """Dead-letter key: the source position, so re-runs land on the same key."""
        return f"{self.topic}:{self.partition}:{self.offset}".encode()


def deadletter_record(
    rejection: Rejection, source: SourcePosition, *, rejected_at_ms: int, max_original_bytes: int
) -> bytes:
    """Encode one rejection as the JSON value documented in this module."""
    original = rejection.original
    truncated = len(original) > max_original_bytes
    return orjson.dumps(
        {
            "reason": rejection.reason,
            "source_topic": source.topic,
            "source_partition": source.partition,
            "source_offset": source.offset,
            "batch_index": rejection.index,
            "original_b64": base64.b64encode(original[:max_original_bytes]).decode("ascii"),
            "original_size": len(original),
            "truncated": truncated,
            "rejected_at_ms": rejected_at_ms,
        }
    )
