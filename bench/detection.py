"""Detection quality on a scenario family held out of training, through the real worker.

Run (from the repository root)::

    .venv/bin/python -m bench.detection [--train default] [--heldout heldout] [--skip-worker]
        [--registry DIR] [--inputs keyed,unkeyed] [--also county]

1. **Training**: ``callguard train --simulate TRAIN --evaluate-on HELDOUT``
   into a fresh registry: the model a new user gets, with its own report
   (the in-distribution hold-out beside the held-out family, offline).
2. **The worker**: one ``callguard worker`` on the embedded broker (4
   partitions, the chdb store) serving that model; one simulated day of the
   held-out family produced to ``cdr.raw`` as fast as the client goes, once
   keyed by caller with one CDR per message, once unkeyed as JSON arrays of
   500 (the client's default partitioner). Every decision on the flag topic
   is read back and judged number by number against the day's ground truth.

3. **Shifted worlds** (offline, the serving model): the held-out family as
   it is, with its subscribers' missed calls returned at 0.1, with people
   answering 0.55 of the calls between them instead of 0.7, with every
   feature of calls received set to 0 (nobody is ever called), to see how
   far the model leans on how the simulator has people call each other,
   with no complaints (a feed of CDRs alone) and with no ring times (a feed
   whose CDRs leave out ``ring_s``); then each further held-out
   family of ``--also`` (default ``county``: other shapes of every category
   again, neither trained on nor looked at when the model was built), as it
   is and without complaints.

Figures per run: recall by category (numbers flagged ``watch`` or ``block``
while their campaign ran, of the category's numbers that called that day),
``block`` precision by number, legitimate bulk callers and ordinary
subscribers flagged, minutes of event time from a number's first call to its
first flag (median, p90), and calls dropped as late. Results go to
``bench/results/detection.json`` and a Markdown table (``detection.md``).
Nothing is asserted: the figures are for the README and the closing notes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from aiokafka import AIOKafkaConsumer

from bench.harness import ROOT
from bench.pipeline import _send_all, _status, create_topics, machine, say, start_workers
from contracts.flag import Action, Flag, decode_flag
from models.called_evidence import CALLED_FEATURES, called_of
from models.caller_metrics import caller_metrics, caller_roster, evaluate_family
from models.complaint_paths import COMPLAINT_FEATURES
from models.dataset import NORMAL, LabelledCalls, build_training_data, read_parquet_dir
from models.population import population_of
from models.registry import ModelRegistry
from simulator.kafka import KafkaMessage, kafka_messages
from simulator.parquet import write_parquet
from simulator.run import simulate
from simulator.scenario import builtin_scenario, with_overrides
from streams.broker import LocalBroker
from streams.stages.caller_features import decode_features

RESULTS = ROOT / "bench" / "results"
# The features read from the optional ring_s: a feed without it has them at 0.
RING_FEATURES = ("short_one_ring_ratio", "long_one_ring_ratio")


def train_model(train: str, heldout: str, registry: Path) -> str:
    """Train and promote the model a new user would; its report."""
    say(f"training on {train!r}, measured on {heldout!r} (callguard train)")
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "streams", "train", "--simulate", train, "--evaluate-on",
         heldout, "--registry", str(registry), "--promote", "-q"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    return done.stdout


def heldout_day(name: str, workdir: Path) -> tuple[LabelledCalls, list[Any], Any]:
    """The family's day: its labelled calls, its chunks (the same calls), and the scenario."""
    scenario = builtin_scenario(name)
    write_parquet(scenario, workdir / name, progress=False)
    return read_parquet_dir(workdir / name), list(simulate(scenario)), scenario


def messages(chunks: list[Any], scenario: Any, *, keyed: bool) -> list[KafkaMessage]:
    """The day's messages: one keyed CDR each, or unkeyed arrays of 500."""
    out: list[KafkaMessage] = []
    for chunk in chunks:
        batch = kafka_messages(
            chunk, scenario, topic="cdr", complaints_topic="complaints",
            batch_size=1 if keyed else 500,
        )
        if keyed:
            # CDR messages keep the chunk's row order (release times follow start
            # times): the key is the row's caller in E.164, as an exporter keys it.
            callers = iter(chunk.cdrs["caller"].to_list())
            batch = [
                KafkaMessage(m.release_ms, m.topic, next(callers).encode(), m.value, 1, m.headers)
                if m.cdrs else m
                for m in batch
            ]
        out.extend(batch)
    return out


