"""Complaints as weak labels: numbers many people reported, labelled by what they reported.

A carrier retraining on its own traffic has no ground truth. What it has are
its subscribers' reports (the 12321 centre, its own reporting lines, marking
in phone-safety apps), each naming a number and usually a kind of call, and
its operators' decisions (:mod:`models.operator_labels`). Reports are noisy:
people mistype numbers, report a courier who called twice, or report out of
spite; one reporter says little, several who do not know each other say a
lot.

:func:`complaint_truth` turns the reports into rows shaped like the ground
truth: a number reported by at least ``min_reporters`` different people in
the data is a nuisance number of the category most of its reports named
(ties: the first in name order), for the whole of the data, as a campaign of
its own (the same negative id an operator's label of it gets, so both fall
on the same side of the training split). Numbers left out: those the ground
truth already names (it wins), legitimate bulk callers (the allow-list), and
numbers an operator judged normal. Reports that name no category count as
reporters but do not choose the category; a number none of whose reports
named one is left out.
"""

from __future__ import annotations

from collections.abc import Collection

import polars as pl

from models.operator_labels import own_campaign_id

__all__ = ["complaint_truth"]

# active_from / active_to of a weakly labelled number: the whole of the data.
_ALWAYS = (-(2**62), 2**62)


def complaint_truth(
    complaints: pl.DataFrame, *, min_reporters: int, exclude: Collection[str] = ()
) -> pl.DataFrame:
    """``number, category, campaign_id, active_from, active_to`` for numbers enough people reported.

    ``complaints`` needs ``reported`` and ``reporter``, and ``category`` to
    label anything; without them, or with ``min_reporters`` 0, nothing is
    labelled.

    >>> reports = pl.DataFrame({
    ...     "reported": ["+8613800000001"] * 4 + ["+8613800000002"] * 2,
    ...     "reporter": ["a", "b", "c", "c", "a", "b"],
    ...     "category": ["fraud", "fraud", "debt_collection", "fraud", "fraud", "fraud"],
    ... })
    >>> complaint_truth(reports, min_reporters=3).select("number", "category").rows()
    [('+8613800000001', 'fraud')]
    """
    empty = pl.DataFrame(
        schema={"number": pl.String, "category": pl.String, "campaign_id": pl.Int32,
                "active_from": pl.Int64, "active_to": pl.Int64}
    )
    if min_reporters <= 0 or not {"reported", "reporter", "category"} <= set(complaints.columns):
        return empty
    excluded = pl.Series("number", list(exclude), dtype=pl.String)
    reported = (
        complaints.select(pl.col("reported").alias("number"), "reporter",
                          pl.col("category").cast(pl.String))
        .filter(~pl.col("number").is_in(excluded.implode()))
    )
    enough = (
        reported.group_by("number")
        .agg(pl.col("reporter").n_unique().alias("reporters"))
        .filter(pl.col("reporters") >= min_reporters)
    )
    named = (
        reported.join(enough.select("number"), on="number")
        .drop_nulls("category")
        .group_by("number", "category")
        .agg(pl.col("reporter").n_unique().alias("votes"))
        .sort(["number", "votes", "category"], descending=[False, True, False])
        .group_by("number", maintain_order=True)
        .first()
    )
    if named.is_empty():
        return empty
    return named.select(
        "number",
        "category",
        pl.col("number").map_elements(own_campaign_id, return_dtype=pl.Int32).alias("campaign_id"),
        pl.lit(_ALWAYS[0], dtype=pl.Int64).alias("active_from"),
        pl.lit(_ALWAYS[1], dtype=pl.Int64).alias("active_to"),
    ).sort("number")
