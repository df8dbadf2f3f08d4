"""Which flags lapse when: a heap per partition, checked as stream time advances.

Stream time is the event time of the callers a message emitted (the CDRs'
clock), so expiry is as deterministic as the decisions themselves. After a
restart the index is rebuilt once per partition from the flag table.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import MutableMapping

from contracts.flag import Action, Flag
from streams.pipeline.ingest import partition_for_number
from streams.stages.decision_stage import decode_state, expire_due

__all__ = ["ExpiryIndex"]


class ExpiryIndex:
    """Pending expiries per partition: ``(expires_at_ms, number)`` heaps."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._heaps: defaultdict[int, list[tuple[int, str]]] = defaultdict(list)
        self._stream_time: defaultdict[int, int] = defaultdict(int)
        self._rebuilt: set[int] = set()

    def track(self, partition: int, flag: Flag) -> None:
        """Remember when a published block or watch lapses."""
        if flag.action is not Action.CLEAR and flag.expires_at_ms is not None:
            heapq.heappush(self._heaps[partition], (flag.expires_at_ms, flag.number))

    def rebuild_once(self, partition: int, table: MutableMapping[str, bytes]) -> None:
        """After (re)assignment, index the partition's active flags from the table."""
        if partition in self._rebuilt:
            return
        self._rebuilt.add(partition)
        for number in list(table):
            if partition_for_number(number, self.partitions) != partition:
                continue
            flag = decode_state(table.get(number)).flag
            if flag is not None:
                self.track(partition, flag)

    def stream_time(self, partition: int) -> int:
        """The latest event time seen on ``partition`` (0 before any)."""
        return self._stream_time[partition]

    def expire(
        self, partition: int, event_time_ms: int, table: MutableMapping[str, bytes]
    ) -> list[Flag]:
        """Advance the partition's stream time; ``clear`` every flag that lapsed by then."""
        now = max(self._stream_time[partition], event_time_ms)
        self._stream_time[partition] = now
        heap, due = self._heaps[partition], []
        while heap and heap[0][0] <= now:
            due.append(heapq.heappop(heap)[1])
        # A renewed flag is still in the heap with its old expiry: expire_due
        # re-reads the state and clears only what really lapsed.
        cleared = expire_due(sorted(set(due)), now, table)
        for number in set(due) - {flag.number for flag in cleared}:
            state = decode_state(table.get(number))
            if state.flag is not None:
                self.track(partition, state.flag)
        return cleared