async def read_flags(bootstrap: str, topic: str, count: int) -> list[Flag]:
    """Every decision on the flag topic, from the start, until ``count`` are read."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    flags: list[Flag] = []
    deadline = time.monotonic() + 120
    try:
        while len(flags) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                flags.extend(decode_flag(record.value) for record in records)
    finally:
        await consumer.stop()
    return flags


async def read_rows(bootstrap: str, topic: str, count: int) -> dict[tuple[str, int], bytes]:
    """The feature rows on ``caller.features`` by (number, window end), until ``count`` are read."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    rows: dict[tuple[str, int], bytes] = {}
    deadline = time.monotonic() + 120
    try:
        while len(rows) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                for record in records:
                    part = decode_features(record.value)
                    for number, end, row in zip(
                        part["numbers"], part["window_end_ms"], part["rows"], strict=True
                    ):
                        rows[(number, int(end))] = np.asarray(row, np.float64).tobytes()
    finally:
        await consumer.stop()
    return rows


def same_rows(rows: dict[tuple[str, int], bytes], keyed: dict[tuple[str, int], bytes]) -> dict:
    """How a run's feature rows compare with the keyed run's, bit for bit."""
    both = rows.keys() & keyed.keys()
    return {
        "rows_compared": len(both),
        "rows_differing": sum(rows[key] != keyed[key] for key in both),
        "rows_only_here": len(rows.keys() - keyed.keys()),
        "rows_only_keyed": len(keyed.keys() - rows.keys()),
    }


def judge(flags: list[Flag], calls: LabelledCalls) -> dict[str, Any]:
    """Number-by-number figures of the decisions, as :func:`caller_metrics` gives offline.

    Each ``block`` or ``watch`` decision stands for a scored row at its
    window end: labelled with its number's category while the campaign ran
    (plus the training table's ten minutes of slack), ``normal`` otherwise.
    """
    truth = calls.ground_truth.select(
        pl.col("number").alias("caller"),
        pl.col("category").cast(pl.String),
        pl.col("active_from").dt.epoch("ms").alias("from_ms"),
        pl.col("active_to").dt.epoch("ms").alias("to_ms"),
    )
    raised = [f for f in flags if f.action in (Action.BLOCK, Action.WATCH)]
    rows = pl.DataFrame(
        {"caller": [f.number for f in raised], "end_ms": [f.window_end_ms for f in raised]},
        schema={"caller": pl.String, "end_ms": pl.Int64},
    ).join(truth, on="caller", how="left").select(
        "caller",
        "end_ms",
        label=pl.when(
            (pl.col("end_ms") > pl.col("from_ms")) & (pl.col("end_ms") <= pl.col("to_ms") + 600_000)
        ).then(pl.col("category")).otherwise(pl.lit(NORMAL)),
    )
    scores = np.array([1.0 if f.action is Action.BLOCK else 0.5 for f in raised])
    metrics = caller_metrics(
        rows, scores, {"block": 1.0, "watch": 0.5}, caller_roster(calls), "worker"
    )
    figures: dict[str, Any] = {"recall": {}, "callers": {}}
    for key, value in sorted(metrics.items()):
        part, _, name = key.removeprefix("worker.").partition(".")
        if part in ("recall", "callers") and name:
            figures[part][name] = round(value, 4) if part == "recall" else int(value)
    for kind in ("legit", "ordinary"):
        callers = int(metrics[f"worker.{kind}_callers"])
        figures[f"{kind}_callers"] = callers
        figures[f"{kind}_flagged"] = round(metrics[f"worker.{kind}_flagged_share"] * callers)
    figures["blocked_numbers"] = int(metrics["worker.blocked_numbers"])
    for name in ("block_precision", "minutes_to_first_flag_median", "minutes_to_first_flag_p90"):
        value = metrics[f"worker.{name}"]
        figures[name] = None if np.isnan(value) else round(value, 4 if "precision" in name else 1)
    return figures


