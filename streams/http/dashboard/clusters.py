"""Campaign clusters: numbers flagged together, from plain flag rows.

A nuisance campaign rents lines in bulk and starts them together, so its
numbers tend to share a number segment, a category and a start time. Two
kinds of cluster, both over the numbers flagged now:

``segment``
    same category, same segment (for a Chinese mobile the first 7 digits of
    the national number, the 号段; otherwise the number without its last 4
    digits), first flagged within ``segment_span`` of the cluster's first;
``burst``
    same category, first flagged within ``burst_span`` of the burst's first,
    whatever the segment, at least ``min_burst`` numbers.

Pure functions over dicts, so the rules are tested without a store.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

__all__ = ["Cluster", "find_clusters", "segment_of"]


@dataclass(frozen=True, slots=True)
class Cluster:
    """Numbers of one category flagged together."""

    kind: str  # "segment" or "burst"
    key: str  # the shared segment, or the burst's start time
    category: str
    numbers: tuple[str, ...]
    first_flagged: datetime
    last_flagged: datetime

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (times in RFC 3339 UTC)."""
        return {
            "kind": self.kind,
            "key": self.key,
            "category": self.category,
            "size": len(self.numbers),
            "numbers": list(self.numbers),
            "first_flagged": self.first_flagged.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "last_flagged": self.last_flagged.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def segment_of(number: str) -> str:
    """The number's segment.

    >>> segment_of("+8613800138000")
    '+861380013'
    >>> segment_of("+861012345678")
    '+86101234'
    >>> segment_of("95588")
    '95588'
    """
    if number.startswith("+861") and len(number) == 14:  # +86 and an 11-digit mobile
        return number[:10]
    if number.startswith("+") and len(number) > 8:
        return number[:-4]
    return number


def find_clusters(
    flags: Iterable[Mapping[str, Any]],
    first_flagged: Mapping[str, datetime],
    *,
    segment_span: timedelta = timedelta(hours=1),
    burst_span: timedelta = timedelta(minutes=10),
    min_segment: int = 2,
    min_burst: int = 4,
) -> list[Cluster]:
    """Segment clusters and bursts among ``flags`` (rows with ``number`` and ``category``).

    ``first_flagged`` maps a number to when its current run of flags began;
    numbers without one are left out. Largest clusters first.
    """
    by_segment: dict[tuple[str, str], list[tuple[datetime, str]]] = defaultdict(list)
    by_category: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for row in flags:
        number, category = row["number"], row["category"]
        started = first_flagged.get(number)
        if started is None:
            continue
        by_segment[(segment_of(number), category)].append((started, number))
        by_category[category].append((started, number))
    clusters = [
        Cluster("segment", segment, category, tuple(numbers), first, last)
        for (segment, category), members in by_segment.items()
        for first, last, numbers in _runs(members, segment_span)
        if len(numbers) >= min_segment
    ]
    clusters += [
        Cluster("burst", first.strftime("%Y-%m-%dT%H:%M:%SZ"), category, tuple(numbers),
                first, last)
        for category, members in by_category.items()
        for first, last, numbers in _runs(members, burst_span)
        if len(numbers) >= min_burst
    ]
    return sorted(clusters, key=lambda c: (-len(c.numbers), c.first_flagged, c.kind, c.key))


def _runs(
    members: list[tuple[datetime, str]], span: timedelta
) -> list[tuple[datetime, datetime, list[str]]]:
    """Split time-stamped numbers into runs, each within ``span`` of its first member."""
    runs: list[tuple[datetime, datetime, list[str]]] = []
    for started, number in sorted(members):
        if runs and started - runs[-1][0] <= span:
            first, _, numbers = runs[-1]
            numbers.append(number)
            runs[-1] = (first, started, numbers)
        else:
            runs.append((started, started, [number]))
    return runs
