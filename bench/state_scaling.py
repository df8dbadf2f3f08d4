"""State size and memory of the block feature stage against active callers (issue 8).

Run: ``.venv/bin/python bench/state_scaling.py [--sizes 10000,100000,1000000] [--json out.json]``.

For each size N, a fresh Python process (so its RSS is its own) builds state
for N active callers through :meth:`BlockFeatureStage.apply` with the
worker's table (:class:`streams.state.write_behind.WriteBehindTable` over a dict of
bytes keyed by UTF-8 numbers, what the worker's Faust in-memory table holds;
checkpointed after every message, the records dropped): one copy of each
caller, in the block or, with ``--hot-minutes``, as bytes in the table once
idle that long (``CALLGUARD_CALLER_HOT_S``). It then reports:

- changelog bytes per caller: mean, p99 and max of the callers' rows as
  bytes (the latest changelog value of each), and the mean key size;
- how many callers are in the block and how many only in the table;
- block bytes per caller: the numpy columns' ``nbytes`` (allocated, spare
  capacity included) and :meth:`CallerBlock.bytes_per_caller` (records in use);
- process RSS per caller: peak (``VmHWM``) and current (``VmRSS``) after the
  build, minus the RSS measured before any state existed (once the traffic
  generator holds its list of the N numbers and the compiled kernels are
  loaded, as a worker loads them before it joins); and current again
  after glibc's ``malloc_trim`` (how much of it is free heap not yet returned);
- CDR/s through ``apply`` on a fixed workload (same CDRs at every size,
  callers drawn uniformly from the N: with eviction, mostly callers loaded
  back from the table's bytes), after a warm-up;
- the time to load the N callers from the table into an empty stage
  (:meth:`BlockFeatureStage.preload`, what a worker does after a takeover).

The workload: every caller is in each of seven rounds with probability
``ROUND_SHARE``: four rounds 6 h apart (one per bucket of the long window)
and three in the last 15 minutes (one per short bucket); a caller no round
has picked yet is in the last one, so all N have state. A tenth of the
callers place ``BUSY_CALLS`` calls per round. A fifth of the callees are
active callers, the rest are drawn from ``CALLEE_ONLY_PER_CALLER`` numbers
per caller spread over ``SEGMENTS`` number segments (numbers that are called
but do not call; every called number keeps an inbound filter, so their state
is counted in the figures per active caller). ``--final-share`` sets the share of the three
rounds of the last quarter hour (default ``ROUND_SHARE``: nearly every
caller called in the last 15 minutes, the worst case for memory; 0.05 leaves
about one in seven callers recent, closer to a day's traffic). After each
round, :meth:`BlockFeatureStage.expire_idle` runs as the worker's
housekeeping does (``--no-expire`` skips it), evicting with
``--hot-minutes``.
Messages are built from numpy columns directly
(:class:`contracts.by_caller.RoutedBatch`, with the inbound notes
:func:`streams.pipeline.ingest.ingest_cdrs` would route to a single partition), so the
build of a million callers takes a minute or two, not an hour of JSON.

Prints a markdown table and writes JSON (``bench/results/state_scaling.json``
by default). Asserts nothing about the figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import subprocess  # noqa: S404 - runs this very script, one size per process
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

import features
from contracts.by_caller import CdrColumns, InboundColumns, RoutedBatch
from features.block.engine import warm_up_kernels
from features.config import FeatureConfig
from features.emission import EmissionPolicy
from streams.stages.block_stage import BlockFeatureStage
from streams.state.write_behind import WriteBehindTable
from streams.tuning.heap_trim import trim_heap

T0 = 1_709_251_200_000  # 2024-03-01 00:00 UTC, aligned to the long window's 6 h hop
MESSAGE_CDRS = 5_000
CALLER_BASE = 8_613_900_000_000  # callers are +86139 followed by 8 digits
ROUND_SHARE = 0.75  # chance that a caller calls in a given round
BUSY_SHARE = 0.1
BUSY_CALLS = 4
CALLEE_IS_CALLER = 0.2
ANSWERED_SHARE = 0.4
SEGMENTS = 2_000
# Numbers called that placed no call, per caller: 1.2 on a simulated day of the
# held-out family (32,874 such numbers against 27,763 callers).
CALLEE_ONLY_PER_CALLER = 1.2
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
# (start after T0, span) of each round, in ms: one per long bucket, then one
# per short bucket of the last quarter hour.
ROUNDS = (
    (1 * HOUR_MS, 30 * MINUTE_MS),
    (7 * HOUR_MS, 30 * MINUTE_MS),
    (13 * HOUR_MS, 30 * MINUTE_MS),
    (19 * HOUR_MS, 30 * MINUTE_MS),
    (23 * HOUR_MS + 45 * MINUTE_MS, 3 * MINUTE_MS),
    (23 * HOUR_MS + 51 * MINUTE_MS, 3 * MINUTE_MS),
    (23 * HOUR_MS + 56 * MINUTE_MS, 3 * MINUTE_MS),
)
FINAL_ROUNDS = 3  # the rounds of the last quarter hour
TIMED_START_MS = T0 + 24 * HOUR_MS + MINUTE_MS
WARMUP_MESSAGES = 5
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
TRIMS: list[float] = []  # seconds of each heap trim after housekeeping (as the worker does)
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "state_scaling.json"


def one_partition(keys: list[str]) -> list[int]:
    """Every caller in partition 0 (the bench is one partition's state)."""
    return [0] * len(keys)


# -- messages -------------------------------------------------------------------


class MessageMaker:
    """Builds ``cdr.by_caller`` messages for callers given by index."""

    def __init__(self, callers: int, seed: int, final_share: float = ROUND_SHARE) -> None:
        self.rng = np.random.default_rng(seed)
        self.final_share = final_share
        self.callers = callers
        self.names = list(map("+{}".format, (CALLER_BASE + np.arange(callers)).tolist()))
        self.segments = self.rng.integers(861_300_000, 861_990_000, SEGMENTS)
        pool = max(1, int(callers * CALLEE_ONLY_PER_CALLER))
        self.callee_only = self.segments[self.rng.integers(0, SEGMENTS, pool)] * 10_000 + (
            self.rng.integers(0, 10_000, pool)
        )
        self.busy = self.rng.random(callers) < BUSY_SHARE
        self.seen = np.zeros(callers, bool)
        self.next_cdr = 0

    def round_callers(self, index: int) -> np.ndarray:
        """Caller indices of round ``index``, shuffled (busy callers several times).

        The last round also takes every caller no round has taken yet.
        """
        rng, last = self.rng, index == len(ROUNDS) - 1
        share = self.final_share if index >= len(ROUNDS) - FINAL_ROUNDS else ROUND_SHARE
        chosen = rng.random(self.callers) < share
        if last:
            chosen |= ~self.seen
        self.seen |= chosen
        present = np.flatnonzero(chosen)
        busy = present[self.busy[present]]
        ids = np.concatenate([present, np.repeat(busy, BUSY_CALLS - 1)])
        rng.shuffle(ids)
        return ids

    def messages(
        self, caller_ids: np.ndarray, start_ms: int, span_ms: int
    ) -> Iterator[RoutedBatch]:
        """Messages of up to MESSAGE_CDRS calls, event time advancing over the span."""
        count = max(1, -(-len(caller_ids) // MESSAGE_CDRS))
        for index in range(count):
            chunk = caller_ids[index * MESSAGE_CDRS : (index + 1) * MESSAGE_CDRS]
            low = start_ms + span_ms * index // count
            yield self.message(chunk, low, max(1, span_ms // count))

    def message(self, caller_ids: np.ndarray, low_ms: int, span_ms: int) -> RoutedBatch:
        """One message: the calls of ``caller_ids`` within ``span_ms`` of ``low_ms``."""
        rng, size = self.rng, len(caller_ids)
        # Arrival roughly in event time, with up to 30 s of disorder.
        start_ms = np.sort(low_ms + rng.integers(0, span_ms, size)) + rng.integers(0, 30_000, size)
        to_caller = rng.random(size) < CALLEE_IS_CALLER
        callee_keys = np.where(
            to_caller,
            CALLER_BASE + rng.integers(0, self.callers, size),
            self.callee_only[rng.integers(0, len(self.callee_only), size)],
        )
        answered = rng.random(size) < ANSWERED_SHARE
        callers = [self.names[i] for i in caller_ids.tolist()]
        callees = list(map("+{}".format, callee_keys.tolist()))
        times = start_ms.tolist()
        calls = CdrColumns(
            cdr_id=list(map("cdr{}".format, range(self.next_cdr, self.next_cdr + size))),
            caller=callers,
            callee=callees,
            start_ms=times,
            duration_s=np.where(answered, np.round(rng.exponential(40, size), 1), 0.0).tolist(),
            disposition=np.where(answered, "ANSWERED", "NO_ANSWER").tolist(),
            ring_s=np.round(rng.uniform(0, 20, size), 1).tolist(),
        )
        self.next_cdr += size
        # One partition: every call's callee note travels in the same message.
        inbound = InboundColumns(number=callees, from_number=callers, time_ms=times)
        return RoutedBatch(calls=calls, inbound=inbound)


# -- measuring ------------------------------------------------------------------


def memory_kb() -> tuple[int, int]:
    """(current RSS, peak RSS) of this process in kB."""
    status = Path("/proc/self/status")
    if status.exists():
        fields = dict(line.split(":", 1) for line in status.read_text().splitlines())
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    return peak, peak


def block_figures(stage: BlockFeatureStage, callers: int) -> dict[str, float]:
    """Bytes of the block's numpy columns per caller, allocated and in use."""
    block = stage.block
    pools = (block.callers, block.slots)
    allocated = sum(column.nbytes for pool in pools for column in pool.columns.values())
    return {
        "block_allocated_bytes_per_caller": allocated / callers,
        "block_used_bytes_per_caller": block.bytes_per_caller(),
        "caller_record_bytes": block.callers.record_bytes,
        "held_bucket_bytes": block.slots.record_bytes,
        "held_buckets_per_caller": block.slots.used / callers,
    }


def held_rows(stage: BlockFeatureStage, table: WriteBehindTable) -> dict[str, bytes]:
    """Every caller's latest bytes: the block's rows and the table's (after the figures)."""
    rows = dict(table)
    numbers = stage.block.numbers()
    held = stage.block.rows_of(numbers, create=False)
    rows.update(zip(numbers, stage.block.rows_bytes(held), strict=True))
    return rows


def table_figures(data: dict[bytes, bytes], callers: int) -> dict[str, float]:
    """The table's own Python memory per active caller (the callers held only as bytes)."""
    python_bytes = sys.getsizeof(data) + sum(
        sys.getsizeof(key) + sys.getsizeof(value) for key, value in data.items()
    )
    return {"table_ram_bytes_per_caller": python_bytes / callers}


def changelog_figures(rows: dict[str, bytes]) -> dict[str, float]:
    """Sizes of the changelog values and keys."""
    values = np.fromiter(map(len, rows.values()), np.int64, len(rows))
    keys = np.fromiter((len(key.encode()) for key in rows), np.int64, len(rows))
    return {
        "changelog_value_bytes_mean": float(values.mean()),
        "changelog_value_bytes_p99": float(np.percentile(values, 99)),
        "changelog_value_bytes_max": float(values.max()),
        "changelog_key_bytes_mean": float(keys.mean()),
    }


def housekeeping(
    stage: BlockFeatureStage, table: WriteBehindTable, latest_ms: int, hot_ms: int | None
) -> None:
    """What the worker's features agent does now and then (one partition)."""
    now_ms = latest_ms - stage.config.grace_s * 1000
    idle = stage.expire_idle(
        now_ms, table, 0, 1, evict_before_ms=None if hot_ms is None else latest_ms - hot_ms
    )
    table.take()
    if idle.removed or idle.evicted:
        TRIMS.append(trim_heap() or 0.0)


def build(
    stage: BlockFeatureStage,
    maker: MessageMaker,
    table: WriteBehindTable,
    expire: bool,
    hot_ms: int | None,
) -> dict[str, float]:
    """Apply every round (a checkpoint after each message, expiry after each round)."""
    started, started_cpu = time.perf_counter(), time.process_time()
    offset = cdrs = 0
    for index, (start_ms, span_ms) in enumerate(ROUNDS):
        caller_ids = maker.round_callers(index)
        for batch in maker.messages(caller_ids, T0 + start_ms, span_ms):
            stage.apply(batch, offset, table)
            table.take()
            offset += 1
            cdrs += len(batch.calls)
        if expire:
            housekeeping(stage, table, T0 + start_ms + span_ms, hot_ms)
    return {
        "build_cdrs": cdrs,
        "build_messages": offset,
        "build_s": time.perf_counter() - started,
        "build_cpu_s": time.process_time() - started_cpu,
    }


def throughput(
    stage: BlockFeatureStage, maker: MessageMaker, table: WriteBehindTable, timed_cdrs: int
) -> dict[str, float]:
    """CDR/s through ``apply`` on a fixed workload (callers uniform over all), after warm-up.

    A checkpoint (``take``) after every message, timed with it.
    """
    total = timed_cdrs + WARMUP_MESSAGES * MESSAGE_CDRS
    caller_ids = maker.rng.integers(0, maker.callers, total)
    batches = list(maker.messages(caller_ids, TIMED_START_MS, 10 * MINUTE_MS))
    offset = 1 << 40  # past every build message
    for batch in batches[:WARMUP_MESSAGES]:
        stage.apply(batch, offset, table)
        table.take()
        offset += 1
    timed = batches[WARMUP_MESSAGES:]
    loaded = 0
    started, started_cpu = time.perf_counter(), time.process_time()
    for batch in timed:
        loaded += stage.apply(batch, offset, table)[0].loaded
        table.take()
        offset += 1
    elapsed, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    calls = sum(len(batch.calls) for batch in timed)
    return {
        "timed_cdrs": calls,
        "timed_loads_per_cdr": loaded / calls,
        "apply_cdr_per_s": calls / elapsed,
        "apply_cdr_per_cpu_s": calls / cpu,
    }


def reload(
    config: FeatureConfig, policy: EmissionPolicy, rows: dict[str, bytes]
) -> dict[str, float]:
    """Time to load every caller's bytes into an empty stage (a worker taking over)."""
    fresh = BlockFeatureStage(config, policy)
    started, started_cpu = time.perf_counter(), time.process_time()
    loaded = fresh.preload(rows, iter(rows))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    if loaded != len(rows) or len(fresh.block) != len(rows):
        raise RuntimeError(f"loaded {loaded} of {len(rows)} callers")
    return {"load_s": elapsed, "load_cpu_s": cpu, "load_callers_per_s": loaded / elapsed}


def progress(callers: int, message: str) -> None:
    """One line of progress on stderr."""
    print(f"  [{callers:,}] {message}", file=sys.stderr, flush=True)


def trimmed_rss_kb() -> int | None:
    """RSS after handing free heap back to the system (glibc only; else None)."""
    return None if trim_heap() is None else memory_kb()[0]


def code_source() -> dict[str, Any]:
    """Where the measured code was imported from, its commit and its uncommitted files."""
    root = Path(features.__file__).resolve().parent.parent

    def git(*args: str) -> str:
        command = ["git", "-C", str(root), *args]  # noqa: S607 - git from PATH
        done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        return done.stdout.strip() if done.returncode == 0 else ""

    changed = git("status", "--porcelain", "--untracked-files=no", "features", "streams")
    return {"root": str(root), "commit": git("rev-parse", "HEAD"), "uncommitted": changed.split()}


def measure(
    callers: int,
    timed_cdrs: int,
    seed: int,
    expire: bool,
    final_share: float,
    hot_minutes: float | None,
) -> dict[str, Any]:
    """Every figure for one size (run it in a process of its own)."""
    code = code_source()  # the shared work tree may change while a sweep runs
    config = FeatureConfig()
    policy = EmissionPolicy()  # its defaults are the worker's (streams.settings)
    hot_ms = None if hot_minutes is None else int(hot_minutes * MINUTE_MS)
    maker = MessageMaker(callers, seed, final_share)  # the traffic's numbers: not state
    warm_up_kernels()  # numba and the kernels belong to the process, not to state
    gc.collect()
    baseline_kb, _ = memory_kb()
    data: dict[bytes, bytes] = {}
    stage, table = BlockFeatureStage(config, policy), WriteBehindTable(data, one_partition)
    figures: dict[str, Any] = {"active_callers": callers, "code": code}
    figures |= build(stage, maker, table, expire, hot_ms)
    progress(callers, f"built in {figures['build_s']:.1f} s ({figures['build_cdrs']:,.0f} CDRs)")
    in_block = len(stage.block)
    if in_block + len(data) < callers or any(n.encode() in data for n in stage.block.numbers()):
        raise RuntimeError(f"{len(data)} numbers in the table, {in_block} in the block")
    gc.collect()
    now_kb, peak_kb = memory_kb()
    figures |= {
        "callers_in_block": in_block,
        "callers_as_bytes": len(data),
        "numbers_held": in_block + len(data),
        "rss_baseline_mb": baseline_kb / 1024,
        "rss_peak_mb": peak_kb / 1024,
        "rss_peak_bytes_per_caller": (peak_kb - baseline_kb) * 1024 / callers,
        "rss_now_bytes_per_caller": (now_kb - baseline_kb) * 1024 / callers,
    }
    trimmed_kb = trimmed_rss_kb()
    if trimmed_kb is not None:
        figures["rss_trimmed_bytes_per_caller"] = (trimmed_kb - baseline_kb) * 1024 / callers
    figures["heap_trims"] = len(TRIMS)
    figures["heap_trim_ms_max"] = 1000 * max(TRIMS, default=0.0)
    figures |= block_figures(stage, callers) | table_figures(data, callers)
    rows = held_rows(stage, table)  # for the sizes and the reload: after the memory figures
    figures |= changelog_figures(rows)
    figures |= throughput(stage, maker, table, timed_cdrs)
    progress(callers, f"apply: {figures['apply_cdr_per_s']:,.0f} CDR/s")
    del stage, table, data  # a worker taking over holds the changelog, not the old block
    gc.collect()
    figures |= reload(config, policy, rows)
    progress(callers, f"loaded into an empty stage in {figures['load_s']:.1f} s")
    return figures


# -- driver ---------------------------------------------------------------------


def run_size(args: argparse.Namespace, callers: int) -> dict[str, Any]:
    """:func:`measure` in a fresh interpreter (its progress goes to stderr)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(callers)]
    command += ["--timed-cdrs", str(args.timed_cdrs), "--seed", str(args.seed)]
    command += [] if args.expire else ["--no-expire"]
    command += ["--final-share", str(args.final_share)]
    command += [] if args.hot_minutes is None else ["--hot-minutes", str(args.hot_minutes)]
    print(f"measuring {callers:,} active callers ...", file=sys.stderr, flush=True)
    done = subprocess.run(  # noqa: S603
        command, stdout=subprocess.PIPE, stderr=None, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"measuring {callers:,} callers failed (exit {done.returncode})")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def markdown(rows: list[dict[str, Any]]) -> str:
    """The figures as a markdown table (wall-clock rates, CPU-time rates in brackets)."""
    lines = [
        "| active callers (in block) | changelog B/caller: value mean / p99, key | block B/caller: "
        "allocated / in use | RSS B/caller: peak / after build / after trim | apply CDR/s "
        "(per CPU s) | load all callers: s (CPU s) | build: s (CDRs) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        trimmed = row.get("rss_trimmed_bytes_per_caller")
        lines.append(
            f"| {row['active_callers']:,} ({row['callers_in_block']:,}) "
            f"| {row['changelog_value_bytes_mean']:,.0f} / {row['changelog_value_bytes_p99']:,.0f}"
            f", {row['changelog_key_bytes_mean']:.0f} "
            f"| {row['block_allocated_bytes_per_caller']:,.0f} / "
            f"{row['block_used_bytes_per_caller']:,.0f} "
            f"| {row['rss_peak_bytes_per_caller']:,.0f} / {row['rss_now_bytes_per_caller']:,.0f}"
            f" / {'-' if trimmed is None else f'{trimmed:,.0f}'} "
            f"| {row['apply_cdr_per_s']:,.0f} ({row['apply_cdr_per_cpu_s']:,.0f}) "
            f"| {row['load_s']:,.1f} ({row['load_cpu_s']:,.1f}) "
            f"| {row['build_s']:,.0f} ({row['build_cdrs']:,}) |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default=",".join(map(str, DEFAULT_SIZES)),
        help="comma-separated numbers of active callers",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    parser.add_argument(
        "--timed-cdrs", type=int, default=200_000, help="CDRs of the timed apply workload"
    )
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument(
        "--no-expire",
        dest="expire",
        action="store_false",
        help="never run BlockFeatureStage.expire_idle",
    )
    parser.add_argument(
        "--final-share",
        type=float,
        default=ROUND_SHARE,
        help="share of callers in each round of the last quarter hour",
    )
    parser.add_argument(
        "--hot-minutes",
        type=float,
        default=None,
        help="evict callers idle this long (event time) to the table's bytes (default: never)",
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Measure every size, print the table, write the JSON; returns what it wrote."""
    args = parse_args(argv)
    if args.child is not None:
        figures = measure(
            args.child, args.timed_cdrs, args.seed, args.expire, args.final_share, args.hot_minutes
        )
        print(json.dumps(figures))
        return {}
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    rows = [run_size(args, size) for size in sizes]
    result: dict[str, object] = {
        "workload": {
            "rounds": len(ROUNDS),
            "round_share": ROUND_SHARE,
            "busy_share": BUSY_SHARE,
            "busy_calls_per_round": BUSY_CALLS,
            "callee_is_caller": CALLEE_IS_CALLER,
            "callee_only_per_caller": CALLEE_ONLY_PER_CALLER,
            "message_cdrs": MESSAGE_CDRS,
            "final_rounds_share": args.final_share,
            "expire_after_each_round": args.expire,
            "hot_minutes": args.hot_minutes,
            "timed_cdrs": args.timed_cdrs,
            "warmup_messages": WARMUP_MESSAGES,
            "seed": args.seed,
        },
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "numpy": np.__version__,
        },
        "sizes": rows,
    }
    print(markdown(rows))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
