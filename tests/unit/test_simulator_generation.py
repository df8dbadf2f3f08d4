"""The simulator's output against the CDR contract, its own seed and its specification."""

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from contracts.cdr import cdr_from_mapping
from contracts.numbers import VIRTUAL_OPERATOR_PREFIXES, normalise
from simulator.categories import DEFAULT_MIX, Category, LegitKind
from simulator.parquet import write_parquet
from simulator.profiles import LEGIT_SPECS
from simulator.run import Chunk, simulate
from simulator.scenario import Scenario, builtin_scenario, with_overrides
from simulator.shapes import DEFAULT_SHAPES
from simulator.world import World, build_world

HOUR_MS = 3_600_000
CALL_CENTRE = [Category.FINANCE_MARKETING, Category.OTHER_MARKETING, Category.REAL_ESTATE]


def _frames(chunks: list[Chunk]) -> tuple[pl.DataFrame, pl.DataFrame]:
    cdrs = pl.concat([pl.concat([c.cdrs, c.labels], how="horizontal") for c in chunks])
    return cdrs, pl.concat([c.complaints for c in chunks])


@pytest.fixture(scope="module")
def tiny() -> Scenario:
    return builtin_scenario("tiny")


@pytest.fixture(scope="module")
def tiny_chunks(tiny: Scenario) -> list[Chunk]:
    return list(simulate(tiny))


@pytest.fixture(scope="module")
def day() -> tuple[World, pl.DataFrame, pl.DataFrame]:
    """A full simulated weekday of a mid-size population: enough calls for statistics."""
    scenario = with_overrides(
        builtin_scenario("default"),
        subscribers={"count": 20_000},
        campaigns={"count": 100},
    )
    world = build_world(scenario)
    cdrs, complaints = _frames(list(simulate(scenario, world)))
    return world, cdrs, complaints


def _by_source(cdrs: pl.DataFrame, source: str) -> pl.DataFrame:
    return cdrs.filter(pl.col("source") == source)


def _answer_rate(cdrs: pl.DataFrame) -> float:
    return float((cdrs["disposition"] == "ANSWERED").mean())


# --- determinism ---------------------------------------------------------------


def test_same_seed_same_output(tiny: Scenario, tiny_chunks: list[Chunk], tmp_path: Path) -> None:
    again = list(simulate(tiny))
    assert len(again) == len(tiny_chunks) == tiny.hours
    for first, second in zip(tiny_chunks, again, strict=True):
        assert_frame_equal(first.cdrs, second.cdrs)
        assert_frame_equal(first.labels, second.labels)
        assert_frame_equal(first.complaints, second.complaints)
    short = with_overrides(tiny, duration="2h")
    one, two = write_parquet(short, tmp_path / "a", progress=False), write_parquet(
        short, tmp_path / "b", progress=False
    )
    for name in ("cdrs", "complaints", "ground_truth", "legit_callers"):
        assert getattr(one, name).read_bytes() == getattr(two, name).read_bytes(), name


def test_another_seed_gives_other_traffic(tiny: Scenario, tiny_chunks: list[Chunk]) -> None:
    other = next(simulate(with_overrides(tiny, seed=tiny.seed + 1)))
    assert not other.cdrs.select("caller", "callee").equals(
        tiny_chunks[0].cdrs.select("caller", "callee")
    )


# --- the contract --------------------------------------------------------------


def test_every_row_passes_the_cdr_contract(tiny_chunks: list[Chunk]) -> None:
    cdrs, _ = _frames(tiny_chunks)
    for row in cdrs.drop("start_time", "source", "campaign_id").iter_rows(named=True):
        row["start_time"] = row.pop("start_ms")
        record = cdr_from_mapping(row)
        # Already in normal form: validation changes nothing.
        assert (record.caller, record.callee) == (row["caller"], row["callee"])
    assert cdrs["cdr_id"].is_unique().all()


