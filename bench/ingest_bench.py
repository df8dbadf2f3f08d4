"""Benchmark of ingest: one-CDR JSON, JSON batches and Arrow IPC batches through ``ingest_cdrs``.

Run: ``.venv/bin/python bench/ingest_bench.py [--cdrs 50000] [--batch 500] [--repeat 5]
[--encodings json1,batch,arrow] [--take-cdrs 1 | --gather N]``.
Simulates the built-in ``default`` scenario from midnight until it has
``--cdrs`` CDRs, encodes them as the simulator sends them to Kafka (raw
number formats, part of the times as RFC 3339 text) as the worker bench
does (``json1``: one CDR per message; ``batch``: JSON arrays of ``--batch``;
``arrow``: Arrow IPC streams of ``--batch``), then times
:func:`streams.pipeline.ingest.ingest_cdrs` (validation and routing, one message at
a time by default; ``--gather N`` hands it N messages per call, as the
worker's intake does with the messages it gathers, up to
``ingest_batch_size`` of them) plus :func:`contracts.by_caller.encode_routed_parts`
of its output. Prints CDR/s per encoding, the median of ``--repeat`` runs,
by wall time and by CPU time of the process (all threads: polars may use
several), the per-core figure that holds up on a shared machine. The
partition cache is emptied before each run: in a worker most callees are
seen once, so routing mostly misses it. Asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import polars as pl

from contracts.by_caller import encode_routed_parts
from simulator.kafka import Encoding, KafkaMessage, kafka_messages
from simulator.run import simulate
from simulator.scenario import builtin_scenario, with_overrides
from streams.pipeline import ingest
from streams.pipeline.deadletter import SourcePosition
from streams.pipeline.ingest import RawMessage, ingest_cdrs

PARTITIONS = 8


ENCODINGS: dict[str, Encoding] = {"json1": "json", "batch": "json", "arrow": "arrow"}


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


def ingest_seconds(messages: list[KafkaMessage], per_call: int) -> tuple[float, float]:
    """Wall and CPU time to validate, route and encode every message, ``per_call`` at a time."""
    raw = [
        RawMessage(m.value, SourcePosition("cdr.raw", 0, i), list(m.headers) or None)
        for i, m in enumerate(messages)
    ]
    ingest._partition_cache.clear()
    started, cpu_started = time.perf_counter(), time.process_time()
    for begin in range(0, len(raw), per_call):
        outcome = ingest_cdrs(
            raw[begin : begin + per_call],
            partitions=PARTITIONS,
            default_region="CN",
            max_message_bytes=64 * 1024 * 1024,
            max_original_bytes=900_000,
            now_ms=0,
        )
        for routed in outcome.by_partition.values():
            encode_routed_parts(routed)
    return time.perf_counter() - started, time.process_time() - cpu_started


def main() -> None:
    """Print CDR/s through ingest for each encoding."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cdrs", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--encodings", default=",".join(ENCODINGS))
    calls = parser.add_mutually_exclusive_group()
    calls.add_argument(
        "--take-cdrs", type=int, default=1, help="CDRs per ingest call (1: one message per call)"
    )
    calls.add_argument(
        "--gather",
        type=int,
        default=0,
        help="messages per ingest call, as the worker's intake gathers them",
    )
    args = parser.parse_args()
    print(f"polars threads: {pl.thread_pool_size()}, {PARTITIONS} partitions")
    for name in args.encodings.split(","):
        batch = 1 if name == "json1" else args.batch
        messages = cdr_messages(args.cdrs, batch, ENCODINGS[name])
        total = sum(m.cdrs for m in messages)
        size = sum(len(m.value) for m in messages) / total
        per_call = args.gather or max(1, args.take_cdrs // max(1, messages[0].cdrs))
        ingest_seconds(messages, per_call)  # warms up
        runs = [ingest_seconds(messages, per_call) for _ in range(args.repeat)]
        wall = statistics.median(run[0] for run in runs)
        cpu = statistics.median(run[1] for run in runs)
        print(
            f"{name:>5}: {total / wall:>9,.0f} CDR/s wall, {total / cpu:>9,.0f} CDR/s CPU "
            f"({total:,} CDRs in {len(messages)} messages, {size:.0f} bytes/CDR, "
            f"median of {args.repeat}, {per_call} messages per call)"
        )


if __name__ == "__main__":
    main()
