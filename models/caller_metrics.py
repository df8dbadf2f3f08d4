"""Caller-level detection figures: who was flagged, how soon, and who should not have been.

Row metrics (:mod:`models.training_metrics`) judge each scored window; an
operator judges numbers. Here a number is *flagged* at a tier when any of
its scored rows reaches the tier's threshold, as the worker flags it the
first time it emits such a row; time to first flag runs from the number's
first call to the end of that row's window, in event time.

:func:`caller_metrics` is what ``callguard train`` reports for the
in-distribution hold-out and for a scenario family held out of training
(:func:`evaluate_family`), so the two can be set side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from features.vector import FEATURE_NAMES
from models.called_evidence import CalledPolicy, called_shown_in_time_order
from models.complaint_paths import block_agreed
from models.dataset import NORMAL, LabelledCalls
from models.population import (
    NEVER,
    PopulationReference,
    ReviewRule,
    effective_scores,
    may_block,
)
from models.scoring import nuisance_scores, predict_proba

__all__ = ["caller_metrics", "caller_roster", "evaluate_family", "table_roster"]

_MINUTE_MS = 60_000.0


def caller_roster(calls: LabelledCalls) -> pl.DataFrame:
    """Every caller of the CDRs: ``caller, category`` (null if not nuisance), ``kind``, first call.

    ``kind`` is ``nuisance``, ``legit_bulk`` or ``ordinary``.
    """
    truth = calls.ground_truth.select(
        pl.col("number").alias("caller"), pl.col("category").cast(pl.String)
    ).unique("caller", keep="first")
    legit = calls.legit_callers.select(pl.col("number").alias("caller")).unique()
    return _with_kind(
        calls.cdrs.group_by("caller")
        .agg(pl.col("start_ms").min().alias("first_call_ms"))
        .join(truth, on="caller", how="left")
        .join(legit.with_columns(legit=pl.lit(True)), on="caller", how="left")
    )


def table_roster(table: pl.DataFrame) -> pl.DataFrame:
    """:func:`caller_roster` of the callers with rows in a labelled table (no CDRs needed)."""
    return _with_kind(
        table.group_by("caller").agg(
            pl.col("label").filter(pl.col("label") != NORMAL).first().alias("category"),
            pl.col("is_legit_bulk").any().alias("legit"),
            pl.col("first_call_ms").min(),
        )
    )


def _with_kind(callers: pl.DataFrame) -> pl.DataFrame:
    return callers.select(
        "caller",
        "category",
        pl.when(pl.col("category").is_not_null())
        .then(pl.lit("nuisance"))
        .when(pl.col("legit").fill_null(False))
        .then(pl.lit("legit_bulk"))
        .otherwise(pl.lit("ordinary"))
        .alias("kind"),
        "first_call_ms",
    )


def caller_metrics(
    rows: pl.DataFrame,
    scores: NDArray[np.float64],
    thresholds: Mapping[str, float],
    roster: pl.DataFrame,
    prefix: str,
    blockable: NDArray[np.bool_] | None = None,
) -> dict[str, float]:
    """Per-category recall, precision and false flags by number; minutes to first flag.

    ``rows``: scored rows (``caller, end_ms, label``) with their ``scores``.
    ``blockable``: rows whose block-level score may block (the population
    agrees, :func:`models.population.may_block`, and so do the model's paths,
    :func:`models.complaint_paths.block_agreed`); others count as watch.
    ``roster``: the callers to judge (:func:`caller_roster`); callers of the
    roster without a scored row count as not flagged. A nuisance number's
    rows count from its labelled (active) period only, so a number flagged
    only after its campaign ended is not counted as caught.

    Keys (each under ``prefix.``): ``recall.<category>`` (watch or block),
    ``block_recall.<category>``, ``callers.<category>``, ``block_precision``,
    ``flag_precision``, ``legit_flagged_share``, ``ordinary_flagged_share``,
    ``minutes_to_first_flag_median`` and ``_p90``.
    """
    frame = rows.select("caller", "end_ms", "label").with_columns(
        score=pl.Series(scores),
        blockable=pl.Series(np.ones(len(scores), bool) if blockable is None else blockable),
    )
    frame = frame.join(roster.select("caller", "kind"), on="caller", how="inner")
    counts = frame.filter((pl.col("kind") != "nuisance") | (pl.col("label") != NORMAL))
    firsts = {
        tier: counts.filter(
            (pl.col("score") >= threshold) & (pl.col("blockable") | (tier != "block"))
        )
        .group_by("caller")
        .agg(pl.col("end_ms").min().alias(f"{tier}_ms"))
        for tier, threshold in thresholds.items()
    }
    judged = roster
    for tier in ("watch", "block"):
        judged = judged.join(firsts[tier], on="caller", how="left")
    judged = judged.with_columns(
        flagged=pl.col("watch_ms").is_not_null() | pl.col("block_ms").is_not_null(),
        blocked=pl.col("block_ms").is_not_null(),
        first_flag_ms=pl.min_horizontal("watch_ms", "block_ms"),
    )
    metrics: dict[str, float] = {}
    nuisance = judged.filter(pl.col("kind") == "nuisance")
    for category, group in nuisance.group_by("category"):
        name = str(category[0])
        metrics[f"{prefix}.callers.{name}"] = float(group.height)
        metrics[f"{prefix}.recall.{name}"] = _mean(group["flagged"])
        metrics[f"{prefix}.block_recall.{name}"] = _mean(group["blocked"])
    for kind in ("legit_bulk", "ordinary"):
        group = judged.filter(pl.col("kind") == kind)
        metrics[f"{prefix}.{kind.split('_')[0]}_flagged_share"] = _mean(group["flagged"])
        metrics[f"{prefix}.{kind.split('_')[0]}_callers"] = float(group.height)
    for tier, column in (("block", "blocked"), ("flag", "flagged")):
        chosen = judged.filter(pl.col(column))
        metrics[f"{prefix}.{tier}_precision"] = _mean(chosen["kind"] == "nuisance")
        metrics[f"{prefix}.{column}_numbers"] = float(chosen.height)
    minutes = (
        nuisance.filter(pl.col("flagged"))
        .select((pl.col("first_flag_ms") - pl.col("first_call_ms")) / _MINUTE_MS)
        .to_series()
        .to_numpy()
    )
    metrics[f"{prefix}.minutes_to_first_flag_median"] = _quantile(minutes, 0.5)
    metrics[f"{prefix}.minutes_to_first_flag_p90"] = _quantile(minutes, 0.9)
    return metrics


def evaluate_family(
    model: Any,
    classes: Sequence[str],
    thresholds: Mapping[str, float],
    table: pl.DataFrame,
    calls: LabelledCalls,
    prefix: str = "heldout",
    *,
    population: PopulationReference | None = None,
    review: ReviewRule = NEVER,
    called: CalledPolicy | None = None,
) -> dict[str, float]:
    """:func:`caller_metrics` of ``model`` on the labelled table of another scenario family.

    With a ``population`` reference, callers the ``review`` rule puts on
    watch count as flagged, as the worker flags them. With a ``called``
    policy, rows are scored with the features of calls received only where
    the worker would (:func:`models.called_evidence.called_shown_in_time_order`).
    """
    matrix = table.select(FEATURE_NAMES).to_numpy().astype(np.float64)
    if called is not None:
        matrix = called_shown_in_time_order(
            matrix, table["end_ms"].to_numpy(), FEATURE_NAMES, called
        )
    scores, _ = nuisance_scores(predict_proba(model, matrix), classes)
    if population is not None:
        anomaly = population.anomaly(matrix, FEATURE_NAMES)
        long_calls = table["long_call_volume"].to_numpy().astype(np.float64)
        blockable = may_block(anomaly, review, long_calls)
        blockable &= block_agreed(model, matrix, scores, blockable)
        scores = effective_scores(scores, anomaly, thresholds["watch"], review)
    else:
        blockable = None
    return caller_metrics(table, scores, thresholds, caller_roster(calls), prefix, blockable)


def _mean(values: pl.Series) -> float:
    return float(values.cast(pl.Float64).mean()) if len(values) else float("nan")  # type: ignore[arg-type]


def _quantile(values: NDArray[np.float64], q: float) -> float:
    return float(np.quantile(values, q)) if len(values) else float("nan")
