"""Training on the small simulated set: table, split, thresholds, targets, registry, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from features.vector import FEATURE_NAMES
from models.called_evidence import CalledEvidence, CalledPaths, called_of
from models.card import render_model_card
from models.complaint_paths import ComplaintPaths
from models.dataset import (
    NORMAL,
    DatasetConfig,
    TrainingData,
    build_training_data,
    build_training_table,
    read_parquet_dir,
    table_sha256,
)
from models.registry import ModelRegistry
from models.scoring import BatchScorer
from models.train_cli import app
from models.training import (
    TrainingOptions,
    TrainingResult,
    family_prefix,
    register_candidate,
    train,
    with_family_evaluation,
)
from models.training_checks import separation_warnings, single_feature_separation
from models.training_metrics import threshold_for_precision
from models.training_presets import training_scenario
from models.training_report import TARGETS, caller_table, check_targets
from simulator.parquet import write_parquet
from simulator.scenario import with_overrides
from simulator.shapes import DEFAULT_SHAPES
from tests.conftest import CliTraining


@pytest.fixture(scope="module")
def small_data(small_dir: Path) -> TrainingData:
    return build_training_data(small_dir)


@pytest.fixture(scope="module")
def trained(small_data: TrainingData) -> TrainingResult:
    return train(small_data, seed=0)


# --- the table ---------------------------------------------------------------------------


def test_table_holds_only_rows_the_worker_scores(small_data: TrainingData) -> None:
    table = small_data.table
    assert table.columns[:2] == ["caller", "end_ms"]
    assert tuple(table.columns[2 : 2 + len(FEATURE_NAMES)]) == FEATURE_NAMES
    burst = table["short_call_volume"] >= 5
    steady = table["long_call_volume"] >= 10
    assert (burst | steady).all()
    assert (~burst).any()  # steady callers are scored too, not bursts alone
    assert table["end_ms"].is_sorted()


def test_labels_follow_the_ground_truth(small_dir: Path, small_data: TrainingData) -> None:
    calls = read_parquet_dir(small_dir)
    table = small_data.table
    truth = dict(zip(calls.ground_truth["number"], calls.ground_truth["category"], strict=True))
    legit = set(calls.legit_callers["number"])
    for caller, label, campaign, is_legit in table.select(
        "caller", "label", "campaign_id", "is_legit_bulk"
    ).iter_rows():
        assert label == truth.get(caller, NORMAL)
        assert (campaign is None) == (label == NORMAL)
        assert is_legit == (caller in legit)
    assert table.filter(pl.col("is_legit_bulk"))["label"].unique().to_list() == [NORMAL]


def test_every_campaign_is_listed_with_its_first_call(
    small_dir: Path, small_data: TrainingData
) -> None:
    calls = read_parquet_dir(small_dir)
    campaigns = small_data.campaigns
    assert campaigns.height == calls.ground_truth["campaign_id"].n_unique()
    first = (
        calls.cdrs.join(
            calls.ground_truth.select(caller="number", campaign_id="campaign_id"), on="caller"
        )
        .group_by("campaign_id")
        .agg(pl.col("start_ms").min())
        .sort("campaign_id")
    )
    joined = campaigns.join(first, on="campaign_id")
    assert (joined["first_call_ms"] == joined["start_ms"]).all()


def test_table_digest_ignores_row_order_but_not_values(small_data: TrainingData) -> None:
    table = small_data.table
    digest = table_sha256(table)
    assert len(digest) == 64
    assert table_sha256(table.sample(fraction=1.0, shuffle=True, seed=1)) == digest
    changed = table.with_columns(pl.col("short_call_volume") + (pl.int_range(pl.len()) == 0))
    assert table_sha256(changed) != digest


def test_normal_sampling_keeps_whole_callers_and_weights_them(small_dir: Path) -> None:
    full = build_training_table(small_dir)
    sampled = build_training_table(small_dir, DatasetConfig(normal_fraction=0.5))
    ordinary = (pl.col("label") == NORMAL) & ~pl.col("is_legit_bulk")
    assert sampled.filter(~ordinary).height == full.filter(~ordinary).height
    kept = sampled.filter(ordinary)
    assert set(kept["weight"].unique()) <= {2.0}
    for caller in kept["caller"].unique():
        assert kept.filter(pl.col("caller") == caller).height == full.filter(
            pl.col("caller") == caller
        ).height


def test_missing_parquet_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="cdrs.parquet"):
        read_parquet_dir(tmp_path)


# --- split and thresholds -------------------------------------------------------------------


def test_split_holds_out_whole_campaigns_and_a_later_period(
    small_data: TrainingData, trained: TrainingResult
) -> None:
    split, table = trained.split, small_data.table
    parts = split.campaigns
    assert set(parts["fit"]).isdisjoint(parts["test"])
    assert set(parts["fit"]).isdisjoint(parts["validation"])
    assert set(parts["validation"]).isdisjoint(parts["test"])
    assert not (split.fit & split.test).any()
    assert not (split.fit & split.validation).any()
    end_ms = table["end_ms"].to_numpy()
    assert (end_ms[split.fit] < split.split_ms).all()
    assert (end_ms[split.test] >= split.split_ms).all()
    campaign = table["campaign_id"].to_numpy()
    fit_campaigns = set(campaign[split.fit & table["campaign_id"].is_not_null().to_numpy()])
    assert fit_campaigns <= set(parts["fit"])
    assert parts["test"], "the small set must hold out at least one campaign"


def test_threshold_is_the_lowest_score_that_keeps_the_precision() -> None:
    truth = np.array([False, True, False, True, True, True])
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.8, 0.9])
    assert threshold_for_precision(truth, scores, 0.99) == 0.4
    assert threshold_for_precision(truth, scores, 0.7) == 0.2
    assert threshold_for_precision(truth, np.array([0.9] * 6), 0.99) is None
    assert threshold_for_precision(np.zeros(3, bool), np.ones(3), 0.5) is None


# --- the quality targets ----------------------------------------------------------------------


def test_a_one_segment_simulator_is_caught_by_the_single_feature_check(tmp_path: Path) -> None:
    # Every campaign dials through one number segment, every other caller many:
    # the split a model trained on it would learn, and must be warned about.
    one_segment = {
        category: shape.model_copy(update={"callees": {"segment_sequential": 1.0}})
        for category, shape in DEFAULT_SHAPES.items()
    }
    scenario = with_overrides(training_scenario("small"), campaigns={"shapes": one_segment})
    write_parquet(scenario, tmp_path, progress=False)
    # One classifier (no second paths): the check is about the training table.
    options = TrainingOptions(min_class_rows=10, called=None, complaints=False)
    result = train(build_training_data(tmp_path), options=options)
    assert result.separation["long_distinct_segments"] >= 0.99
    assert any(line.startswith("long_distinct_segments alone") for line in result.warnings)
    assert "warning: long_distinct_segments alone" in result.report
    card = render_model_card(ModelRegistry(tmp_path / "models").register(
        result.model, result.draft()
    ))
    assert "**Warning**: long_distinct_segments alone" in card


def test_the_default_family_has_no_single_feature_rule(tmp_path: Path) -> None:
    write_parquet(training_scenario("default"), tmp_path, progress=False)
    table = build_training_data(tmp_path).table
    separation = single_feature_separation(
        table.select(FEATURE_NAMES).to_numpy(),
        table["label"].to_numpy().astype(str),
        FEATURE_NAMES,
        table["weight"].to_numpy(),
    )
    assert len(separation) == len(FEATURE_NAMES)
    assert separation_warnings(separation) == [], separation


def test_every_quality_target_is_measured_and_judged(trained: TrainingResult) -> None:
    """Each target gets a value and a verdict; the figures themselves are the report's."""
    report = {target.metric: (value, met) for target, value, met in check_targets(trained.metrics)}
    assert set(report) == {target.metric for target in TARGETS}
    assert all(value is not None and not np.isnan(value) for value, _met in report.values())
    for target in TARGETS:
        assert target.metric in trained.report


