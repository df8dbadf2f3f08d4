"""The evidence-time bound (bench/evidence_time.py): its counting on a hand-made day."""

from __future__ import annotations

import polars as pl

from bench.evidence_time import call_times, evidence_table

_MIN = 60_000


def test_counts_calls_within_the_window_and_medians_to_each_call() -> None:
    # +1: five calls a minute apart; +2: two calls 30 minutes apart; +3: one call;
    # +9 is not a nuisance number and is left out.
    cdrs = pl.DataFrame({
        "caller": ["+1"] * 5 + ["+2", "+2", "+3", "+9", "+9"],
        "start_ms": [4 * _MIN, 0, _MIN, 3 * _MIN, 2 * _MIN, 0, 30 * _MIN, 0, 0, _MIN],
    })
    truth = pl.DataFrame({"number": ["+1", "+2", "+3"],
                          "category": ["one_ring", "fraud", "fraud"]})
    table = evidence_table(call_times(cdrs, truth), minutes=10)
    rows = {row["category"]: row for row in table.iter_rows(named=True)}

    assert rows["one_ring"]["numbers"] == 1
    assert rows["one_ring"]["2 calls in time"] == 1.0
    assert rows["one_ring"]["5 calls in time"] == 1.0
    assert rows["one_ring"]["median to call 5"] == 4.0
    assert rows["fraud"]["numbers"] == 2
    assert rows["fraud"]["2 calls in time"] == 0.0  # +2's second call is at 30 min
    assert rows["all"]["numbers"] == 3
    assert abs(rows["all"]["2 calls in time"] - 1 / 3) < 1e-9
    # 2nd calls at 1 and 30 minutes, +3 never: the median of (1, 30, never) is 30.
    assert rows["all"]["median to call 2"] == 30.0
    # Most numbers never make a 3rd call: the median is "never".
    assert rows["all"]["median to call 3"] == float("inf")
    # Scored at all: +1 has a burst (5 calls within 10 minutes); +2 and +3 never can.
    assert rows["one_ring"]["scorable"] == 1.0 and rows["fraud"]["scorable"] == 0.0


def test_a_steady_caller_is_scorable_by_its_calls_in_the_long_window() -> None:
    hour = 60 * _MIN
    cdrs = pl.DataFrame({"caller": ["+1"] * 10 + ["+2"] * 9,
                         "start_ms": [i * hour for i in range(10)] + [i * hour for i in range(9)]})
    truth = pl.DataFrame({"number": ["+1", "+2"], "category": ["fraud", "real_estate"]})
    rows = {row["category"]: row
            for row in evidence_table(call_times(cdrs, truth), minutes=10).iter_rows(named=True)}
    assert rows["fraud"]["scorable"] == 1.0  # ten calls within a day
    assert rows["real_estate"]["scorable"] == 0.0  # nine: never reaches the rule
