"""Keep Faust's fetcher from draining partitions it is not consuming (and then losing them).

Faust (faust-streaming 0.15.3) hands its live set of active partitions to
aiokafka's ``Fetcher.fetched_records`` (aiokafka 0.14.0), which runs in the
consumer thread and waits up to a second for records, checking that set
again on each wake-up. aiokafka reads an empty set as "every partition".
Table recovery empties the set for a while (after the active changelogs are
read, while the standby offsets are looked up), so a fetch in flight then
drains whatever aiokafka had prefetched for the paused stream partitions.
Faust's ``getmany`` drops those records (their partitions are not active)
after aiokafka's position has passed them. The seek to committed offsets at
the end of recovery repairs partitions with a committed offset; on the
others (a worker's first ``cdr.by_caller`` partitions, or partitions taken
over from a worker killed before its first commit) the records are never
read. Measured on the takeover test: records were drained and dropped so in
11 of 12 runs, mostly high-watermark nudges; a run failed when one was a
routed batch (offset 2 of two ``cdr.by_caller`` partitions: 440 calls the
survivor never applied).

The guard passes aiokafka a view of the same live set that is never empty
to aiokafka's test, so an empty set drains nothing.

The fault is in the Kafka clients, not the broker: Apache Kafka needs the
guard as well. It can be dropped once aiokafka reads an empty set as "no
partition", or Faust stops handing it an empty set during recovery (check
``Fetcher.fetched_records`` and Faust's ``getmany`` when upgrading either).
"""

from __future__ import annotations

from collections.abc import Iterator, Set
from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

__all__ = ["ActivePartitions", "install"]


class ActivePartitions(Set[Any]):
    """A live set of partitions as a fetch filter: empty means none, not all."""

    def __init__(self, live: Set[Any]) -> None:
        self._live = live

    def __contains__(self, tp: object) -> bool:
        return tp in self._live

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._live))

    def __len__(self) -> int:
        return len(self._live)

    def __bool__(self) -> bool:
        return True  # aiokafka tests ``if partitions and tp not in partitions``


_original_fetch_records = AIOKafkaConsumerThread._fetch_records


async def _fetch_records(
    self: AIOKafkaConsumerThread,
    consumer: Any,
    active_partitions: Set[Any] | None,
    timeout: float | None = None,
    max_records: int | None = None,
) -> Any:
    # None: a client-only app reads every partition. aiokafka only tests the
    # filter's truth and membership.
    guarded: Any = None if active_partitions is None else ActivePartitions(active_partitions)
    return await _original_fetch_records(
        self, consumer, guarded, timeout=timeout, max_records=max_records
    )


def install() -> None:
    """Route Faust's fetches through the guard (idempotent)."""
    AIOKafkaConsumerThread._fetch_records = _fetch_records  # type: ignore[method-assign]
