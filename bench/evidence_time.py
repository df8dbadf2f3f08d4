"""How soon a nuisance number has made enough calls to be judged: a bound on time to flag.

Run: ``.venv/bin/python -m bench.evidence_time [--families default heldout county]
[--minutes 10]``. Simulates one day of each family, then prints, per category
of nuisance number:

- the share of numbers that make at least 2, 3, 5 and 10 calls within the
  first ``--minutes`` minutes after their first call;
- the median minutes from a number's first call to its 2nd, 3rd, 5th and
  10th call (numbers that never get there count as never: a median of
  "never" means most never do);
- the share that the worker's emission rule can score at all: numbers with
  a burst (``min_calls`` calls within the short window) or enough calls
  within the long window (``min_long_calls``), at any time of the day. An
  upper bound (the worker's windows end at hop boundaries): no classifier
  flags more of a category than this, whatever its threshold.

A detector that judges a number by what its calls look like cannot flag it
before it has made the calls it needs: a median time to first flag of
``--minutes`` or less needs half of the nuisance numbers flagged on the calls
they made in that time. The figures depend only on the simulated traffic,
not on any model. Asserts nothing; takes about a minute a family.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import polars as pl

# Runnable as a plain script from a checkout, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from features.config import FeatureConfig  # noqa: E402
from features.emission import EmissionPolicy  # noqa: E402
from models.dataset import read_parquet_dir  # noqa: E402
from simulator.parquet import write_parquet  # noqa: E402
from simulator.scenario import builtin_scenario  # noqa: E402

CALLS = (2, 3, 5, 10)
_MINUTE_MS = 60_000


def call_times(cdrs: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """One row per nuisance number that called: ``caller, category, offsets``.

    ``offsets``: minutes from the number's first call to each of its calls, in order.
    """
    numbers = truth.select(
        pl.col("number").alias("caller"), pl.col("category").cast(pl.String)
    ).unique("caller", keep="first")
    return (
        cdrs.select("caller", "start_ms")
        .join(numbers, on="caller", how="inner")
        .group_by("caller", "category")
        .agg(pl.col("start_ms").sort())
        .select(
            "caller",
            "category",
            ((pl.col("start_ms") - pl.col("start_ms").list.first()) / _MINUTE_MS).alias("offsets"),
        )
    )


def _within(offsets: pl.Expr, calls: int, minutes: float) -> pl.Expr:
    """Whether some ``calls`` consecutive calls of a number fall within ``minutes`` (strictly)."""
    spans = offsets.list.eval(pl.element().shift(-(calls - 1)) - pl.element())
    return spans.list.eval(pl.element() < minutes).list.any().fill_null(False)


def evidence_table(
    times: pl.DataFrame,
    minutes: float,
    policy: EmissionPolicy | None = None,
    config: FeatureConfig | None = None,
) -> pl.DataFrame:
    """Per category and ``all``: how soon numbers make their calls, and how many can be scored.

    Columns: numbers, share with k calls within ``minutes``, median minutes
    to call k, share the emission rule can score at all (``scorable``).
    """
    policy, config = policy or EmissionPolicy(), config or FeatureConfig()
    short, long = config.windows
    offsets = pl.col("offsets")
    scorable = (
        _within(offsets, policy.min_calls, short.window_s / 60)
        | _within(offsets, policy.min_long_calls, long.window_s / 60)
    )
    columns = [scorable.mean().alias("scorable")]
    for k in CALLS:
        kth = pl.col("offsets").list.get(k - 1, null_on_oob=True)
        columns.append((kth <= minutes).fill_null(False).mean().alias(f"{k} calls in time"))
        # A number that never makes its k-th call sorts after every one that does.
        columns.append(kth.fill_null(float("inf")).median().alias(f"median to call {k}"))
    by_category = times.group_by("category").agg(pl.len().alias("numbers"), *columns)
    overall = times.select(pl.lit("all").alias("category"), pl.len().alias("numbers"), *columns)
    return pl.concat([by_category.sort("category"), overall], how="vertical_relaxed")


def markdown(family: str, table: pl.DataFrame, minutes: float) -> str:
    """The table as Markdown: shares as per cent, medians in minutes."""
    head = (["category", "numbers"] + [f"{k} calls within {minutes:g} min" for k in CALLS]
            + [f"median min to call {k}" for k in CALLS] + ["can be scored at all"])
    lines = [f"**{family}**", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    for row in table.iter_rows(named=True):
        shares = [f"{100 * row[f'{k} calls in time']:.0f}%" for k in CALLS]
        medians = [
            "never" if row[f"median to call {k}"] == float("inf")
            else f"{row[f'median to call {k}']:.0f}"
            for k in CALLS
        ]
        scored = f"{100 * row['scorable']:.0f}%"
        lines.append("| " + " | ".join([row["category"], str(row["numbers"]), *shares,
                                         *medians, scored]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Simulate each family's day and print its table."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=["default", "heldout", "county"])
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="the time to first flag asked for (default 10)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as workdir:
        for family in args.families:
            out = Path(workdir) / family
            write_parquet(builtin_scenario(family), out, progress=False)
            calls = read_parquet_dir(out)
            table = evidence_table(call_times(calls.cdrs, calls.ground_truth), args.minutes)
            print(markdown(family, table, args.minutes), end="\n\n", flush=True)


if __name__ == "__main__":
    main()