def test_thresholds_are_ordered_and_reported(trained: TrainingResult) -> None:
    assert 0 < trained.thresholds["watch"] <= trained.thresholds["block"] <= 1
    assert trained.metrics["validation.block_target_reached"] == 1.0
    assert "MET" in trained.report and "block" in trained.report
    assert "without calls received" in trained.report  # each second path's own thresholds
    assert "without a complaint about the number" in trained.report
    assert isinstance(trained.model, ComplaintPaths)
    target = (trained.thresholds["watch"], trained.thresholds["block"])
    for paths in (trained.model, trained.model.reported):
        assert paths.alignment.target == target
        assert 0 < paths.alignment.source[0] <= paths.alignment.source[1] <= 1
    # Each complaint path has its own path for rows without calls received.
    assert isinstance(trained.model.reported, CalledPaths)
    assert isinstance(trained.model.unreported, CalledPaths)


# --- registry and scoring -----------------------------------------------------------------------


def test_candidate_registers_promotes_only_first_and_scores(
    tmp_path: Path, small_data: TrainingData, trained: TrainingResult
) -> None:
    registry = ModelRegistry(tmp_path)
    first = register_candidate(trained, registry)
    assert registry.current() is not None and registry.current().version == first.version
    assert first.training_data_sha256 == table_sha256(small_data.table)
    assert first.metrics["pr_auc"] == trained.metrics["pr_auc"]
    card = registry.card(first.version)
    assert "Quality targets" in card and "minutes_to_first_flag_median" in card

    loaded = registry.load(first.version)
    scorer = BatchScorer(loaded)
    table = small_data.table.filter(pl.Series(trained.split.test))
    scores = scorer.score(
        table["caller"].to_list(), table["end_ms"].to_list(), table.select(FEATURE_NAMES).to_numpy()
    )
    flagged = [s for s, label in zip(scores, table["label"], strict=True)
               if s.probability >= first.thresholds["block"]]
    assert flagged and all(s.reasons for s in flagged)
    assert {s.category for s in scores} <= set(first.classes) - {NORMAL}
    # The second signal travels with the model: the same anomalies as at training.
    assert scorer.population is not None and scorer.review == trained.review
    assert trained.review.block_anomaly == TrainingOptions().block_min_anomaly > 0
    # ... with the features of calls received hidden where the feed has not yet shown them.
    assert trained.called is not None and called_of(loaded.metadata) == trained.called
    served = CalledEvidence(FEATURE_NAMES, trained.called).mask(
        table.select(FEATURE_NAMES).to_numpy().astype(np.float64)
    )
    expected = trained.population.anomaly(served, FEATURE_NAMES)
    np.testing.assert_allclose([s.anomaly for s in scores], expected, atol=1e-5)
    assert max(s.anomaly for s in scores) > 1.0


