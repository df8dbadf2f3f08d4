"""Complaints as weak labels: numbers enough people reported, labelled by their reports."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from models.complaint_labels import complaint_truth
from models.dataset import DatasetConfig, build_training_data, read_parquet_dir
from models.operator_labels import own_campaign_id
from models.train_cli import app

A, B, C = "+8613800000001", "+8613800000002", "+8613800000003"


def reports(*rows: tuple[str, str, str | None]) -> pl.DataFrame:
    return pl.DataFrame(
        {"reported": [r[0] for r in rows], "reporter": [r[1] for r in rows],
         "category": [r[2] for r in rows]},
        schema={"reported": pl.String, "reporter": pl.String, "category": pl.String},
    )


def test_a_number_is_labelled_once_enough_different_people_reported_it() -> None:
    frame = reports(
        (A, "r1", "debt_collection"), (A, "r2", "debt_collection"), (A, "r3", "fraud"),
        (B, "r1", "fraud"), (B, "r1", "fraud"), (B, "r1", "fraud"),  # one person, thrice
        (C, "r1", "one_ring"), (C, "r2", "one_ring"),
    )
    truth = complaint_truth(frame, min_reporters=3)
    assert truth.select("number", "category").rows() == [(A, "debt_collection")]
    assert truth["campaign_id"].to_list() == [own_campaign_id(A)] and own_campaign_id(A) < 0
    assert complaint_truth(frame, min_reporters=2)["number"].to_list() == [A, C]
    assert complaint_truth(frame, min_reporters=0).is_empty()


def test_the_excluded_and_the_uncategorised_are_left_out() -> None:
    frame = reports((A, "r1", "fraud"), (A, "r2", "fraud"), (B, "r1", None), (B, "r2", None),
                    (C, "r1", None), (C, "r2", "one_ring"))
    truth = complaint_truth(frame, min_reporters=2, exclude={A})
    assert truth.select("number", "category").rows() == [(C, "one_ring")]
    assert complaint_truth(frame.drop("reporter"), min_reporters=2).is_empty()


def test_a_negative_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="complaint_label_reporters must be 0"):
        DatasetConfig(complaint_label_reporters=-1)


def test_traffic_without_ground_truth_is_labelled_by_its_complaints(
    small_dir: Path, tmp_path: Path
) -> None:
    carrier = tmp_path / "carrier"
    carrier.mkdir()
    for name in ("cdrs", "complaints"):
        shutil.copy(small_dir / f"{name}.parquet", carrier / f"{name}.parquet")
    calls = read_parquet_dir(carrier)
    assert calls.ground_truth.is_empty() and calls.legit_callers.is_empty()

    data = build_training_data(calls, DatasetConfig(complaint_label_reporters=2))
    nuisance = data.table.filter(pl.col("label") != "normal")
    assert nuisance.height > 0
    truth = read_parquet_dir(small_dir).ground_truth.select(
        pl.col("number").alias("caller"), pl.col("category").alias("true")
    )
    judged = nuisance.select("caller", "label").unique().join(truth, on="caller", how="left")
    # Reports are noisy, but numbers two or more people reported are nearly all nuisance
    # numbers, and the category most of them named is the campaign's.
    assert judged["true"].is_not_null().mean() >= 0.9
    assert (judged.drop_nulls("true")["label"] == judged.drop_nulls("true")["true"]).mean() >= 0.9
    assert set(data.campaigns["campaign_id"].to_list()) == set(
        nuisance["campaign_id"].unique().to_list()
    )

    unlabelled = build_training_data(calls, DatasetConfig(complaint_label_reporters=0))
    assert (unlabelled.table["label"] == "normal").all()


def test_ground_truth_wins_over_complaints(small_dir: Path) -> None:
    calls = read_parquet_dir(small_dir)
    with_weak = build_training_data(calls, DatasetConfig(complaint_label_reporters=1)).table
    without = build_training_data(calls, DatasetConfig(complaint_label_reporters=0)).table
    known = set(calls.ground_truth["number"].to_list())
    weak_only = with_weak.filter(
        ~pl.col("caller").is_in(list(known)) & (pl.col("label") != "normal")
    )
    same = with_weak.filter(pl.col("caller").is_in(list(known))).select("caller", "end_ms", "label")
    assert same.sort("caller", "end_ms").equals(
        without.filter(pl.col("caller").is_in(list(known)))
        .select("caller", "end_ms", "label").sort("caller", "end_ms")
    )
    # Reports against numbers outside the ground truth (the simulator's noise) can still
    # label a number with one reporter: that is what the default minimum of 3 is for.
    assert weak_only["caller"].n_unique() <= calls.complaints["reported"].n_unique()


def test_training_without_ground_truth_says_where_its_labels_come_from(
    small_dir: Path, tmp_path: Path
) -> None:
    carrier = tmp_path / "carrier"
    carrier.mkdir()
    # The first two hours of the export: the message comes before any training.
    calls = read_parquet_dir(small_dir)
    end_ms = calls.cdrs["start_ms"].min() + 2 * 3_600_000
    calls.cdrs.filter(pl.col("start_ms") < end_ms).write_parquet(carrier / "cdrs.parquet")
    calls.complaints.filter(pl.col("time_ms") < end_ms).write_parquet(
        carrier / "complaints.parquet")
    shutil.copy(small_dir / "legit_callers.parquet", carrier / "legit_callers.parquet")
    result = CliRunner().invoke(
        app, ["--data", str(carrier), "--registry", str(tmp_path / "models"),
              "--evaluate-on", "none", "--no-register"],
    )
    # Whether it trains or refuses (too few labelled rows), the user is told why the
    # labels are what they are.
    assert "has no ground_truth.parquet" in result.stderr, result.output
    assert "complaints" in result.stderr