def test_chunks_are_hours_in_event_time_order(tiny: Scenario, tiny_chunks: list[Chunk]) -> None:
    for chunk in tiny_chunks:
        start = tiny.start_ms + chunk.index * HOUR_MS
        times = chunk.cdrs["start_ms"]
        assert times.is_sorted()
        assert times.min() >= start and times.max() < start + HOUR_MS
        assert chunk.complaints["time_ms"].is_sorted()
        assert chunk.labels.height == chunk.cdrs.height
        assert chunk.cdrs["start_time"].dt.epoch("ms").equals(times, check_names=False)


def test_numbers_come_from_real_ranges(tiny_chunks: list[Chunk]) -> None:
    numbers = pl.concat([c.cdrs["caller"] for c in tiny_chunks]).unique()
    mobile = numbers.filter(numbers.str.starts_with("+861") & (numbers.str.len_chars() == 14))
    assert mobile.str.slice(3, 2).is_in(["13", "14", "15", "16", "17", "18", "19"]).all()
    fixed = numbers.filter(numbers.str.contains(r"^\+86[2-9]") & ~numbers.str.starts_with("+86400"))
    assert fixed.len() > 0
    assert numbers.filter(numbers.str.starts_with("955")).len() > 0  # bank service lines
    for number in numbers.sample(200, seed=1):
        assert normalise(number) == number


# --- ground truth ---------------------------------------------------------------


def test_no_legitimate_caller_carries_a_nuisance_label(day) -> None:
    world, cdrs, _ = day
    truth = set(world.ground_truth()["number"])
    legit = set(world.legit_callers()["number"])
    subscribers = set(world.subscribers()["number"])
    assert truth and legit and subscribers
    assert not truth & legit
    assert not truth & subscribers
    legit_rows = cdrs.filter(pl.col("source").cast(pl.String).is_in([k.value for k in LegitKind]))
    assert not set(legit_rows["caller"]) & truth
    assert set(legit_rows["caller"]) <= legit
    assert {"95588", "12345"} <= legit


def test_every_campaign_call_comes_from_a_labelled_number(day) -> None:
    world, cdrs, _ = day
    truth = world.ground_truth()
    calls = cdrs.filter(pl.col("campaign_id").is_not_null())
    joined = calls.join(truth, left_on="caller", right_on="number", how="left")
    assert joined["category"].null_count() == 0
    assert (joined["category"] == joined["source"].cast(pl.String)).all()
    assert (joined["campaign_id"] == joined["campaign_id_right"]).all()
    # Each number is only used inside its active window.
    start = joined["start_time"]
    assert ((start >= joined["active_from"]) & (start < joined["active_to"])).all()


def test_campaigns_follow_the_category_mix_and_rotate_numbers(day) -> None:
    world, _, _ = day
    campaigns = world.campaigns()
    counts = dict(campaigns.group_by("category").len().iter_rows())
    for category, share in DEFAULT_MIX.items():
        assert abs(counts.get(category.value, 0) - share * campaigns.height) <= 1
    # Campaigns rotate across several caller numbers, 95/96/400 lines among them.
    assert campaigns["numbers"].mean() > 3
    numbers = world.ground_truth()["number"]
    assert numbers.str.contains(r"^(9[56]\d{4}|\+86400\d{7})$").sum() > 0


# --- each category against its specification ---------------------------------------


def test_background_answers_most_calls_with_human_ring_times(day) -> None:
    _, cdrs, _ = day
    background = _by_source(cdrs, "background")
    assert 0.7 <= _answer_rate(background) <= 0.8
    answered = background.filter(pl.col("disposition") == "ANSWERED")
    assert 5 <= answered["ring_s"].median() <= 10
    assert 50 <= answered["duration_s"].median() <= 100
    # Heavy tail: the busiest people call far more than the median person.
    per_person = background.group_by("caller").len()["len"]
    assert per_person.quantile(0.99) >= 5 * per_person.median()