async def worker_run(
    bootstrap: str, workdir: Path, registry: Path, calls: LabelledCalls, sent: list[KafkaMessage],
    label: str,
) -> dict[str, Any]:
    """One fresh worker over the day; its decisions judged."""
    raw, complaints = f"bench-raw-{label}", f"bench-complaints-{label}"
    create_topics(bootstrap, [raw, complaints])
    run = start_workers(bootstrap, workdir, raw, complaints, registry, 1)
    worker = run.workers[0]
    try:
        cdrs = sum(m.cdrs for m in sent)
        say(f"  {label}: producing {cdrs:,} CDRs in {len(sent):,} messages")
        await _send_all(bootstrap, sent, raw, complaints)
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            features = _status(worker)["counters"]["features"]
            seen = features.get("accepted", 0) + features.get("late_dropped", 0)
            seen += features.get("duplicates", 0)
            if seen >= cdrs:
                break
            await asyncio.sleep(1)
        status = _status(worker)
        decisions = status["counters"]["decisions"]
        published = sum(decisions.get(a, 0) for a in ("block", "watch", "clear"))
        flags = await read_flags(bootstrap, run.topics["CALLGUARD_TOPIC_FLAGS"], published)
        features = status["counters"]["features"]
        rows = await read_rows(
            bootstrap, run.topics["CALLGUARD_TOPIC_FEATURES"], features.get("emitted", 0)
        )
        _ROWS[label] = rows
        keyed = _ROWS.get(_KEYED)
        return {
            **({} if keyed is None or label == _KEYED else same_rows(rows, keyed)),
            "input": label,
            "cdrs": cdrs,
            "late_dropped": features.get("late_dropped", 0),
            # Feature vectors scored (the emission rule's cost): bursts and steady callers.
            "scored_vectors": features.get("emitted", 0),
            "decisions": len(flags),
            **judge(flags, calls),
        }
    finally:
        worker.stop()


_KEYED = "keyed, one CDR a message"
_ROWS: dict[str, dict[tuple[str, int], bytes]] = {}  # each run's feature rows, by label


