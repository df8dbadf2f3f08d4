"""When a caller's short bucket is complete: the event-time clock of ``cdr.by_caller`` partitions.

Emission is driven by event time (the scoring stage sees the same rows
whatever the arrival speed or batching): a caller is emitted once per short
bucket in which it called, with its features at that bucket's end, when the
partition's watermark -- the latest call start seen in the partition -- has
passed the bucket's end by the grace. Those are exactly the rows training
uses (:mod:`models.dataset`: one per caller and short bucket with calls, at
the bucket's end), and they do not depend on how messages were batched, as
long as calls arrive less than the grace out of order.

A caller's calls all go to one partition (``cdr.by_caller`` is keyed by
caller), so a partition's clock only has to follow that partition's
messages, which a worker reads in order.

The one choice that is wall-clock by nature: a partition that stops
receiving (the end of the traffic, a quiet night) would hold its last
buckets for ever, so after ``idle_s`` seconds without a message its open
buckets are emitted as they stand (:meth:`OpenBuckets.idle`). A bucket
emitted so is not closed: calls that arrive for it later are counted and
the bucket is emitted again when the watermark passes it.

>>> clock = OpenBuckets(hop_ms=300_000, grace_ms=120_000)
>>> clock.note(0, ["a", "b"], [10_000, 290_000])
>>> clock.closed(0)
[]
>>> clock.note(0, ["a"], [420_000])
>>> clock.closed(0)
[(300000, ['a', 'b'])]
>>> clock.note(0, ["b"], [100_000])  # its bucket was emitted: not noted again
>>> clock.pending(0)
1
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["Caller", "OpenBuckets", "by_piece"]

# A caller as its stage keeps it: the number's text (the reference stage) or
# its key (the block stage, contracts.number_keys).
Caller = str | int


class OpenBuckets:
    """Per partition: the watermark, and the callers with calls in each bucket not yet emitted."""

    def __init__(self, hop_ms: int, grace_ms: int) -> None:
        if hop_ms <= 0 or grace_ms < 0:
            raise ValueError("hop_ms must be positive and grace_ms not negative")
        self.hop_ms, self.grace_ms = hop_ms, grace_ms
        self._open: dict[int, dict[int, dict[Caller, None]]] = {}
        self._watermark: dict[int, int] = {}
        self._closed_through: dict[int, int] = {}  # bucket ends up to this are emitted
        self._heard_at: dict[int, float] = {}

    def note(self, partition: int, numbers: Sequence[Caller], start_ms: Sequence[int]) -> None:
        """Callers' calls (one entry per call) accepted in ``partition``; advances its watermark."""
        self._heard_at[partition] = time.monotonic()
        if not len(start_ms):
            return
        starts = np.asarray(start_ms, dtype=np.int64)
        latest = int(starts.max())
        self._watermark[partition] = max(self._watermark.get(partition, latest), latest)
        buckets = starts // self.hop_ms
        closed = self._closed_through.get(partition, np.iinfo(np.int64).min)
        open_ = self._open.setdefault(partition, {})
        for number, bucket in zip(numbers, buckets.tolist(), strict=True):
            if (bucket + 1) * self.hop_ms <= closed:
                continue  # that bucket's row is out already: the call counts for later ones
            open_.setdefault(bucket, {})[number] = None

    def cuts(self, partition: int, start_ms: Sequence[int]) -> list[slice]:
        """A message's calls (arrival order) cut where one of them closes buckets.

        Applying the message piece by piece, with :meth:`closed` after each
        piece, emits exactly what applying its calls one message each would
        (the call that moves the watermark past a bucket's end plus the grace
        ends its piece): so how calls were batched does not change the rows.
        Almost every message is one piece.

        >>> clock = OpenBuckets(hop_ms=300_000, grace_ms=120_000)
        >>> clock.cuts(0, [10_000, 100_000, 430_000, 440_000, 730_000, 800_000])
        [slice(0, 3, None), slice(3, 5, None), slice(5, 6, None)]
        """
        starts = np.asarray(start_ms, dtype=np.int64)
        if len(starts) < 2:
            return [slice(0, len(starts))]
        before = self._watermark.get(partition, int(starts[0]))
        # The watermark each call meets: the latest start before it.
        met = np.maximum(np.maximum.accumulate(starts[:-1]), before)
        epoch = (np.concatenate(([before], met)) - self.grace_ms) // self.hop_ms
        bounds = [0, *(np.flatnonzero(epoch[1:] != epoch[:-1]) + 1).tolist(), len(starts)]
        return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def closed(self, partition: int) -> list[tuple[int, list[Caller]]]:
        """The buckets the watermark has passed by the grace: ``(end_ms, numbers)``, oldest first.

        They leave the clock: each is returned once.
        """
        watermark = self._watermark.get(partition)
        open_ = self._open.get(partition)
        if watermark is None or not open_:
            return []
        last_end = (watermark - self.grace_ms) // self.hop_ms * self.hop_ms
        due = sorted(bucket for bucket in open_ if (bucket + 1) * self.hop_ms <= last_end)
        if due:
            self._closed_through[partition] = max(
                self._closed_through.get(partition, last_end), (due[-1] + 1) * self.hop_ms
            )
        return [((bucket + 1) * self.hop_ms, list(open_.pop(bucket))) for bucket in due]

    def idle(
        self, idle_s: float, now: float | None = None
    ) -> dict[int, list[tuple[int, list[Caller]]]]:
        """Partitions silent for ``idle_s`` seconds: all their open buckets, which stay open.

        Each partition is returned once per silence (until its next message).
        """
        now = time.monotonic() if now is None else now
        out: dict[int, list[tuple[int, list[Caller]]]] = {}
        for partition, heard in list(self._heard_at.items()):
            open_ = self._open.get(partition)
            if not open_ or now - heard < idle_s:
                continue
            out[partition] = [
                ((bucket + 1) * self.hop_ms, list(numbers))
                for bucket, numbers in sorted(open_.items())
            ]
            self._heard_at[partition] = float("inf")  # not again before the next message
        return out

    def __contains__(self, partition: object) -> bool:
        """Whether ``partition`` has a clock (it has had a message or was restored)."""
        return partition in self._heard_at

    def restore(
        self,
        partition: int,
        watermark: int | None,
        numbers: Sequence[Caller],
        start_ms: Sequence[int],
    ) -> None:
        """A partition's clock rebuilt from the state (after a restart or an assignment).

        ``numbers``/``start_ms``: a call time in each bucket not yet emitted
        of each caller; ``watermark``: the latest call start in the state.
        The state is written a whole message at a time, with the emissions of
        the buckets that message closed: buckets the watermark had passed by
        the grace stay closed.
        """
        self._heard_at[partition] = time.monotonic()
        if watermark is not None:
            self._watermark[partition] = watermark
            closed = (watermark - self.grace_ms) // self.hop_ms * self.hop_ms
            self._closed_through[partition] = closed
        self.note(partition, numbers, start_ms)

    def frontier(self, partition: int) -> int | None:
        """No bucket ending at or before this is emitted again in ``partition`` (None: not yet).

        Every row emitted from now on has a window end after it, so a call
        to a number before it counts for all of them (the inbox of
        :meth:`features.reference.state.CallerState.note_inbound`).
        """
        return self._closed_through.get(partition)

    def watermark(self, partition: int) -> int | None:
        """The latest call start seen in ``partition`` (None before any)."""
        return self._watermark.get(partition)

    def pending(self, partition: int) -> int:
        """Open buckets of ``partition``."""
        return len(self._open.get(partition, {}))

    def forget(self, partition: int) -> None:
        """Drop a revoked partition's clock (its next owner rebuilds it from the messages)."""
        for table in (self._open, self._watermark, self._closed_through, self._heard_at):
            table.pop(partition, None)


