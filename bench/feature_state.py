"""Benchmark of the feature core: CallerState throughput, state size, offline speed.

Run: ``.venv/bin/python bench/feature_state.py [--callers 100000] [--cdrs 1000000]``.
Targets (issue 4): >= 150,000 CDR/s per core through the state update for
batched input, <= 1 KB of state per active caller, 1 million active callers
per worker. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

import numpy as np
import polars as pl

from features.batch import CallBatch, split_by_caller
from features.config import FeatureConfig
from features.offline import compute_features
from features.reference.state import CallerState

T0 = 1_709_251_200_000


def synthetic(n: int, callers: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` calls over ``callers`` callers, over an hour, sorted by start time."""
    rng = np.random.default_rng(seed)
    start = np.sort(T0 + rng.integers(0, 3_600_000, n))
    answered = rng.random(n) < 0.5
    return {
        "caller_id": rng.integers(0, callers, n),
        "start_ms": start,
        "callee": 8613000000000 + rng.integers(0, 10**9, n),
        "duration_s": np.where(answered, rng.exponential(40, n), 0.0),
        "answered": answered,
        "ring_s": rng.uniform(0, 20, n),
    }


def batch_from(data: dict[str, np.ndarray], rows: np.ndarray, config: FeatureConfig) -> CallBatch:
    """The rows of ``data`` as a CallBatch."""
    return CallBatch.from_arrays(
        config,
        start_ms=data["start_ms"][rows],
        callee=data["callee"][rows],
        duration_s=data["duration_s"][rows],
        answered=data["answered"][rows],
        ring_s=data["ring_s"][rows],
    )


def bench_update(config: FeatureConfig, n: int, callers: int, per_caller: int) -> None:
    """Batches of 50,000 CDRs covering 60 s each, ``per_caller`` calls per caller in a batch.

    That is how the agent delivers them: ``stream.take(...)`` of one
    partition, then one :func:`split_by_caller`.
    """
    rng = np.random.default_rng(per_caller)
    names = np.array([f"+86139{i:08d}" for i in range(callers)])
    batch_size = 50_000
    in_batch = batch_size // per_caller
    states: dict[str, CallerState] = {}
    prepare_s = update_s = 0.0
    for index in range(n // batch_size):
        chosen = rng.choice(callers, min(in_batch, callers), replace=False)
        caller_ids = np.resize(np.repeat(chosen, per_caller), batch_size)
        answered = rng.random(batch_size) < 0.5
        columns = {
            "start_ms": T0 + index * 60_000 + rng.integers(0, 60_000, batch_size),
            "callee": 8613000000000 + rng.integers(0, 10**9, batch_size),
            "duration_s": np.where(answered, rng.exponential(40, batch_size), 0.0),
            "answered": answered,
            "ring_s": rng.uniform(0, 20, batch_size),
        }
        started = time.perf_counter()
        batch = batch_from(columns, np.arange(batch_size), config)
        groups = split_by_caller(names[caller_ids], batch)
        prepared = time.perf_counter()
        for caller, calls in groups:
            state = states.get(caller)
            if state is None:
                state = states[caller] = CallerState(config)
            state.update(calls)
        update_s += time.perf_counter() - prepared
        prepare_s += prepared - started
    done = (n // batch_size) * batch_size
    print(
        f"  {per_caller:>4} CDR/caller/batch: update {done / update_s:>9,.0f} CDR/s; "
        f"with batch build + split {done / (update_s + prepare_s):>9,.0f} CDR/s "
        f"({len(states):,} callers)"
    )


def bench_bytes(config: FeatureConfig, callers: int) -> None:
    """Serialised and in-memory size of active callers' state."""
    data = synthetic(callers * 10, callers, seed=1)
    names = np.array([f"+86139{i:08d}" for i in range(callers)])
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    states: dict[str, CallerState] = {}
    for first in range(0, len(data["start_ms"]), 200_000):
        rows = np.arange(first, min(len(data["start_ms"]), first + 200_000))
        for caller, calls in split_by_caller(
            names[data["caller_id"][rows]], batch_from(data, rows, config)
        ):
            states.setdefault(caller, CallerState(config)).update(calls)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    held = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    sizes = np.array([len(state.to_bytes()) for state in states.values()])
    print(
        f"  {len(states):,} callers, ~10 calls each over an hour: "
        f"to_bytes mean {sizes.mean():.0f} B, max {sizes.max()} B; "
        f"in memory {held / len(states):,.0f} B/caller "
        f"(-> {held / len(states) * 1e6 / 2**30:.1f} GiB for 1M callers)"
    )
    heavy = CallerState(config)
    rng = np.random.default_rng(2)
    for hour in range(30):  # a robot: 2 calls a second for 30 hours, everything full
        start = np.sort(T0 + hour * 3_600_000 + rng.integers(0, 3_600_000, 7200))
        heavy.update(
            CallBatch.from_arrays(
                config,
                start_ms=start,
                callee=8613000000000 + rng.integers(0, 10**9, 7200),
                duration_s=np.zeros(7200),
                answered=np.zeros(7200, bool),
                ring_s=rng.uniform(0, 5, 7200),
            )
        )
    heavy.note_inbound(8613000000000 + rng.integers(0, 10**9, 200), np.full(200, int(start[-1])))
    print(f"  worst case (every bucket, sketch, buffer and filter full): {len(heavy.to_bytes())} B")
    started = time.perf_counter()
    for state in list(states.values())[:20_000]:
        CallerState.from_bytes(state.to_bytes(), config)
    per_call = (time.perf_counter() - started) / min(20_000, len(states)) * 1e6
    print(f"  to_bytes + from_bytes: {per_call:.0f} us per caller")
    started = time.perf_counter()
    for state in list(states.values())[:20_000]:
        state.features()
    per_call = (time.perf_counter() - started) / min(20_000, len(states)) * 1e6
    print(f"  features(): {per_call:.0f} us per caller")


def bench_offline(config: FeatureConfig, n: int, callers: int) -> None:
    """compute_features on ``n`` rows, evaluated at every active short bucket's end."""
    data = synthetic(n, callers, seed=3)
    frame = pl.DataFrame(
        {
            "caller": [f"+86139{i:08d}" for i in data["caller_id"]],
            "callee": ["+" + str(c) for c in data["callee"]],
            "start_ms": data["start_ms"],
            "duration_s": data["duration_s"],
            "disposition": np.where(data["answered"], "ANSWERED", "NO_ANSWER"),
            "ring_s": data["ring_s"],
        }
    )
    started = time.perf_counter()
    result = compute_features(frame, config)
    elapsed = time.perf_counter() - started
    print(
        f"  compute_features, bucket ends: {n:,} rows -> {result.height:,} feature rows "
        f"in {elapsed:.1f} s ({n / elapsed:,.0f} CDR rows/s)"
    )


def main() -> None:
    """Run every benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--callers", type=int, default=100_000)
    parser.add_argument("--cdrs", type=int, default=1_000_000)
    args = parser.parse_args()
    config = FeatureConfig()
    print(f"CallerState.update, {args.cdrs:,} CDRs over {args.callers:,} callers:")
    for per_caller in (1, 10, 100):
        bench_update(config, args.cdrs, args.callers, per_caller)
    print("State size:")
    bench_bytes(config, args.callers)
    print("Offline:")
    bench_offline(config, args.cdrs, args.callers)


if __name__ == "__main__":
    main()
