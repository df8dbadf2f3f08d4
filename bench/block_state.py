"""Benchmark of CallerBlock: CDR/s through update, bytes per caller, features() rows/s.

Run: ``.venv/bin/python bench/block_state.py [--callers 100000] [--cdrs 1000000]``.
Targets (issue 4): >= 150,000 CDR/s per core for batched input, >= 30,000
for one CDR per message, <= 1 KB of state per active caller. Prints figures;
asserts nothing. Compare with ``bench/feature_state.py`` (CallerState).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from features.batch import CallBatch
from features.block.engine import CallerBlock
from features.config import FeatureConfig

T0 = 1_709_251_200_000
BATCH = 5_000


def message(
    rng: np.random.Generator, index: int, chosen: np.ndarray, per_caller: int, config: FeatureConfig
) -> tuple[np.ndarray, CallBatch, np.ndarray]:
    """One message: ``per_caller`` calls for each chosen caller, over 60 s of event time."""
    caller_ids = np.resize(np.repeat(chosen, per_caller), BATCH)
    answered = rng.random(BATCH) < 0.5
    calls = CallBatch.from_arrays(
        config,
        start_ms=T0 + index * 60_000 + rng.integers(0, 60_000, BATCH),
        callee=8613000000000 + rng.integers(0, 10**9, BATCH),
        duration_s=np.where(answered, rng.exponential(40, BATCH), 0.0),
        answered=answered,
        ring_s=rng.uniform(0, 20, BATCH),
    )
    fingerprints = rng.integers(0, 2**32, BATCH, dtype=np.uint64).astype(np.uint32)
    return caller_ids, calls, fingerprints


def bench_update(config: FeatureConfig, n: int, callers: int, per_caller: int) -> CallerBlock:
    """Messages of 5,000 CDRs, ``per_caller`` CDRs per caller in a message."""
    rng = np.random.default_rng(per_caller)
    names = [f"+86139{i:08d}" for i in range(callers)]
    block = CallerBlock(config, capacity=1024)
    elapsed = expire_s = 0.0
    for index in range(n // BATCH):
        if index % 5 == 4:  # every 5 minutes of event time, as a worker's timer would
            started = time.perf_counter()
            block.expire(T0 + index * 60_000)
            expire_s += time.perf_counter() - started
        chosen = rng.choice(callers, min(BATCH // per_caller, callers), replace=False)
        caller_ids, calls, fingerprints = message(rng, index, chosen, per_caller, config)
        numbers = [names[i] for i in caller_ids.tolist()]
        started = time.perf_counter()
        block.update(numbers, calls, fingerprints, index)
        elapsed += time.perf_counter() - started
    done = (n // BATCH) * BATCH
    print(
        f"  {per_caller:>3} CDR/caller/message: {done / elapsed:>10,.0f} CDR/s "
        f"({len(block):,} callers, {block.bytes_per_caller():,.0f} B/caller held); "
        f"expire() every 5 min: {expire_s / max(1, n // BATCH // 5) * 1e3:.0f} ms a call"
    )
    return block


def bench_single(config: FeatureConfig, n: int, callers: int) -> None:
    """One CDR per message (the worst case for a batched design)."""
    rng = np.random.default_rng(9)
    block = CallerBlock(config, capacity=1024)
    caller_ids, calls, fingerprints = message(rng, 0, rng.choice(callers, BATCH), 1, config)
    numbers = [f"+86139{i:08d}" for i in caller_ids.tolist()]
    singles = [calls.take(slice(i, i + 1)) for i in range(BATCH)]
    started = time.perf_counter()
    for i in range(BATCH):
        block.update(numbers[i : i + 1], singles[i], fingerprints[i : i + 1], i)
    elapsed = time.perf_counter() - started
    print(f"    1 CDR per message, one update each: {BATCH / elapsed:>10,.0f} CDR/s")
    block = CallerBlock(config, capacity=1024)
    elapsed, done = 0.0, 0
    for index in range(n // BATCH):
        caller_ids, calls, fingerprints = message(rng, index, rng.choice(callers, BATCH), 1, config)
        numbers = [f"+86139{i:08d}" for i in caller_ids.tolist()]
        offsets = index * BATCH + np.arange(BATCH)
        started = time.perf_counter()
        block.update(numbers, calls, fingerprints, offsets)  # 5,000 messages at once
        elapsed += time.perf_counter() - started
        done += BATCH
    print(f"    1 CDR per message, 5,000 messages per update: {done / elapsed:>10,.0f} CDR/s")


def bench_reading(block: CallerBlock) -> None:
    """features() over all rows, and the changelog bytes of a row."""
    rows = np.array([block.row(number) for number in list(block._row_of)[:20_000]])
    started = time.perf_counter()
    block.features(rows)
    elapsed = time.perf_counter() - started
    print(
        f"  features(): {len(rows) / elapsed:,.0f} rows/s ({elapsed / len(rows) * 1e6:.1f} us/row)"
    )
    started = time.perf_counter()
    sizes = [len(block.row_bytes(row)) for row in rows.tolist()]
    elapsed = time.perf_counter() - started
    print(
        f"  row_bytes: {elapsed / len(rows) * 1e6:.1f} us/row, mean {np.mean(sizes):.0f} B, "
        f"max {max(sizes)} B"
    )
    data = [block.row_bytes(row) for row in rows[:5000].tolist()]
    copy = CallerBlock(block.config, capacity=len(data))
    started = time.perf_counter()
    for index, raw in enumerate(data):
        copy.load_row(f"n{index}", raw)
    elapsed = time.perf_counter() - started
    print(f"  load_row: {elapsed / len(data) * 1e6:.1f} us/row")


def main() -> None:
    """Run every benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--callers", type=int, default=100_000)
    parser.add_argument("--cdrs", type=int, default=1_000_000)
    args = parser.parse_args()
    config = FeatureConfig()
    print(f"CallerBlock.update, {args.cdrs:,} CDRs over {args.callers:,} callers:")
    block = bench_update(config, args.cdrs, args.callers, 1)
    bench_update(config, args.cdrs, args.callers, 10)
    bench_single(config, args.cdrs, args.callers)
    print(
        f"Layout: {block.callers.record_bytes} B per caller record, "
        f"{block.slots.record_bytes} B per held bucket"
    )
    print("Reading:")
    bench_reading(block)


if __name__ == "__main__":
    main()
