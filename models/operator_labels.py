"""Operators' decisions as training rows.

The store's ``operator_labels`` table (:mod:`sinks.clickhouse.labels`)
holds one row per appeal, confirmation and dismissal, with the feature
snapshot of the flag judged. :func:`labels_frame` turns fetched rows into a
polars frame (written as ``operator_labels.parquet`` next to the tables of
``callguard train --data DIR``); :func:`label_training_rows` turns that
frame into rows of :func:`models.dataset.build_training_table`'s table,
which adds them to what it builds from the CDRs.

Each row is a caller at the moment its flag was judged: ``end_ms`` the
decision's event time, the features the model saw, the operator's label.
A number confirmed as a nuisance is a campaign of its own (a negative
``campaign_id``, stable from the number), so the split deals it to fit,
validation or test like a simulated campaign; a number judged ``normal``
is split like every normal caller, by a hash of the number. Rows whose
snapshot lacks one of the model's features (a model built on other
features) are left out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from features.caller_number import caller_number_dict
from features.vector import FEATURE_NAMES

__all__ = ["LABELS_FILE", "NORMAL", "label_training_rows", "labels_frame", "own_campaign_id"]

LABELS_FILE = "operator_labels.parquet"
NORMAL = "normal"  # models.dataset.NORMAL (not imported: dataset imports this module)

_SCHEMA: dict[str, Any] = {
    "decision_id": pl.String,
    "number": pl.String,
    "label": pl.String,
    "action": pl.String,
    "actor": pl.String,
    "reason": pl.String,
    "event_time": pl.Datetime("ms", "UTC"),
    "model_version": pl.String,
    "category": pl.String,
    "score": pl.Float64,
    "feature_names": pl.List(pl.String),
    "feature_values": pl.List(pl.Float64),
}


def labels_frame(rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """Rows of :func:`sinks.clickhouse.labels.fetch_labels` as a frame (typed even when empty)."""
    columns = {name: [row[name] for row in rows] for name in _SCHEMA}
    return pl.DataFrame(columns, schema=_SCHEMA)


def label_training_rows(labels: pl.DataFrame) -> pl.DataFrame:
    """One training row per labelled example whose snapshot has every feature.

    Columns as :func:`models.dataset.build_training_table`'s: ``caller,
    end_ms``, :data:`FEATURE_NAMES`, ``label, campaign_id, is_legit_bulk,
    first_call_ms, weight``.
    """
    rows: list[dict[str, Any]] = []
    for label in labels.iter_rows(named=True):
        # A snapshot without the number's own features (taken before they existed)
        # gets them from the number, which is all they depend on.
        snapshot = caller_number_dict(label["number"]) | dict(
            zip(label["feature_names"], label["feature_values"], strict=True)
        )
        if any(name not in snapshot for name in FEATURE_NAMES):
            continue
        end_ms = int(label["event_time"].timestamp() * 1000)
        nuisance = label["label"] != NORMAL
        rows.append({
            "caller": label["number"],
            "end_ms": end_ms,
            **{name: float(snapshot[name]) for name in FEATURE_NAMES},
            "label": label["label"],
            "campaign_id": own_campaign_id(label["number"]) if nuisance else None,
            "is_legit_bulk": False,
            "first_call_ms": end_ms,
            "weight": 1.0,
        })
    schema: dict[str, Any] = {
        "caller": pl.String,
        "end_ms": pl.Int64,
        **dict.fromkeys(FEATURE_NAMES, pl.Float64),
        "label": pl.String,
        "campaign_id": pl.Int32,
        "is_legit_bulk": pl.Boolean,
        "first_call_ms": pl.Int64,
        "weight": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema)


def own_campaign_id(number: str) -> int:
    """A negative campaign id of the number's own (simulated campaigns are positive)."""
    digest = hashlib.sha256(number.encode()).digest()
    return -1 - int.from_bytes(digest[:4], "big") % (2**31 - 2)
