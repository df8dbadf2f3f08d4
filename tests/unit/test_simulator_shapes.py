"""Campaign shapes: validation, draws, variety in generated traffic, bursts, families."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from simulator.categories import Category
from simulator.run import simulate
from simulator.scenario import (
    Scenario,
    ScenarioError,
    builtin_scenario,
    load_scenario,
    scenario_from_mapping,
    with_overrides,
)
from simulator.shapes import DEFAULT_SHAPES, CampaignShape, draw_shape
from simulator.world import build_world

HOUR_MS = 3_600_000


def _shape_data(**changes: object) -> dict:
    data = DEFAULT_SHAPES[Category.FRAUD].model_dump(mode="json")
    data.update(changes)
    return data


def _calls(scenario: Scenario) -> tuple[pl.DataFrame, pl.DataFrame]:
    world = build_world(scenario)
    chunks = list(simulate(scenario, world))
    cdrs = pl.concat([pl.concat([c.cdrs, c.labels], how="horizontal") for c in chunks])
    return cdrs, world.campaigns()


# --- validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"answer_rate": [0.6, 0.2]}, r"answer_rate\n.*low <= high, got \[0.6, 0.2\]"),
        ({"answer_rate": [0.2, 1.5]}, r"answer_rate\.1\n.*less than or equal to 1"),
        ({"calls_per_line_day": [0, 100]}, r"calls_per_line_day\.0\n.*greater than 0"),
        ({"lines": [0, 3]}, r"lines\.0\n.*greater than or equal to 1"),
        ({"burst_duty": [0.0, 0.5]}, r"burst_duty\n.*low must be above 0"),
        ({"callees": {"population": 0}}, r"callees\n.*at least one positive weight"),
        ({"rhythms": {"lunch": 1}}, r"rhythms\.lunch"),
        ({"number_mix": {"pager": 1}}, r"number_mix\.pager"),
        ({"talk_median_s": [30]}, r"talk_median_s\.1\n.*Field required"),
    ],
)
def test_bad_shapes_say_what_is_wrong(changes: dict, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        CampaignShape.model_validate(_shape_data(**changes))


def test_scenario_files_name_the_bad_shape_field() -> None:
    data = {"campaigns": {"shapes": {"fraud": _shape_data(answer_rate=[0.9, 0.1])}}}
    with pytest.raises(ScenarioError, match=r"campaigns\.shapes\.fraud\.answer_rate: a range"):
        scenario_from_mapping(data, "s.yaml")
    typo = {"campaigns": {"shapes": {"fraud": _shape_data(answer_rte=[0.1, 0.2])}}}
    hint = r"answer_rte: unknown field.*did you mean 'answer_rate'"
    with pytest.raises(ScenarioError, match=hint):
        scenario_from_mapping(typo, "s.yaml")
    with pytest.raises(ScenarioError, match=r"campaigns\.shapes\.spam"):
        scenario_from_mapping({"campaigns": {"shapes": {"spam": _shape_data()}}}, "s.yaml")


# --- draws -------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["default", "heldout", "county"])
def test_draws_stay_inside_their_ranges(family: str) -> None:
    shapes = {**DEFAULT_SHAPES, **builtin_scenario(family).campaigns.shapes}
    rng = np.random.default_rng(5)
    for shape in shapes.values():
        draws = [draw_shape(shape, rng) for _ in range(300)]
        for name in ("calls_per_line_day", "answer_rate", "talk_median_s", "callback_rate"):
            low, high = getattr(shape, name)
            values = np.array([getattr(d, name) for d in draws])
            assert ((values >= low * (1 - 1e-9)) & (values <= high * (1 + 1e-9))).all(), name
            # Wide ranges are used, not one corner of them.
            assert values.max() - values.min() >= 0.5 * (high - low), name
        lines = np.array([d.lines for d in draws])
        assert lines.min() >= shape.lines[0] and lines.max() <= shape.lines[1]
        duty = np.array([d.duty for d in draws])
        bursty = duty < 1
        assert abs(bursty.mean() - shape.burst_share) < 0.1
        assert (duty[bursty] >= shape.burst_duty[0]).all()
        assert {d.rhythm for d in draws} <= {r for r, w in shape.rhythms.items() if w > 0}
        assert {d.callees for d in draws} == {c for c, w in shape.callees.items() if w > 0}
        kinds = {k for d in draws for k in d.number_mix}
        assert kinds == {k for k, w in shape.number_mix.items() if w > 0}


# --- generated traffic ---------------------------------------------------------------


@pytest.fixture(scope="module")
def small_day() -> tuple[pl.DataFrame, pl.DataFrame]:
    scenario = with_overrides(
        builtin_scenario("default"), subscribers={"count": 5000}, campaigns={"count": 60}
    )
    return _calls(scenario)


def test_every_category_calls_in_many_shapes(small_day) -> None:
    cdrs, campaigns = small_day
    nuisance = cdrs.filter(pl.col("campaign_id").is_not_null())
    per_caller = (
        nuisance.with_columns(prefix=pl.col("callee").str.slice(0, 10))  # +86 and 7 digits
        .group_by("source", "caller")
        .agg(calls=pl.len(), prefixes=pl.col("prefix").n_unique())
    )
    for category in Category:
        callers = per_caller.filter(pl.col("source") == category.value)
        assert callers.height >= 5, category
    busy = per_caller.filter(pl.col("calls") >= 30)
    one_prefix = busy.filter(pl.col("prefixes") == 1).height
    # Not the old single shape: some dial one segment, most spread wider.
    assert 0 < one_prefix < 0.7 * busy.height
    assert campaigns["callees"].n_unique() == 5
    assert campaigns["rhythm"].n_unique() >= 4
    assert (campaigns["duty"] < 1).any() and (campaigns["duty"] == 1).any()
    rates = campaigns["calls_per_line_day"]
    assert rates.max() > 10 * rates.min()


def test_segments_callers_stay_inside_their_few_segments(small_day) -> None:
    cdrs, campaigns = small_day
    several = campaigns.filter(pl.col("callees") == "segments")["campaign_id"]
    assert several.len() > 0
    calls = cdrs.filter(pl.col("campaign_id").is_in(several.implode()))
    per_campaign = calls.group_by("campaign_id").agg(
        calls=pl.len(),
        prefixes=pl.col("callee").str.slice(0, 10).n_unique(),
        callees=pl.col("callee").n_unique(),
    )
    busy = per_campaign.filter(pl.col("calls") >= 50)
    assert busy.height > 0
    assert (busy["prefixes"] <= DEFAULT_SHAPES[Category.FINANCE_MARKETING].segments[1]).all()
    assert (busy["prefixes"] >= 2).any()
    assert (busy["callees"] / busy["calls"]).median() > 0.8


def _one_category(shape: CampaignShape, seed: int) -> Scenario:
    return scenario_from_mapping(
        {
            "seed": seed,
            "duration": "1d",
            "subscribers": {"count": 1000},
            "campaigns": {
                "count": 12,
                "mix": {"fraud": 1},
                "shapes": {"fraud": shape.model_dump(mode="json")},
            },
            "legit": {kind: 0 for kind in builtin_scenario("tiny").legit.model_dump()},
        }
    )


def test_bursty_lines_put_a_day_into_fewer_hours() -> None:
    steady = DEFAULT_SHAPES[Category.FRAUD].model_copy(
        update={
            "calls_per_line_day": (240.0, 240.0),
            "rotation_hours": (48.0, 48.0),
            "rhythms": {"flat": 1.0},
            "burst_share": 0.0,
        }
    )
    bursty = steady.model_copy(update={"burst_share": 1.0, "burst_duty": (0.25, 0.25)})

    def hours_and_calls(shape: CampaignShape) -> tuple[float, float]:
        cdrs, _ = _calls(_one_category(shape, seed=11))
        per_caller = (
            cdrs.filter(pl.col("source") == "fraud")
            .group_by("caller")
            .agg(calls=pl.len(), hours=(pl.col("start_ms") // HOUR_MS).n_unique())
        )
        return float(per_caller["hours"].median()), float(per_caller["calls"].sum())

    steady_hours, steady_calls = hours_and_calls(steady)
    bursty_hours, bursty_calls = hours_and_calls(bursty)
    assert bursty_hours < 0.5 * steady_hours
    # A bursty line dials faster when on: the day's volume is about the same.
    assert 0.7 < bursty_calls / steady_calls < 1.3


def test_scenario_file_shapes_are_honoured(tmp_path: Path) -> None:
    path = tmp_path / "fraud_only.yaml"
    path.write_text(
        "seed: 3\n"
        "start: 2018-07-02T08:00:00+08:00\n"
        "duration: 6h\n"
        "subscribers: {count: 2000}\n"
        "campaigns:\n"
        "  count: 6\n"
        "  mix: {fraud: 1}\n"
        "  shapes:\n"
        "    fraud:\n"
        "      calls_per_line_day: [400, 400]\n"
        "      lines: [1, 1]\n"
        "      rotation_hours: [48, 48]\n"
        "      rhythms: {flat: 1}\n"
        "      burst_share: 0\n"
        "      callees: {population: 1}\n"
        "      answer_rate: [0.9, 0.9]\n"
        "      talk_median_s: [600, 600]\n"
        "      number_mix: {international: 1}\n"
        "      spoofed: true\n"
    )
    scenario = load_scenario(path)
    assert scenario.campaigns.shapes[Category.FRAUD].talk_median_s == (600, 600)
    world = build_world(scenario)
    truth = world.ground_truth()
    assert set(truth["category"]) == {"fraud"}
    assert truth["number"].str.contains(r"^\+(852|63)").all()
    cdrs = pl.concat(
        [pl.concat([c.cdrs, c.labels], how="horizontal") for c in simulate(scenario, world)]
    )
    fraud = cdrs.filter(pl.col("source") == "fraud")
    assert fraud.height > 200
    assert abs(float((fraud["disposition"] == "ANSWERED").mean()) - 0.9) < 0.05
    answered = fraud.filter(pl.col("disposition") == "ANSWERED")
    assert 400 < answered["duration_s"].median() < 900


# --- families -------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["heldout", "county"])
def test_heldout_is_another_family_and_generates(family: str) -> None:
    heldout, default = builtin_scenario(family), builtin_scenario("default")
    assert heldout.seed != default.seed and heldout.start != default.start
    assert heldout.subscribers.count < default.subscribers.count
    assert set(heldout.campaigns.shapes) == set(Category)
    others = [builtin_scenario(name).campaigns.shapes for name in ("heldout", "county")
              if name != family]
    for category, shape in heldout.campaigns.shapes.items():
        assert shape != DEFAULT_SHAPES[category], category
        assert all(shape != other[category] for other in others), category
    # Overriding a section keeps the family's shapes.
    short = with_overrides(heldout, duration="12h", campaigns={"count": 30})
    assert short.campaigns.shapes == heldout.campaigns.shapes
    cdrs, campaigns = _calls(short)
    assert set(campaigns["category"]) == {c.value for c in Category}
    sources = set(cdrs["source"].cast(pl.String))
    assert {"background", "courier"} <= sources
    assert sources & {c.value for c in Category}
