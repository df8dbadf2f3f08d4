"""Random multi-caller message streams for the CallerBlock tests (holds no tests itself).

The reference is what runs today: :class:`streams.stages.reference.feature_stage.FeatureStage`
over a dict of :class:`features.reference.caller_record.CallerRecord` bytes, one
:class:`features.reference.state.CallerState` per caller.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contracts.by_caller import CdrColumns, ComplaintColumns, InboundColumns, RoutedBatch
from features.batch import call_batch, callee_keys
from features.block.engine import CallerBlock
from features.config import FeatureConfig
from features.fingerprints import fingerprints
from features.reference.caller_record import CallerRecord
from streams.stages.event_clock import OpenBuckets, by_piece
from tests.unit.test_features_support import T0


@dataclass
class Message:
    batch: RoutedBatch
    offset: int


def random_messages(seed: int, n_messages: int = 40, n_callers: int = 25) -> list[Message]:
    """Messages with late, very late, long, resent and replayed calls, complaints, call-backs."""
    rng = np.random.default_rng(seed)
    callers = [f"+861390000{i:04d}" for i in range(n_callers)]
    messages: list[Message] = []
    sent: list[tuple] = []
    clock = T0
    earlier = 0
    for offset in range(n_messages):
        if messages and rng.random() < 0.1:  # a restarted worker reads an old message again
            old = messages[int(rng.integers(len(messages)))]
            messages.append(Message(old.batch, old.offset))
            continue
        clock += int(rng.integers(0, 400_000))
        if rng.random() < 0.05:
            clock += 7 * 3600_000  # a quiet spell: the long ring turns over
        calls = CdrColumns()
        n_calls = int(rng.integers(1, 60))
        busy = rng.choice(n_callers, size=min(n_callers, int(rng.integers(1, 8))), replace=False)
        for _ in range(n_calls):
            if sent and rng.random() < 0.08:
                row = sent[int(rng.integers(len(sent)))]  # a carrier's resend
            else:
                caller = callers[int(rng.choice(busy))]
                lateness = int(rng.choice([0, 0, 0, 30_000, 100_000, 119_000, 200_000, 900_000]))
                at = clock + int(rng.integers(-5_000, 60_000)) - lateness
                if rng.random() < 0.4:
                    callee = f"+8613800{int(rng.integers(0, 40)):06d}"  # sequential-ish
                elif rng.random() < 0.3:
                    callee = callers[int(rng.integers(n_callers))]
                else:
                    callee = f"+86137{int(rng.integers(0, 10**8)):08d}"
                answered = rng.random() < 0.5
                # Now and then a long talk, written (ended) after later calls of its caller.
                talk_s = rng.exponential(30) if rng.random() < 0.85 else rng.uniform(120, 1200)
                row = (
                    f"id{len(sent)}",
                    caller,
                    callee,
                    at,
                    float(talk_s) if answered else 0.0,
                    "ANSWERED" if answered else "NO_ANSWER",
                    None if answered or rng.random() < 0.2 else float(rng.uniform(0, 6)),
                )
                sent.append(row)
            for column, value in zip(
                ("cdr_id", "caller", "callee", "start_ms", "duration_s", "disposition", "ring_s"),
                row,
                strict=True,
            ):
                getattr(calls, column).append(value)
        batch = RoutedBatch(calls=calls)
        batch.inbound = _inbound(calls, callers, rng)
        # Only about callers who called in an earlier message, and not ahead of
        # their watermark: CallerState cannot encode complaints without a
        # watermark, nor read its default window past a newer bucket.
        watermarks: dict[str, int] = {}
        for row in sent[:earlier]:
            watermarks[row[1]] = max(watermarks.get(row[1], row[3]), row[3])
        batch.complaints = _complaints(watermarks, rng)
        earlier = len(sent)
        messages.append(Message(batch, offset))
    return messages


def _inbound(calls: CdrColumns, callers: list[str], rng: np.random.Generator) -> InboundColumns:
    inbound = InboundColumns()
    for caller, callee, at in zip(calls.caller, calls.callee, calls.start_ms, strict=True):
        if callee in callers:
            inbound.number.append(callee)
            inbound.from_number.append(caller)
            inbound.time_ms.append(at)
    for _ in range(int(rng.integers(0, 4))):  # call-backs from days apart
        inbound.number.append(callers[int(rng.integers(len(callers)))])
        inbound.from_number.append(f"+8613800{int(rng.integers(0, 40)):06d}")
        inbound.time_ms.append(int(calls.start_ms[0]) + int(rng.integers(-2, 2)) * 86_400_000)
    return inbound


def _complaints(watermarks: dict[str, int], rng: np.random.Generator) -> ComplaintColumns:
    complaints = ComplaintColumns()
    callers = sorted(watermarks)
    for index in range(int(rng.integers(0, 4)) if callers else 0):
        number = callers[int(rng.integers(len(callers)))]
        complaints.complaint_id.append(f"k{index}")
        complaints.number.append(number)
        complaints.time_ms.append(watermarks[number] - int(rng.integers(0, 30 * 3600_000)))
    return complaints


def apply_to_block(
    block: CallerBlock, message: Message, clock: OpenBuckets | None = None
) -> dict[str, int]:
    """One message as the block-based stage would apply it; the stage's counters.

    With a ``clock``, the calls go in the pieces the stages cut a message
    into (:meth:`OpenBuckets.cuts`), as they do, each after the inbound
    notes it reaches in time (:func:`by_piece`), which wait in the
    inbox until the clock's frontier as they do.
    """
    config, batch = block.config, message.batch
    calls = batch.calls
    stats: dict[str, int] = {}
    block.begin(message.offset)
    inbound = batch.inbound
    pieces = clock.cuts(0, calls.start_ms) if clock else [slice(0, len(calls))]
    notes = by_piece(pieces, calls.start_ms, inbound.time_ms)
    complaints = batch.complaints
    reports = by_piece(pieces, calls.start_ms, complaints.time_ms)
    if len(calls):
        columns, ids = call_batch(calls, config), fingerprints(calls.cdr_id)
    for number, piece in enumerate(pieces):
        chosen = notes[number].tolist()
        if chosen:
            stats["inbound"] = stats.get("inbound", 0) + block.note_inbound(
                [inbound.number[index] for index in chosen],
                callee_keys([inbound.from_number[index] for index in chosen]),
                np.asarray(inbound.time_ms, np.int64)[chosen],
                message.offset,
                clock.frontier(0) if clock else None,
            )
        if len(calls):
            update = block.update(calls.caller[piece], columns.take(piece), ids[piece],
                                  message.offset, continued=True)
            for key, count in update.counts.items():
                stats[key] = stats.get(key, 0) + count
        chosen = reports[number].tolist()
        if chosen:
            landed = block.note_complaints(
                [complaints.number[index] for index in chosen],
                np.asarray(complaints.time_ms, np.int64)[chosen],
                message.offset,
            )
            stats["complaints"] = stats.get("complaints", 0) + int(landed.sum())
        if clock and len(calls) and number < len(pieces) - 1:
            clock.note(0, calls.caller[piece], calls.start_ms[piece])
            clock.closed(0)
    if clock:
        clock.note(0, calls.caller[pieces[-1]], calls.start_ms[pieces[-1]])
        clock.closed(0)
    return stats



def reference_record(table: dict[str, bytes], number: str, config: FeatureConfig) -> CallerRecord:
    return CallerRecord.from_bytes(table[number], config)
