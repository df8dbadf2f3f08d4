"""Where a worker's CPU goes: py-spy samples of ``callguard worker`` under full traffic.

Run (from the repository root)::

    .venv/bin/python -m bench.profile_worker [--cdrs 300000] [--encoding batch] [--rate N]

Starts the embedded broker and one worker with a trained model, lets it
join, then sends the simulator's traffic at full speed (or paced at
``--rate`` CDR/s, as the pipeline benchmark's latency phase sends it) while
``py-spy record`` samples the worker (100 Hz, without pausing it). Each sample is
charged to the part of the pipeline that owns its innermost Python frame:

- ``broker client``: aiokafka and kafka-python;
- ``faust``: faust and mode (streams, tables, changelog, commits, web);
- ``decoding``: validation, normalisation, routing, the internal wire format
  (``contracts/``, ``streams/pipeline/``);
- ``features``: the feature stages, ``features/`` and the callers' state
  (``streams/state/``: records, write-behind, checkpoints);
- ``model``: scoring, decisions, scikit-learn;
- ``sinks``: the store writer, chdb, clickhouse-driver;
- ``other``: the event loop and the rest.

Native frames (orjson, numpy, polars) are charged to the Python frame that
called them. Prints the split as a markdown table, writes it with the raw
stacks next to ``--out``. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import ROOT
from bench.pipeline import (
    PARTITIONS,
    _send_all,
    build_traffic,
    create_topics,
    ensure_model,
    say,
    start_workers,
)
from streams.broker import LocalBroker

PARTS = [
    ("broker client", re.compile(r"(^|/)(aiokafka|kafka)/")),
    ("faust", re.compile(r"(^|/)(faust|mode)/")),
    (
        "decoding",
        re.compile(
            r"((^|/)contracts/(cdr|cdr_json|cdr_arrow|cdr_vector|numbers|complaints|by_caller)\.py"
            r"|streams/pipeline/|(^|/)phonenumbers/|(^|/)polars/)"
        ),
    ),
    (
        "model",
        re.compile(r"((^|/)(sklearn|models)/|streams/stages/(decision_stage|model_service)\.py)"),
    ),
    ("sinks", re.compile(r"((^|/)(sinks|chdb|clickhouse_driver)/|contracts/flag\.py)")),
    (
        "features",
        re.compile(
            r"((^|/)(features|numpy)/"
            r"|streams/stages/(block_stage|reference/feature_stage|event_clock|stage_stats)\.py"
            r"|streams/state/)"
        ),
    ),
]
_FRAME = re.compile(r"\((?P<file>[^():]+):\d+\)$")


def charge(stack: str) -> str:
    """The part owning the innermost frame of a collapsed stack that belongs to one."""
    for frame in reversed(stack.split(";")):
        match = _FRAME.search(frame)
        path = match.group("file") if match else frame
        for name, pattern in PARTS:
            if pattern.search(path):
                return name
    return "other"


def split(raw: str) -> dict[str, float]:
    """Share of samples per part, from py-spy's ``raw`` (collapsed stacks) output."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[charge(stack)] += int(count)
    total = sum(counts.values()) or 1
    order = [name for name, _ in PARTS] + ["other"]
    return {name: round(counts[name] / total, 3) for name in order}


async def profile(options: argparse.Namespace) -> dict[str, object]:
    """Traffic through one worker while py-spy samples it; the split."""
    workdir = Path(tempfile.mkdtemp(prefix="callguard-profile-"))
    model_dir = ensure_model(options.model_dir, workdir)
    traffic = build_traffic(options.cdrs, 0, options.batch_size, [options.encoding])
    messages = traffic.throughput[options.encoding]
    with LocalBroker(log_path=workdir / "broker.log") as broker:
        raw, complaints = "profile-raw", "profile-complaints"
        create_topics(broker.bootstrap, [raw, complaints], PARTITIONS)
        run = start_workers(broker.bootstrap, workdir, raw, complaints, model_dir, 1)
        worker = run.workers[0]
        try:
            await asyncio.sleep(10)  # join and recover before sampling
            stacks = workdir / "stacks.txt"
            spy = subprocess.Popen(  # noqa: S603
                [str(Path(sys.executable).parent / "py-spy"), "record", "-p",
                 str(worker.popen.pid), "-r", "100", "-d", str(options.seconds), "--nonblocking",
                 "-f", "raw", "-o", str(stacks)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            started = time.monotonic()
            pace = f" at {options.rate:,.0f} CDR/s" if options.rate else ""
            say(f"sending {traffic.cdrs:,} CDRs ({options.encoding}){pace} while py-spy samples")
            await _send_all(broker.bootstrap, messages, raw, complaints, rate=options.rate,
                            seconds=options.seconds if options.rate else None)
            spy.wait(options.seconds + 60)
            elapsed = time.monotonic() - started
        finally:
            worker.stop()
        text = stacks.read_text()
    result = {
        "encoding": options.encoding,
        "cdrs": traffic.cdrs,
        "rate_cdr_per_s": options.rate,
        "seconds_sampled": options.seconds,
        "seconds_elapsed": round(elapsed, 1),
        "split": split(text),
    }
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(result, indent=2) + "\n")
    options.out.with_suffix(".stacks.txt").write_text(text)
    return result


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Parse options, profile, print the split."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cdrs", type=int, default=300_000)
    parser.add_argument("--encoding", default="batch", choices=["json1", "batch", "arrow"])
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=20, help="how long py-spy samples")
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument(
        "--rate", type=float, help="pace the traffic at this many CDR/s (default: full speed)"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "profile.json"
    )
    options = parser.parse_args(argv)
    result = asyncio.run(profile(options))
    print("| part | share of worker CPU samples |\n|---|---|")
    for name, share in result["split"].items():  # type: ignore[attr-defined]
        print(f"| {name} | {share:.0%} |")
    return result


if __name__ == "__main__":
    main()
