"""Benchmark of the feature stage: FeatureStage.apply vs BlockFeatureStage.apply.

Run: ``.venv/bin/python bench/stage_bench.py [--cdrs 200000] [--callers 50000]``.
Builds ``cdr.by_caller`` messages of 5,000 CDRs the way the ingest agent does
(:func:`streams.pipeline.ingest.ingest_cdrs` over simulator-like JSON, one partition,
so each message carries its inbound notes too), then applies the same
messages to each stage with a dict for a table (``--checkpoint-rows N``: the
worker's write-behind table, checkpointed whenever N callers wait, so rows
are serialised once per checkpoint as in the worker). Prints CDR/s through
``apply`` (table writes included, message building excluded), emissions and
the table's bytes per caller. Asserts nothing. ``--stage block`` runs only
the block stage (the per-caller one takes a minute at the default size).

What the profile showed and what changed (py-spy/pyinstrument and
per-function CPU timers, 40 messages of 5,000 CDRs, 50,000 callers): at
about 48,000 CDR/s, a third of ``BlockFeatureStage.apply`` went to writing
rows back (``rows_bytes`` built an int64 index for every byte of every
row), a third to emission (feature vectors for every caller with a call,
though four in five then failed ``min_calls``), a quarter to ``update``
(two-key ``lexsort`` calls, ``np.unique``) and a tenth to per-number dict
lookups, done two or three times per number. Now ``rows_bytes`` copies
fixed-width items into padded row regions; emission tests the short
window's call count from the ring first and computes vectors only for
the callers that emit (in number order, sorted after the test);
sort keys were packed into one 64-bit key (since replaced by compiled
passes), ``distinct_rows`` marks a mask instead of ``np.unique``;
``kmv_union_groups`` sorts a packed (group, hash, count) key; numbers are
looked up once per message and inbound notes are keyed only for numbers
with state. About 2.2x in all
(see the commit log for figures); what is left is spread thin: the
write-back (about a third: gathers of caller and slot records and one
``bytes`` per row), ``update`` (a third), the feature vectors of the
emitted callers and the number lookups. Same results to the bit: stats,
emissions, every table write.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import MutableMapping

import numpy as np
import orjson

from contracts.by_caller import RoutedBatch
from features.block.engine import warm_up_kernels
from features.config import FeatureConfig
from features.emission import EmissionPolicy
from streams.pipeline.deadletter import SourcePosition
from streams.pipeline.ingest import RawMessage, ingest_cdrs
from streams.stages.block_stage import BlockFeatureStage
from streams.stages.reference.feature_stage import FeatureStage
from streams.state.write_behind import WriteBehindTable

T0 = 1_709_251_200_000  # 2024-03-01 08:00 in Shanghai
MESSAGE_CDRS = 5_000


def messages(
    n_cdrs: int, n_callers: int, seed: int = 1, message_cdrs: int = MESSAGE_CDRS
) -> list[RoutedBatch]:
    """Routed messages of ``message_cdrs`` calls at 5,000 calls a minute of event time.

    A fifth of the callees are callers too (their inbound notes land on
    state); a tenth of the callers place half of the calls. Whatever the
    message size, the calls arrive at the same event-time rate, so the
    same buckets end and the same rows are emitted per call.
    """
    rng = np.random.default_rng(seed)
    span_ms = 60_000 * message_cdrs // MESSAGE_CDRS
    callers = [f"+86139{i:08d}" for i in range(n_callers)]
    busy = max(1, n_callers // 10)
    batches = []
    for index in range(n_cdrs // message_cdrs):
        heavy = rng.random(message_cdrs) < 0.5
        caller_ids = np.where(
            heavy, rng.integers(0, busy, message_cdrs), rng.integers(0, n_callers, message_cdrs)
        )
        answered = rng.random(message_cdrs) < 0.4
        starts = T0 + index * span_ms + rng.integers(-span_ms // 2, span_ms, message_cdrs)
        records = []
        for row in range(message_cdrs):
            callee = (
                callers[int(rng.integers(n_callers))]
                if rng.random() < 0.2
                else f"+86137{int(rng.integers(0, 10**8)):08d}"
            )
            records.append(
                {
                    "cdr_id": f"c{index}-{row}",
                    "caller": callers[int(caller_ids[row])],
                    "callee": callee,
                    "start_time": int(starts[row]),
                    "duration_s": round(float(rng.exponential(40)), 1) if answered[row] else 0,
                    "disposition": "ANSWERED" if answered[row] else "NO_ANSWER",
                    "ring_s": round(float(rng.uniform(0, 20)), 1),
                }
            )
        outcome = ingest_cdrs(
            [RawMessage(orjson.dumps(records), SourcePosition("cdr.raw", 0, index))],
            partitions=1,
            default_region="CN",
            max_message_bytes=1 << 24,
            max_original_bytes=1024,
            now_ms=0,
        )
        batches.append(outcome.by_partition[0])
    return batches


def run(
    stage: FeatureStage | BlockFeatureStage,
    batches: list[RoutedBatch],
    checkpoint_rows: int | None = None,
) -> dict[str, float]:
    """Apply every message to ``stage`` over a fresh table; its figures.

    With ``checkpoint_rows``, the table is the worker's
    (:class:`~streams.state.write_behind.WriteBehindTable`, rows serialised
    when a checkpoint takes them) and a checkpoint is taken whenever that
    many callers wait; without, a dict written at every message.
    """
    behind = None if checkpoint_rows is None else WriteBehindTable({}, lambda k: [0] * len(k))
    table: MutableMapping[str, bytes] = {} if behind is None else behind
    written: dict[bytes, int] = {}  # checkpointed value sizes, the latest per key

    def checkpoint(behind: WriteBehindTable) -> None:
        written.update((key, len(value)) for _, key, value in behind.take() if value is not None)

    emitted = calls = 0
    started = time.perf_counter()
    for offset, batch in enumerate(batches):
        stats, _ = stage.apply(batch, offset, table)
        emitted += stats.emitted
        calls += stats.calls
        if behind is not None and behind.pending >= (checkpoint_rows or 0):
            checkpoint(behind)
    if behind is not None:
        checkpoint(behind)
    elapsed = time.perf_counter() - started
    sizes = np.array(list(written.values()) if behind is not None else
                     [len(value) for value in table.values()])
    return {
        "cdr_per_s": calls / elapsed,
        "emitted": emitted,
        "callers": len(sizes),
        "bytes_mean": float(sizes.mean()),
        "bytes_max": float(sizes.max()),
    }


def main() -> None:
    """Build the messages once, run both stages, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cdrs", type=int, default=200_000)
    parser.add_argument("--callers", type=int, default=50_000)
    parser.add_argument("--stage", choices=("both", "block"), default="both")
    parser.add_argument(
        "--checkpoint-rows", type=int,
        help="the worker's table: checkpoint when this many callers wait (default: a dict "
             "written at every message)",
    )
    parser.add_argument(
        "--message-cdrs", type=int, default=MESSAGE_CDRS,
        help="CDRs per routed message (event-time rate fixed at 5,000 a minute)",
    )
    args = parser.parse_args()
    warm_up_kernels()  # as the worker does before it joins: numba's cache loads outside the timing
    config = FeatureConfig()
    policy = EmissionPolicy(min_calls=5)
    started = time.perf_counter()
    batches = messages(args.cdrs, args.callers, message_cdrs=args.message_cdrs)
    inbound = sum(len(batch.inbound) for batch in batches)
    print(
        f"{len(batches)} messages of {args.message_cdrs:,} CDRs ({inbound:,} inbound notes) over "
        f"{args.callers:,} callers, built in {time.perf_counter() - started:.1f} s"
    )
    stages: list[tuple[str, FeatureStage | BlockFeatureStage]] = [
        ("BlockFeatureStage", BlockFeatureStage(config, policy))
    ]
    if args.stage == "both":
        stages.insert(0, ("FeatureStage", FeatureStage(config, policy)))
    for name, stage in stages:
        figures = run(stage, batches, args.checkpoint_rows)
        print(
            f"  {name:>17}: {figures['cdr_per_s']:>9,.0f} CDR/s through apply; "
            f"{figures['emitted']:,.0f} emitted; table {figures['callers']:,.0f} callers, "
            f"{figures['bytes_mean']:,.0f} B/caller (max {figures['bytes_max']:,.0f})"
        )


if __name__ == "__main__":
    main()