def test_one_ring_rings_briefly_and_is_almost_never_answered(day) -> None:
    _, cdrs, _ = day
    one_ring, background = _by_source(cdrs, "one_ring"), _by_source(cdrs, "background")
    assert one_ring.height > 1000
    assert _answer_rate(one_ring) <= DEFAULT_SHAPES[Category.ONE_RING].answer_rate[1] + 0.01
    unanswered = one_ring.filter(pl.col("disposition") != "ANSWERED")
    assert (unanswered["ring_s"] < 5).mean() >= 0.9
    assert (background["ring_s"] < 3).mean() <= 0.15


def test_each_campaign_keeps_the_rhythm_it_drew(day) -> None:
    world, cdrs, _ = day
    local_hour = ((pl.col("start_ms") // HOUR_MS + 8) % 24).alias("local_hour")
    per_campaign = (
        cdrs.filter(pl.col("campaign_id").is_not_null())
        .with_columns(local_hour)
        .group_by("campaign_id")
        .agg(
            calls=pl.len(),
            night=((pl.col("local_hour") < 6) | (pl.col("local_hour") >= 22)).mean(),
            outside_office=(~pl.col("local_hour").is_between(8, 19)).mean(),
        )
        .join(world.campaigns(), on="campaign_id")
        .filter(pl.col("calls") >= 100)
    )
    office = per_campaign.filter(pl.col("rhythm") == "office")
    night = per_campaign.filter(pl.col("rhythm") == "night")
    assert office.height > 0 and night.height > 0
    assert (office["outside_office"] == 0).all()
    # A campaign may start after the night is over: most, not all, call mostly at night.
    assert night["night"].median() > 0.4


def test_one_ring_lures_call_backs_to_a_premium_line(day) -> None:
    world, cdrs, _ = day
    one_ring_numbers = world.ground_truth().filter(pl.col("category") == "one_ring")["number"]
    calls_back = cdrs.filter(
        (pl.col("source") == "callback") & pl.col("callee").is_in(one_ring_numbers.implode())
    )
    assert calls_back.height > 0
    assert _answer_rate(calls_back) > 0.8


@pytest.mark.parametrize("category", CALL_CENTRE)
def test_call_centre_numbers_dial_within_their_shape(day, category: Category) -> None:
    world, cdrs, _ = day
    shape = DEFAULT_SHAPES[category]
    calls = _by_source(cdrs, category.value)
    answered = calls.filter(pl.col("disposition") == "ANSWERED")
    background = _by_source(cdrs, "background").filter(pl.col("disposition") == "ANSWERED")
    assert answered["duration_s"].median() < background["duration_s"].median()
    # Each campaign's answer rate is near the one it drew, and inside the range.
    campaigns = world.campaigns().filter(pl.col("category") == category.value)
    assert campaigns["answer_rate"].is_between(*shape.answer_rate).all()
    per_campaign = calls.group_by("campaign_id").agg(
        calls=pl.len(), answered=(pl.col("disposition") == "ANSWERED").mean()
    )
    joined = per_campaign.join(campaigns, on="campaign_id").filter(pl.col("calls") >= 300)
    assert joined.height > 0
    assert ((joined["answered"] - joined["answer_rate"]).abs() < 0.08).all()


def test_nuisance_callers_do_not_all_dial_one_segment(day) -> None:
    _, cdrs, _ = day
    nuisance = cdrs.filter(pl.col("campaign_id").is_not_null())
    per_caller = (
        nuisance.with_columns(segment=pl.col("callee").str.slice(0, 10))
        .group_by("caller")
        .agg(calls=pl.len(), segments=pl.col("segment").n_unique())
        .filter(pl.col("calls") >= 50)
    )
    one_segment = float((per_caller["segments"] == 1).mean())
    # Some work through one segment, others many segments or the whole population.
    assert 0.1 < one_segment < 0.7
    assert per_caller["segments"].quantile(0.75) >= 10


def test_debt_collectors_call_the_same_few_people_again_and_again(day) -> None:
    world, cdrs, _ = day
    listed = world.campaigns().filter(
        (pl.col("category") == "debt_collection") & (pl.col("callees") == "targets")
    )
    assert listed.height > 0
    collection = _by_source(cdrs, "debt_collection").filter(
        pl.col("campaign_id").is_in(listed["campaign_id"].implode())
    )
    per_campaign = collection.group_by("campaign_id").agg(
        calls=pl.len(), callees=pl.col("callee").n_unique()
    )
    repeat_ratio = 1 - per_campaign["callees"].sum() / per_campaign["calls"].sum()
    assert repeat_ratio > 0.5
    assert per_campaign["callees"].max() <= DEFAULT_SHAPES[Category.DEBT_COLLECTION].targets[1]
    # Most marketing campaigns dial fresh numbers (a few work a list, by their shape).
    marketing = _by_source(cdrs, "finance_marketing").group_by("campaign_id").agg(
        repeats=1 - pl.col("callee").n_unique() / pl.len()
    )
    assert marketing["repeats"].median() < 0.25


def test_fraud_uses_spoofed_numbers_and_talks_longer(day) -> None:
    world, cdrs, _ = day
    truth = world.ground_truth().filter(pl.col("category") == "fraud")
    assert truth["spoofed"].all()
    assert truth["number"].str.contains(r"^\+(8617[01]|8616[57]|852|63)").mean() > 0.4
    fraud = _by_source(cdrs, "fraud")
    assert 0.15 <= _answer_rate(fraud) <= 0.6
    answered = fraud.filter(pl.col("disposition") == "ANSWERED")
    marketing = _by_source(cdrs, "finance_marketing").filter(pl.col("disposition") == "ANSWERED")
    assert answered["duration_s"].median() > marketing["duration_s"].median()


def test_legitimate_bulk_callers_get_answered_each_in_its_own_way(day) -> None:
    _, cdrs, _ = day
    legit = cdrs.filter(pl.col("source").cast(pl.String).is_in([k.value for k in LegitKind]))
    every_caller = legit.group_by("source", "caller").agg(
        calls=pl.len(), answered=(pl.col("disposition") == "ANSWERED").mean()
    )
    per_caller = every_caller.filter(pl.col("calls") >= 200)
    for kind in LegitKind:
        callers = per_caller.filter(pl.col("source") == kind.value)
        if callers.height == 0:
            continue
        low, high = LEGIT_SPECS[kind].answer_rate
        assert callers["answered"].is_between(low - 0.07, high + 0.07).all(), kind
    # Callers of one kind differ: rates and answer rates are drawn per caller.
    couriers = every_caller.filter(pl.col("source") == "courier")
    assert couriers["calls"].quantile(0.9) > 2 * couriers["calls"].quantile(0.1)
    assert per_caller.filter(pl.col("source") == "courier")["answered"].std() > 0.02
    assert _answer_rate(legit) > 0.7
    enterprise = _by_source(cdrs, "enterprise_switchboard").filter(
        pl.col("disposition") == "ANSWERED"
    )
    assert enterprise["duration_s"].median() > 120


def test_some_subscribers_call_for_work(day) -> None:
    world, cdrs, _ = day
    background = _by_source(cdrs, "background")
    per_caller = background.group_by("caller").agg(calls=pl.len())
    busy = world.population.work_callers.size
    assert busy > 0
    # Sales people and shop owners: dozens of calls a day, like a slow nuisance line.
    assert per_caller.filter(pl.col("calls") >= 20).height >= busy // 2


def _on_virtual_ranges(numbers: pl.Series) -> pl.Series:
    prefixes = list(VIRTUAL_OPERATOR_PREFIXES)
    return numbers.str.slice(3, 3).is_in(prefixes) & numbers.str.starts_with("+861")


def test_some_people_and_some_platform_drivers_call_from_virtual_operator_numbers(day) -> None:
    world, cdrs, _ = day
    scenario = world.scenario
    assert scenario.subscribers.virtual_share > 0 and scenario.legit.privacy_number_share > 0
    people = _by_source(cdrs, "background")["caller"].unique()
    share = float(_on_virtual_ranges(people).mean())
    assert 0.3 * scenario.subscribers.virtual_share < share < 3 * scenario.subscribers.virtual_share
    for source in ("courier", "ride_hailing"):
        drivers = _by_source(cdrs, source)["caller"].unique()
        assert 0 < _on_virtual_ranges(drivers).sum() < drivers.len(), source
    for source in ("school_hospital", "enterprise_switchboard", "bank_service"):
        assert not _on_virtual_ranges(_by_source(cdrs, source)["caller"]).any(), source


def test_without_the_shares_nobody_ordinary_is_on_a_virtual_range(tiny) -> None:
    scenario = with_overrides(
        tiny, subscribers={"virtual_share": 0}, legit={"privacy_number_share": 0}
    )
    cdrs, _ = _frames(list(simulate(scenario)))
    not_nuisance = cdrs.filter(pl.col("campaign_id").is_null())
    assert not_nuisance.height > 0
    assert not _on_virtual_ranges(not_nuisance["caller"]).any()


# --- complaints ----------------------------------------------------------------------


def test_complaints_come_from_people_who_took_nuisance_calls(day) -> None:
    world, cdrs, complaints = day
    assert complaints.height > 100
    truth = set(world.ground_truth()["number"])
    genuine = complaints.filter(~pl.col("is_noise"))
    noise = complaints.filter(pl.col("is_noise"))
    assert set(genuine["reported"]) <= truth
    assert not set(noise["reported"]) & truth
    assert 0.05 <= noise.height / complaints.height <= 0.15
    # The reporter really received a call from the number they report, before reporting.
    calls = cdrs.select("caller", "callee", "start_ms")
    matched = genuine.join(calls, left_on=["reported", "reporter"], right_on=["caller", "callee"])
    matched = matched.filter(pl.col("start_ms") < pl.col("time_ms"))
    assert matched["complaint_id"].n_unique() == genuine.height
    # Reports name the right category most of the time.
    category = genuine.join(world.ground_truth(), left_on="reported", right_on="number")
    assert (category["category"] == category["category_right"]).mean() > 0.8


def test_complaint_rate_follows_the_scenario(day) -> None:
    world, cdrs, complaints = day
    settings = world.scenario.complaints
    answered_nuisance = cdrs.filter(
        pl.col("campaign_id").is_not_null()
        & (pl.col("source") != "one_ring")
        & (pl.col("disposition") == "ANSWERED")
    ).height
    genuine = complaints.filter(~pl.col("is_noise"))
    truth = world.ground_truth().select("number", "category")
    not_one_ring = genuine.join(truth, left_on="reported", right_on="number").filter(
        pl.col("category_right") != "one_ring"
    )
    # Complaints after the last hour are dropped, so allow a little under the rate.
    assert 0.6 * settings.rate <= not_one_ring.height / answered_nuisance <= 1.3 * settings.rate


def test_scenario_mix_changes_the_campaigns() -> None:
    scenario = with_overrides(
        builtin_scenario("tiny"), campaigns={"count": 5, "mix": {"one_ring": 1}}
    )
    world = build_world(scenario)
    assert set(world.campaigns()["category"]) == {"one_ring"}
    cdrs, _ = _frames(list(simulate(scenario, world)))
    sources = set(cdrs["source"].cast(pl.String))
    assert "one_ring" in sources and not sources & {"finance_marketing", "fraud"}
    assert _answer_rate(_by_source(cdrs, "one_ring")) < 0.03


def test_people_differ_in_how_often_their_missed_calls_are_returned() -> None:
    spread = build_world(builtin_scenario("tiny")).population.callback_rate
    assert spread.min() >= 0.1 - 1e-9 and spread.max() <= 0.9 + 1e-9
    assert spread.std() > 0.15  # uniform over 0.1-0.9: 0.23
    alike = with_overrides(builtin_scenario("tiny"), subscribers={"callback_rate_spread": 0.0})
    assert set(build_world(alike).population.callback_rate.tolist()) == {0.5}