def markdown(results: dict[str, Any]) -> str:
    """The worker runs as a table, categories as rows."""
    runs = results["worker"]
    if not runs:
        return "(worker runs skipped)"
    categories = sorted({c for run in runs for c in run["recall"]})
    header = "| | " + " | ".join(run["input"] for run in runs) + " |"
    lines = [header, "|---|" + "---|" * len(runs)]
    for category in categories:
        cells = [
            f"{run['recall'].get(category, 0):.0%} of {run['callers'].get(category, 0)}"
            for run in runs
        ]
        lines.append(f"| recall, {category} | " + " | ".join(cells) + " |")
    rows = (
        ("block precision (numbers)", "block_precision", "{:.1%}"),
        ("legitimate bulk callers flagged", "legit_flagged", "{}"),
        ("ordinary subscribers flagged", "ordinary_flagged", "{}"),
        ("minutes to first flag, median", "minutes_to_first_flag_median", "{}"),
        ("minutes to first flag, p90", "minutes_to_first_flag_p90", "{}"),
        ("calls dropped as late", "late_dropped", "{:,}"),
        ("feature vectors scored", "scored_vectors", "{:,}"),
        ("rows compared with the keyed run", "rows_compared", "{:,}"),
        ("of those, not equal to the bit", "rows_differing", "{:,}"),
    )
    for title, key, pattern in rows:
        cells = ["n/a" if run.get(key) is None else pattern.format(run[key]) for run in runs]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def shifted_worlds(
    registry: Path, heldout: str, workdir: Path, also: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """The serving model offline on the held-out family as it is and shifted in five ways.

    ``callbacks 0.1``: the family with the subscribers' missed calls returned
    at 0.1 instead of its own rate. ``people answer 0.55``: the family with
    people answering 0.55 of the calls between them (its own rate is 0.7;
    nuisance and legitimate callers keep theirs), so the busy subscribers
    who call strangers for work are answered less, as nuisance lines are.
    ``nobody called``: its rows with every feature of calls received set to
    0. All three ask whether the model leans on how a simulator has people
    call each other. ``no complaints``: its rows
    with the complaint features at 0, a feed that carries no reports.
    ``no ring times``: its rows with the one-ring ratios at 0, a feed whose
    CDRs leave out the optional ``ring_s`` (the ratios are the only
    features read from it). Then each family of ``also`` as it is and
    without complaints.
    """
    models = ModelRegistry(registry)
    current = models.current()
    if current is None:
        raise SystemExit(f"{registry} serves no model: train one first (callguard train --promote)")
    loaded = models.load(current.version)
    population, review = population_of(loaded.metadata)
    scenario = builtin_scenario(heldout)
    quiet = with_overrides(scenario, subscribers={"callback_rate": 0.1})
    reticent = with_overrides(scenario, subscribers={"answer_rate": 0.55})
    worlds = []
    simulated: dict[str, tuple[LabelledCalls, pl.DataFrame]] = {}
    for label, world, zeroed in (
        (f"{heldout}, as it is", scenario, ()),
        (f"{heldout}, callbacks 0.1", quiet, ()),
        (f"{heldout}, people answer 0.55", reticent, ()),
        (f"{heldout}, nobody called", scenario, CALLED_FEATURES),
        (f"{heldout}, no complaints", scenario, COMPLAINT_FEATURES),
        (f"{heldout}, no ring times", scenario, RING_FEATURES),
        *(
            world
            for name in also
            for world in (
                (name, builtin_scenario(name), ()),
                (f"{name}, no complaints", builtin_scenario(name), COMPLAINT_FEATURES),
            )
        ),
    ):
        day = world.model_dump_json()
        if day not in simulated:  # each day is simulated once, then shifted
            folder = workdir / f"shift-{len(simulated)}"
            write_parquet(world, folder, progress=False)
            calls = read_parquet_dir(folder)
            simulated[day] = (calls, build_training_data(calls).table)
        calls, measured = simulated[day]
        table = measured.with_columns([pl.lit(0.0).alias(name) for name in zeroed])
        metrics = evaluate_family(
            loaded.model, loaded.metadata.classes, loaded.metadata.thresholds, table, calls,
            "shift", population=population, review=review, called=called_of(loaded.metadata),
        )
        worlds.append({"world": label} | {k.removeprefix("shift."): v for k, v in metrics.items()})
        ordinary = metrics["shift.ordinary_flagged_share"]
        precision = metrics["shift.block_precision"]
        say(f"  {label}: ordinary subscribers flagged {ordinary:.2%}, "
            f"block precision {precision:.1%}")
    return worlds


def shifts_markdown(worlds: list[dict[str, Any]]) -> str:
    """The shifted worlds as a table, categories as rows."""
    if not worlds:
        return ""
    categories = sorted(k.removeprefix("recall.") for k in worlds[0] if k.startswith("recall."))
    lines = ["| offline, never trained on | " + " | ".join(w["world"] for w in worlds) + " |",
             "|---|" + "---|" * len(worlds)]
    for category in categories:
        lines.append(f"| recall, {category} | " + " | ".join(
            f"{w[f'recall.{category}']:.0%}" for w in worlds) + " |")
    for title, key in (("block precision (numbers)", "block_precision"),
                       ("legitimate bulk callers flagged", "legit_flagged_share"),
                       ("ordinary subscribers flagged", "ordinary_flagged_share")):
        lines.append(f"| {title} | " + " | ".join(f"{w[key]:.2%}" for w in worlds) + " |")
    lines.append("| minutes from first call to first flag, median / p90 | " + " | ".join(
        f"{w['minutes_to_first_flag_median']:.0f} / {w['minutes_to_first_flag_p90']:.0f}"
        for w in worlds) + " |")
    return "\n".join(lines)


async def run(options: argparse.Namespace) -> dict[str, Any]:
    """Train, then the worker runs; the results."""
    with tempfile.TemporaryDirectory(prefix="callguard-detection-") as temporary:
        workdir = Path(temporary)
        if options.registry is not None:  # a model trained before: its report is not re-run
            registry, report = options.registry, f"(model of the registry {options.registry})"
        else:
            registry = workdir / "models"
            report = train_model(options.train, options.heldout, registry)
        print(report)
        results: dict[str, Any] = {
            "machine": machine(),
            "train": options.train,
            "heldout": options.heldout,
            "training_report": report,
            "worker": [],
        }
        say("the serving model offline on the held-out families, as they are and shifted")
        also = tuple(name for name in options.also.split(",") if name)
        results["shifts"] = shifted_worlds(registry, options.heldout, workdir, also)
        if options.skip_worker:
            return results
        calls, chunks, scenario = heldout_day(options.heldout, workdir)
        with LocalBroker(log_path=workdir / "broker.log") as broker:
            for keyed in [kind == "keyed" for kind in options.inputs.split(",")]:
                label = _KEYED if keyed else "unkeyed, arrays of 500"
                sent = messages(chunks, scenario, keyed=keyed)
                results["worker"].append(
                    await worker_run(broker.bootstrap, workdir, registry, calls, sent, label)
                )
        return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line: see the module doc."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default="default", help="training scenario (a preset)")
    parser.add_argument("--heldout", default="heldout", help="held-out built-in scenario")
    parser.add_argument(
        "--also", default="county",
        help="further held-out built-in scenarios, measured offline (comma-separated; '' none)",
    )
    parser.add_argument("--skip-worker", action="store_true", help="training report only")
    parser.add_argument(
        "--registry", type=Path, default=None,
        help="serve this registry's current model instead of training one",
    )
    parser.add_argument(
        "--inputs", default="keyed,unkeyed", choices=["keyed,unkeyed", "keyed", "unkeyed"],
        help="which worker runs",
    )
    options = parser.parse_args(argv)
    results = asyncio.run(run(options))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "detection.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results) + "\n\n" + shifts_markdown(results.get("shifts", []))
    (RESULTS / "detection.md").write_text(table + "\n")
    print(table)
    return results


if __name__ == "__main__":
    main()
