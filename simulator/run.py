"""Run a scenario: an iterator of hourly chunks of CDRs and complaints.

>>> from simulator.scenario import builtin_scenario
>>> chunk = next(simulate(builtin_scenario("tiny")))
>>> chunk.cdrs.columns[:4]
['cdr_id', 'caller', 'callee', 'start_ms']
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import polars as pl

from simulator.calls import Calls
from simulator.categories import SOURCE_DTYPE, SOURCES, Category
from simulator.generate import HOUR_MS, Complaints, HourGenerator
from simulator.numbering import carrier_expr, e164_expr
from simulator.outcomes import DISPOSITIONS
from simulator.scenario import Scenario
from simulator.world import World, build_world

__all__ = ["CDR_COLUMNS", "COMPLAINT_COLUMNS", "Chunk", "simulate"]

CDR_COLUMNS = (
    "cdr_id",
    "caller",
    "callee",
    "start_ms",
    "start_time",
    "duration_s",
    "disposition",
    "ring_s",
    "carrier",
)
COMPLAINT_COLUMNS = ("complaint_id", "reporter", "reported", "category", "time_ms", "is_noise")
_DISPOSITION_NAMES = pl.Series(DISPOSITIONS, dtype=pl.String)
_CATEGORY_NAMES = pl.Series([c.value for c in Category], dtype=pl.String)
_SOURCE_NAMES = pl.Series(SOURCES, dtype=pl.String)


@dataclass(frozen=True)
class Chunk:
    """One simulated hour.

    ``cdrs`` has :data:`CDR_COLUMNS` in start-time order; ``labels`` is
    row-aligned with it (``source``: who made the call, ``campaign_id``:
    the campaign or null), for tests and training, never sent to Kafka;
    ``complaints`` has :data:`COMPLAINT_COLUMNS` in time order.
    """

    index: int
    start: datetime
    cdrs: pl.DataFrame
    labels: pl.DataFrame
    complaints: pl.DataFrame


def simulate(scenario: Scenario, world: World | None = None) -> Iterator[Chunk]:
    """Yield ``scenario.hours`` chunks; the same scenario always yields the same chunks."""
    world = build_world(scenario) if world is None else world
    generator = HourGenerator(world)
    held_calls, held_complaints = Calls.empty(), Complaints.empty()
    for index in range(scenario.hours):
        calls, complaints = generator.hour(index)
        calls = Calls.concat([held_calls, calls])
        complaints = Complaints.concat([held_complaints, complaints])
        hour_end = scenario.start_ms + (index + 1) * HOUR_MS
        last = index == scenario.hours - 1
        # Call-backs and complaints after this hour wait for their own chunk; past the
        # end of the run, they are dropped.
        due_calls = calls.start_ms < hour_end
        due_complaints = complaints.time_ms < hour_end
        held_calls = Calls.empty() if last else calls.take(~due_calls)
        held_complaints = Complaints.empty() if last else complaints.take(~due_complaints)
        yield _chunk(scenario, index, calls.take(due_calls), complaints.take(due_complaints))


def _chunk(scenario: Scenario, index: int, calls: Calls, complaints: Complaints) -> Chunk:
    order = np.argsort(calls.start_ms, kind="stable")
    calls = calls.take(order)
    prefix = f"s{scenario.seed}-h{index}-"
    raw = pl.DataFrame(
        {
            "caller": calls.caller,
            "callee": calls.callee,
            "start_ms": calls.start_ms,
            "duration_s": calls.duration_s.astype(np.float64),
            "disposition": _DISPOSITION_NAMES.gather(calls.disposition),
            "ring_s": calls.ring_s.astype(np.float64),
        }
    )
    cdrs = raw.select(
        (pl.lit(prefix) + pl.int_range(pl.len()).cast(pl.String)).alias("cdr_id"),
        e164_expr(pl.col("caller")).alias("caller"),
        e164_expr(pl.col("callee")).alias("callee"),
        pl.col("start_ms"),
        pl.col("start_ms").cast(pl.Datetime("ms", "UTC")).alias("start_time"),
        "duration_s",
        "disposition",
        "ring_s",
        carrier_expr(pl.col("caller")).alias("carrier"),
    )
    labels = pl.DataFrame(
        {
            "source": _SOURCE_NAMES.gather(calls.source).cast(SOURCE_DTYPE),
            "campaign_id": pl.Series(calls.campaign, dtype=pl.Int32),
        }
    ).with_columns(pl.when(pl.col("campaign_id") >= 0).then(pl.col("campaign_id")))
    start = datetime.fromtimestamp((scenario.start_ms + index * HOUR_MS) / 1000, tz=UTC)
    return Chunk(index, start, cdrs, labels, _complaint_frame(scenario, index, complaints))


def _complaint_frame(scenario: Scenario, index: int, complaints: Complaints) -> pl.DataFrame:
    order = np.argsort(complaints.time_ms, kind="stable")
    complaints = complaints.take(order)
    raw = pl.DataFrame(
        {
            "reporter": complaints.reporter,
            "reported": complaints.reported,
            "category": _CATEGORY_NAMES.gather(complaints.category),
            "time_ms": complaints.time_ms,
            "is_noise": complaints.is_noise,
        }
    )
    return raw.select(
        (pl.lit(f"s{scenario.seed}-c{index}-") + pl.int_range(pl.len()).cast(pl.String)).alias(
            "complaint_id"
        ),
        e164_expr(pl.col("reporter")).alias("reporter"),
        e164_expr(pl.col("reported")).alias("reported"),
        "category",
        "time_ms",
        "is_noise",
    )
