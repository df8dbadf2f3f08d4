"""How the labelled table is cut for training: by campaign and by time.

Every campaign goes whole to one of three parts, category by category, in a
seeded order: *fit* (the model learns from it), *validation* (thresholds are
chosen on it) or *test* (the hold-out the metrics are reported on). So the
validation and test campaigns are never seen in training, as new campaigns
are not in service.

Time: rows whose window ends before ``split_ms`` (by default the
``train_share`` quantile of window ends) are the training period; later rows
are the test period. Normal callers are split by a hash of the number into
fit and validation callers; in the test period every normal caller counts,
as legitimate callers seen in training do come back in service.

The test rows are the test period's rows of normal callers and test
campaigns. Test campaigns' earlier rows are scored too, for the time from a
campaign's first call to its first flag (:attr:`Split.latency`); the model
has seen none of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from models.dataset import NORMAL, stable_unit_interval

__all__ = ["Split", "assign_campaigns", "split_table"]

# Campaigns of one category are dealt in this order: half to fit, a quarter
# each to test and validation; a category with one campaign only trains.
_DEAL = ("fit", "test", "validation", "fit")
_VALIDATION_CALLER_SHARE = 0.25  # share of normal callers kept for validation


@dataclass(frozen=True)
class Split:
    """Boolean row masks over the table, and what the cut was."""

    fit: NDArray[np.bool_]
    validation: NDArray[np.bool_]
    test: NDArray[np.bool_]
    latency: NDArray[np.bool_]
    split_ms: int
    campaigns: dict[str, tuple[int, ...]]

    def describe(self) -> str:
        """One line for logs and the model card."""
        counts = ", ".join(f"{part} {len(ids)}" for part, ids in self.campaigns.items())
        return (
            f"rows: fit {int(self.fit.sum())}, validation {int(self.validation.sum())}, "
            f"test {int(self.test.sum())}; campaigns: {counts}; test period from "
            f"{self.split_ms} ms"
        )


def assign_campaigns(campaign_categories: pl.DataFrame, seed: int) -> dict[int, str]:
    """``campaign_id -> 'fit' | 'validation' | 'test'``, dealt per category in seeded order.

    >>> frame = pl.DataFrame({"campaign_id": [1, 2, 3], "category": ["a", "a", "b"]})
    >>> sorted(assign_campaigns(frame, seed=0).values())
    ['fit', 'fit', 'test']
    """
    rng = np.random.default_rng(seed)
    parts: dict[int, str] = {}
    grouped = campaign_categories.unique("campaign_id").sort("category", "campaign_id")
    for _category, group in grouped.group_by("category", maintain_order=True):
        ids = group["campaign_id"].to_numpy()
        for position, campaign in enumerate(rng.permutation(ids)):
            parts[int(campaign)] = _DEAL[position % len(_DEAL)]
    return parts


def split_table(
    table: pl.DataFrame, *, seed: int, train_share: float = 0.6, split_ms: int | None = None
) -> Split:
    """Cut ``table`` (from :func:`models.dataset.build_training_table`) as described above."""
    if split_ms is None:
        if not 0.0 < train_share < 1.0:
            raise ValueError(f"train_share must be in (0, 1), got {train_share}")
        split_ms = int(table["end_ms"].quantile(train_share, interpolation="nearest") or 0)
    nuisance = table.filter(pl.col("label") != NORMAL)
    parts = assign_campaigns(nuisance.select("campaign_id", category="label"), seed)
    part_of_row = table.select(
        pl.col("campaign_id").replace_strict(parts, default=None, return_dtype=pl.String)
    ).to_series()
    validation_caller = (
        stable_unit_interval(table["caller"]) < _VALIDATION_CALLER_SHARE
    ).to_numpy()
    is_normal = (table["label"] == NORMAL).to_numpy()
    earlier = (table["end_ms"] < split_ms).to_numpy()
    part = part_of_row.fill_null("").to_numpy()
    fit = earlier & ((is_normal & ~validation_caller) | (part == "fit"))
    validation = earlier & ((is_normal & validation_caller) | (part == "validation"))
    test = ~earlier & (is_normal | (part == "test"))
    campaigns = {
        name: tuple(sorted(c for c, p in parts.items() if p == name))
        for name in ("fit", "validation", "test")
    }
    return Split(fit, validation, test, part == "test", split_ms, campaigns)
