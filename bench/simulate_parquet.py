"""Benchmark: simulate about 1 million CDRs to Parquet and print the throughput.

Run: ``.venv/bin/python bench/simulate_parquet.py [--cdrs 1000000] [--out DIR]``.
The default scenario makes about 340,000 CDRs a simulated day, so the run
lasts as many days as the target needs.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

# Runnable as a plain script from a checkout, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.parquet import write_parquet  # noqa: E402
from simulator.scenario import builtin_scenario, with_overrides  # noqa: E402

_CDRS_PER_DEFAULT_DAY = 338_000


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cdrs", type=int, default=1_000_000, help="target number of CDRs")
    parser.add_argument("--out", type=Path, default=None, help="output dir (default: a temp dir)")
    args = parser.parse_args()
    days = max(1, math.ceil(args.cdrs / _CDRS_PER_DEFAULT_DAY))
    scenario = with_overrides(builtin_scenario("default"), duration=f"{days}d")
    with tempfile.TemporaryDirectory() as temporary:
        out = args.out or Path(temporary)
        began = time.perf_counter()
        paths = write_parquet(scenario, out, progress=False)
        wall = time.perf_counter() - began
        size_mb = paths.cdrs.stat().st_size / 1e6
    print(f"scenario        {scenario.name}, {days} simulated days, seed {scenario.seed}")
    print(f"CDRs written    {paths.cdr_rows:,} ({size_mb:.1f} MB Parquet, zstd)")
    print(f"complaints      {paths.complaint_rows:,}")
    print(f"wall time       {wall:.2f} s")
    print(f"throughput      {paths.cdr_rows / wall:,.0f} CDRs/s")


if __name__ == "__main__":
    main()
