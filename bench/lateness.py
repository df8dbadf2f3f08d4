"""Benchmark: calls dropped as late when a day arrives in the order switches write it.

A switch writes a call's record when the call ends, so a day read in that
order has every long call after the shorter calls its number started later.
This script simulates one day of a built-in scenario, sorts it by call end
(start plus talk time), feeds it to the block engine in messages of
``--message`` CDRs (lateness is judged per call in arrival order, so the
message size does not change the count) and prints how many calls the
engine dropped as late and accepted late, beside the count a rule judging
by call start (the latest start minus the grace) would drop.

Run: ``.venv/bin/python bench/lateness.py [--scenario heldout] [--data DIR]``
(``--data``: a directory written by ``callguard simulate --out``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

# Runnable as a plain script from a checkout, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from features.batch import CallBatch, callee_keys  # noqa: E402
from features.block.engine import CallerBlock  # noqa: E402
from features.config import FeatureConfig  # noqa: E402
from simulator.run import simulate  # noqa: E402
from simulator.scenario import builtin_scenario  # noqa: E402


def _day(args: argparse.Namespace) -> tuple[str, pl.DataFrame]:
    if args.data is not None:
        return str(args.data), pl.read_parquet(args.data / "cdrs.parquet")
    scenario = builtin_scenario(args.scenario)
    print(f"simulating one day of {scenario.name} ...", file=sys.stderr)
    return scenario.name, pl.concat([chunk.cdrs for chunk in simulate(scenario)])


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", default="heldout", help="built-in scenario")
    parser.add_argument("--data", type=Path, default=None, help="a simulated Parquet dir")
    parser.add_argument("--message", type=int, default=1000, help="CDRs per message")
    args = parser.parse_args()
    name, cdrs = _day(args)
    config = FeatureConfig()
    grace_ms = config.grace_s * 1000
    answered = pl.col("disposition") == "ANSWERED"
    talk_ms = pl.when(answered).then((pl.col("duration_s") * 1000).round()).otherwise(0)
    cdrs = cdrs.with_columns((pl.col("start_ms") + talk_ms.cast(pl.Int64)).alias("end_ms")).sort(
        ["end_ms", "start_ms"]
    )
    # The start rule, for comparison: the latest start of the caller before each call.
    met = cdrs.select(pl.col("start_ms").cum_max().shift(1).over("caller").alias("met"))["met"]
    by_start = int((cdrs["start_ms"] < met - grace_ms).sum())
    out_of_order = int((cdrs["start_ms"] < met).sum())

    block = CallerBlock(config)
    dropped = accepted_late = 0
    began = time.perf_counter()
    for offset, first in enumerate(range(0, cdrs.height, args.message)):
        part = cdrs.slice(first, args.message)
        calls = CallBatch.from_arrays(
            config,
            start_ms=part["start_ms"].to_numpy(),
            callee=callee_keys(part["callee"].to_list()),
            duration_s=part["duration_s"].to_numpy(),
            answered=(part["disposition"] == "ANSWERED").to_numpy(),
            ring_s=part["ring_s"].fill_null(np.nan).to_numpy(),
        )
        ids = np.arange(first, first + part.height, dtype=np.uint32)
        update = block.update(part["caller"].to_list(), calls, ids, offset)
        dropped += update.counts["late_dropped"]
        accepted_late += update.counts["late_accepted"]
    wall = time.perf_counter() - began
    print(f"day                    {name}: {cdrs.height:,} CDRs, read in call-end order")
    print(f"out of start order     {out_of_order:,} (after a later-started call of the number)")
    print(f"dropped, start rule    {by_start:,} ({by_start / cdrs.height:.2%})")
    print(f"dropped, callguard     {dropped:,} ({dropped / cdrs.height:.2%}): ended over the grace")
    print(f"accepted late          {accepted_late:,}")
    print(f"grace                  {config.grace_s} s; applied in {wall:.1f} s")


if __name__ == "__main__":
    main()
