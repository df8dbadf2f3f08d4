"""Measures of a trained model on held-out rows, and thresholds from target precisions.

Row-level measures count scored rows (a caller at a window end), as the
worker scores them. The *nuisance score* of a row is its largest
nuisance-class probability (:func:`models.scoring.nuisance_scores`); a row
is flagged at a tier when its score reaches that tier's threshold, and its
predicted category is the class giving the score.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from numpy.typing import NDArray
from sklearn.metrics import average_precision_score, precision_recall_curve

from models.dataset import NORMAL

__all__ = [
    "classification_metrics",
    "false_flag_metrics",
    "threshold_for_precision",
    "time_to_flag_metrics",
]

_MINUTE_MS = 60_000


def threshold_for_precision(
    is_nuisance: NDArray[np.bool_],
    scores: NDArray[np.float64],
    target: float,
    weights: NDArray[np.float64] | None = None,
) -> float | None:
    """The lowest threshold above which precision stays at or above ``target``.

    "Stays": every higher threshold must reach ``target`` too, so one lucky
    point on a noisy curve does not set the threshold. ``None`` when no
    threshold reaches it (or there is no nuisance row).

    >>> truth = np.array([False, False, True, True, True])
    >>> threshold_for_precision(truth, np.array([0.1, 0.6, 0.5, 0.7, 0.9]), 0.99)
    0.7
    """
    if not is_nuisance.any():
        return None
    precision, _recall, thresholds = precision_recall_curve(
        is_nuisance, scores, sample_weight=weights
    )
    # precision[i] is the precision of scores >= thresholds[i]; the last entry is a sentinel.
    from_the_top = np.minimum.accumulate(precision[:-1][::-1])[::-1]
    passing = np.flatnonzero(from_the_top >= target)
    return float(thresholds[passing[0]]) if passing.size else None


def classification_metrics(
    labels: NDArray[np.str_],
    probabilities: NDArray[np.float64],
    classes: Sequence[str],
    scores: NDArray[np.float64],
    categories: NDArray[np.intp],
    thresholds: dict[str, float],
    weights: NDArray[np.float64] | None = None,
) -> dict[str, float]:
    """PR-AUC, precision and recall: any nuisance vs normal, per tier and per category.

    Keys: ``pr_auc``, ``<tier>_precision``/``_recall`` (any nuisance at or
    above the tier), ``pr_auc.<category>``, ``precision.<category>``,
    ``recall.<category>`` (at ``watch``, the category must be right too),
    ``rows.<category>``. A category absent from ``labels`` has no entries.
    """
    weights = np.ones(len(labels)) if weights is None else weights
    is_nuisance = labels != NORMAL
    metrics: dict[str, float] = {
        "rows": float(len(labels)),
        "rows.nuisance": float(is_nuisance.sum()),
    }
    if is_nuisance.any() and (~is_nuisance).any():
        metrics["pr_auc"] = float(
            average_precision_score(is_nuisance, scores, sample_weight=weights)
        )
    for tier, threshold in thresholds.items():
        flagged = scores >= threshold
        metrics[f"{tier}_precision"] = _share(weights, flagged & is_nuisance, flagged)
        metrics[f"{tier}_recall"] = _share(weights, flagged & is_nuisance, is_nuisance)
    predicted = np.asarray(classes)[categories]
    watched = scores >= thresholds["watch"]
    for column, category in enumerate(classes):
        truth = labels == category
        if category == NORMAL or not truth.any():
            continue
        hit = watched & (predicted == category)
        metrics[f"rows.{category}"] = float(truth.sum())
        metrics[f"pr_auc.{category}"] = float(
            average_precision_score(truth, probabilities[:, column], sample_weight=weights)
        )
        metrics[f"precision.{category}"] = _share(weights, hit & truth, hit)
        metrics[f"recall.{category}"] = _share(weights, hit & truth, truth)
    return metrics


def false_flag_metrics(
    callers: pl.Series, is_legit: NDArray[np.bool_], scores: NDArray[np.float64], watch: float
) -> dict[str, float]:
    """Legitimate bulk callers flagged (watch or above): share of callers and of their rows."""
    legit_callers = callers.filter(pl.Series(is_legit))
    flagged = callers.filter(pl.Series(is_legit & (scores >= watch)))
    count = legit_callers.n_unique()
    return {
        "legit_callers": float(count),
        "legit_false_flag_rate": flagged.n_unique() / count if count else float("nan"),
        "legit_row_false_flag_rate": _share(
            np.ones(len(scores)), is_legit & (scores >= watch), is_legit
        ),
    }


def time_to_flag_metrics(
    rows: pl.DataFrame, scores: NDArray[np.float64], watch: float, campaigns: pl.DataFrame
) -> dict[str, float]:
    """Event time from a campaign's first call to its first flagged row, in minutes.

    ``rows``: ``caller, end_ms, campaign_id, first_call_ms`` of every scored
    row of the campaigns to measure; ``campaigns``: ``campaign_id,
    first_call_ms`` of those campaigns. A row counts as flagged at its window
    end, the latest moment the worker could have flagged it, so these are
    upper bounds. A campaign never flagged counts as infinitely late, so the
    median is infinite when half the campaigns are never flagged. Also: the
    same to the campaign's first *scored* row, whatever its score (the
    worker scores a number only from its fifth call in the short window on,
    so no model can flag sooner), and per number (each rotated number from
    its own first call).
    """
    flagged = rows.with_columns(flagged=pl.Series(scores >= watch)).filter("flagged")
    first_flags = flagged.group_by("campaign_id").agg(pl.col("end_ms").min().alias("flag_ms"))
    per_campaign = campaigns.join(first_flags, on="campaign_id", how="left").with_columns(
        minutes=(pl.col("flag_ms") - pl.col("first_call_ms")) / _MINUTE_MS
    )
    campaign_minutes = per_campaign["minutes"].fill_null(float("inf")).to_numpy()
    first_rows = rows.group_by("campaign_id").agg(pl.col("end_ms").min().alias("row_ms"))
    scored_minutes = (
        campaigns.join(first_rows, on="campaign_id", how="left")
        .select((pl.col("row_ms") - pl.col("first_call_ms")) / _MINUTE_MS)
        .to_series()
        .fill_null(float("inf"))
        .to_numpy()
    )
    numbers = rows.group_by("caller").agg(pl.col("first_call_ms").first())
    number_flags = flagged.group_by("caller").agg(pl.col("end_ms").min().alias("flag_ms"))
    per_number = numbers.join(number_flags, on="caller", how="left").with_columns(
        minutes=(pl.col("flag_ms") - pl.col("first_call_ms")) / _MINUTE_MS
    )
    number_minutes = per_number["minutes"].fill_null(float("inf")).to_numpy()
    return {
        "campaigns_measured": float(len(campaign_minutes)),
        "campaigns_flagged_share": _finite_share(campaign_minutes),
        "minutes_to_first_flag_median": _median(campaign_minutes),
        "minutes_to_first_scored_row_median": _median(scored_minutes),
        "numbers_flagged_share": _finite_share(number_minutes),
        "number_minutes_to_first_flag_median": _median(number_minutes),
    }


def _share(
    weights: NDArray[np.float64], numerator: NDArray[np.bool_], denominator: NDArray[np.bool_]
) -> float:
    bottom = float(weights[denominator].sum())
    return float(weights[numerator].sum()) / bottom if bottom else float("nan")


def _median(values: NDArray[np.float64]) -> float:
    return float(np.median(values)) if len(values) else float("nan")


def _finite_share(values: NDArray[np.float64]) -> float:
    return float(np.isfinite(values).mean()) if len(values) else float("nan")
