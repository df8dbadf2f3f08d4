"""Benchmark of ingest: JSON batches vs Arrow IPC batches through ``ingest_cdrs``.

Run: ``.venv/bin/python bench/ingest_bench.py [--cdrs 50000] [--batch 5000] [--repeat 3]``.
Simulates the built-in ``default`` scenario from midnight until it has
``--cdrs`` CDRs, encodes them as the simulator sends them to Kafka (raw
number formats, part of the times as RFC 3339 text) in batches of
``--batch``, then times :func:`streams.ingest.ingest_cdrs` (validation and
routing, one message at a time as the agent receives them) plus
:func:`streams.wire.encode_routed` of its output. Prints CDR/s per
encoding, best of ``--repeat`` runs, by wall time and by CPU time of the
process (all threads: polars may use several), the per-core figure that
holds up on a shared machine. Caches (numbers, partitions) are warm after
the first run, as in a worker. Asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import polars as pl

from simulator.kafka import Encoding, KafkaMessage, kafka_messages
from simulator.run import simulate
from simulator.scenario import builtin_scenario, with_overrides
from streams.deadletter import SourcePosition
from streams.ingest import RawMessage, ingest_cdrs
from streams.wire import encode_routed

PARTITIONS = 8


def cdr_messages(cdrs: int, batch: int, encoding: Encoding) -> list[KafkaMessage]:
    """The simulator's ``cdr.raw`` messages holding the first ``cdrs`` CDRs of a day."""
    scenario = with_overrides(builtin_scenario("default"), duration="1d")
    chunks = []
    for chunk in simulate(scenario):
        chunks.append(chunk)
        if sum(c.cdrs.height for c in chunks) >= cdrs:
            break
    merged = dataclasses.replace(
        chunks[0],
        cdrs=pl.concat([c.cdrs for c in chunks]).head(cdrs),
        complaints=chunks[0].complaints.clear(),
    )
    messages = kafka_messages(
        merged,
        scenario,
        topic="cdr.raw",
        complaints_topic="complaints",
        batch_size=batch,
        encoding=encoding,
    )
    return [message for message in messages if message.topic == "cdr.raw"]


def ingest_seconds(messages: list[KafkaMessage]) -> tuple[float, float]:
    """Wall and CPU time to validate, route and encode every message, one per call."""
    raw = [
        RawMessage(m.value, SourcePosition("cdr.raw", 0, i), list(m.headers) or None)
        for i, m in enumerate(messages)
    ]
    started, cpu_started = time.perf_counter(), time.process_time()
    for message in raw:
        outcome = ingest_cdrs(
            [message],
            partitions=PARTITIONS,
            default_region="CN",
            max_message_bytes=64 * 1024 * 1024,
            max_original_bytes=900_000,
            now_ms=0,
        )
        for routed in outcome.by_partition.values():
            encode_routed(routed)
    return time.perf_counter() - started, time.process_time() - cpu_started


def main() -> None:
    """Print CDR/s through ingest for each encoding."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cdrs", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"polars threads: {pl.thread_pool_size()}, {PARTITIONS} partitions")
    for encoding in ("json", "arrow"):
        messages = cdr_messages(args.cdrs, args.batch, encoding)
        total = sum(m.cdrs for m in messages)
        size = sum(len(m.value) for m in messages) / total
        runs = [ingest_seconds(messages) for _ in range(args.repeat + 1)][1:]  # first warms up
        wall, cpu = min(run[0] for run in runs), min(run[1] for run in runs)
        print(
            f"{encoding:>5}: {total / wall:>9,.0f} CDR/s wall, {total / cpu:>9,.0f} CDR/s CPU "
            f"({total:,} CDRs in {len(messages)} messages, {size:.0f} bytes/CDR, "
            f"best of {args.repeat})"
        )


if __name__ == "__main__":
    main()