def test_later_candidates_are_not_promoted_by_default(
    tmp_path: Path, trained: TrainingResult
) -> None:
    registry = ModelRegistry(tmp_path)
    first = register_candidate(trained, registry)
    second = register_candidate(trained, registry)
    assert registry.current().version == first.version != second.version
    register_candidate(trained, registry, promote=True, actor="ana", why="better recall")
    assert registry.current().version != first.version


def test_cli_trains_reports_and_registers(small_training: CliTraining) -> None:
    # `callguard train --data DIR --evaluate-on DIR --promote` (the session's training):
    # the family measured number by number is the same data, to keep the tests fast; in
    # service it is a family never trained on.
    out = small_training.stdout
    assert "pr_auc" in out and "MET" in out
    assert "(serving)" in out
    assert "by number" in out and "heldout" in out
    registered = ModelRegistry(small_training.registry).show(small_training.version)
    measured = [key for key in registered.metrics if key.startswith("heldout.callers.")]
    assert measured and all(registered.metrics[key] > 0 for key in measured)
    assert "heldout" in render_model_card(registered)


def test_further_families_are_measured_beside_the_first(
    small_dir: Path, small_data: TrainingData, tmp_path: Path, trained: TrainingResult
) -> None:
    # Two families given as Parquet dirs (the same data, to keep the test fast): the
    # first under heldout., the second under its own prefix, side by side in the card.
    calls, data = read_parquet_dir(small_dir), small_data
    both = with_family_evaluation(trained, data, calls, "heldout")
    both = with_family_evaluation(both, data, calls, str(small_dir / "week 2"), primary=False)
    prefix = family_prefix(str(small_dir / "week 2"))
    assert prefix == "family_week_2"
    for key in [k for k in both.metrics if k.startswith("heldout.")]:
        assert both.metrics[f"{prefix}.{key.removeprefix('heldout.')}"] == pytest.approx(
            both.metrics[key], nan_ok=True), key
    header = caller_table(both.metrics)[0].split()
    assert header == ["holdout", "heldout", "week_2"]
    assert both.report.count("never trained on: ") == 2
    assert "week_2" in render_model_card(
        register_candidate(both, ModelRegistry(tmp_path)))


def test_cli_refuses_none_among_families(tmp_path: Path) -> None:
    refused = CliRunner().invoke(
        app, ["--simulate", "tiny", "--registry", str(tmp_path), "--evaluate-on", "heldout,none"]
    )
    assert refused.exit_code == 2 and "'none' cannot be combined" in refused.output


def test_cli_refuses_both_or_neither_source(tmp_path: Path) -> None:
    assert CliRunner().invoke(app, ["--registry", str(tmp_path)]).exit_code == 2
    both = ["--data", str(tmp_path), "--simulate", "tiny"]
    assert CliRunner().invoke(app, both).exit_code == 2
    missing = CliRunner().invoke(app, ["--data", str(tmp_path / "none"), "--no-register"])
    assert missing.exit_code == 2
    assert "cdrs.parquet" in missing.output


def test_training_refuses_a_model_that_learned_nothing(small_data: TrainingData) -> None:
    # Labels shuffled across rows: no feature follows them, so the hold-out PR-AUC
    # falls to about the nuisance share and training says so instead of serving it.
    table = small_data.table
    labels = table.select(pl.struct("label", "campaign_id").shuffle(seed=3).alias("moved"))
    shuffled = table.drop("label", "campaign_id").hstack(labels.unnest("moved"))
    with pytest.raises(ValueError, match="did not learn to separate nuisance from normal"):
        train(TrainingData(table=shuffled, campaigns=small_data.campaigns),
              options=TrainingOptions(called=None, complaints=False))


@pytest.mark.parametrize("minimums", [{"min_short_calls": 0}, {"min_long_calls": 0}])
def test_dataset_minimums_are_checked_by_the_emission_rule(minimums: dict[str, int]) -> None:
    message = "min_short_calls and min_long_calls must be at least 1"
    with pytest.raises(ValueError, match=message) as raised:
        DatasetConfig(**minimums)
    assert "min_calls and min_long_calls" in str(raised.value.__cause__)  # EmissionPolicy's
    assert DatasetConfig(min_short_calls=1, min_long_calls=1).emission.min_long_calls == 1
