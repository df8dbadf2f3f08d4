"""A latency trace carried in Kafka headers, from ``cdr.raw`` to ``cdr.flags``.

Every ``cdr.by_caller`` message and every decision on ``cdr.flags`` carries
the header ``callguard-source-ms``: the Kafka timestamp (milliseconds) of the
*oldest* ``cdr.raw`` message whose CDRs it reflects. A flag's own Kafka
timestamp minus this header is therefore the longest time any CDR behind it
took from the carrier's producer to the flag topic: interception systems and
the benchmark (:mod:`bench.pipeline`) read CDR-to-flag latency from it
without joining anything. Messages without the header (appeals, or topics
written by older workers) simply carry no trace.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["SOURCE_MS_HEADER", "headers_for", "oldest_ms", "source_ms"]

SOURCE_MS_HEADER = "callguard-source-ms"


def oldest_ms(timestamps_ms: Iterable[int | None]) -> int | None:
    """The oldest of Kafka timestamps as aiokafka gives them (integer milliseconds).

    (Faust gives float seconds: not for this function.)
    """
    known = [t for t in timestamps_ms if t is not None and t > 0]
    return min(known) if known else None


def source_ms(headers: Mapping[str, Any] | Sequence[tuple[str, Any]] | None) -> int | None:
    """The trace header's value, or ``None`` when absent or unreadable."""
    if not headers:
        return None
    items = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in items:
        if key == SOURCE_MS_HEADER and value is not None:
            try:
                return int(value.decode() if isinstance(value, bytes) else value)
            except ValueError:
                return None
    return None


def headers_for(ms: int | None) -> dict[str, bytes] | None:
    """Headers that carry ``ms`` on (``None`` when there is nothing to carry)."""
    return None if ms is None else {SOURCE_MS_HEADER: str(ms).encode()}