def by_piece(
    pieces: list[slice], start_ms: Sequence[int], note_ms: Sequence[int]
) -> list[NDArray[np.intp]]:
    """Which of a message's timed items go with each piece of its calls.

    With piece ``i``, the items (indices, in message order: inbound notes,
    complaints) dated at or before the latest call start of pieces ``0..i``
    and not taken earlier; the rest with the last piece. The stages apply a
    piece's notes before its calls and its complaints after them, both
    before the rows its cut emits. Those rows end at least the grace before
    that latest start, so each counts every call-back and complaint of the
    message dated before its window's end, while a number's inbox holds
    only the calls of the minutes its rows can still count (applied all at
    once, a message spanning hours of calls filled inboxes past
    ``inbound_pending`` and let calls into the filter early, and its rows
    missed its complaints).

    >>> [i.tolist() for i in by_piece([slice(0, 2), slice(2, 3)], [5, 9, 20], [20, 1, 9, 30])]
    [[1, 2], [0, 3]]
    """
    times = np.asarray(note_ms, dtype=np.int64)
    if len(pieces) == 1:
        return [np.arange(len(times))]
    starts = np.asarray(start_ms, dtype=np.int64)
    latest = np.maximum.accumulate([int(starts[piece].max()) for piece in pieces[:-1]])
    which = np.searchsorted(latest, times, side="left")  # the first piece reaching each note
    return [np.flatnonzero(which == index) for index in range(len(pieces))]
