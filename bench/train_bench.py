"""Training time and rows a second: ``python bench/train_bench.py [tiny|small|default]``."""

from __future__ import annotations

import sys
import tempfile
import time

from models.dataset import build_training_data
from models.training import train
from models.training_presets import training_scenario
from simulator.parquet import write_parquet


def main(name: str = "default") -> None:
    """Simulate ``name``, build the table, train; print the times and the report."""
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        paths = write_parquet(training_scenario(name), out, progress=False)
        simulated = time.perf_counter()
        data = build_training_data(out)
        built = time.perf_counter()
        result = train(data, seed=0)
        trained = time.perf_counter()
    rows = data.table.height
    print(f"scenario {name}: {paths.cdr_rows} CDRs -> {rows} scored rows")
    print(f"simulate {simulated - started:6.1f} s")
    table_s = built - simulated
    print(f"table    {table_s:6.1f} s  ({paths.cdr_rows / table_s:,.0f} CDRs/s)")
    print(f"train    {trained - built:6.1f} s  ({rows / (trained - built):,.0f} rows/s, "
          f"{int(result.split.fit.sum())} fit rows)")
    print(result.report)


if __name__ == "__main__":
    main(*sys.argv[1:2])
