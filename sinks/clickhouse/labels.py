"""Operators' decisions as labelled examples: the ``operator_labels`` table.

Every appeal upheld, watch confirmed and flag dismissed is a judgement on
a number's behaviour: a row here holds that judgement (``label``: the
nuisance category confirmed, or ``normal`` for an appeal or a dismissal)
with the feature snapshot of the flag it judged, in the model's feature
names, ready to train on (:mod:`models.operator_labels`).

Rows are written by :func:`sinks.clickhouse.flags.insert_decisions` with
the decision they come from, before the decision's history row, so a batch
retried after a failure may write a label twice but never loses one;
:func:`fetch_labels` reads each decision once (``LIMIT 1 BY decision_id``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from contracts.flag import Action
from sinks.clickhouse.store import Store

if TYPE_CHECKING:
    from sinks.clickhouse.flags import FlagDecision

__all__ = ["LABEL_COLUMNS", "NORMAL", "fetch_labels", "insert_labels", "label_of"]

NORMAL = "normal"  # the label of a number judged not a nuisance (models.dataset.NORMAL)
LABEL_COLUMNS = (
    "decision_id",
    "number",
    "label",
    "action",
    "actor",
    "reason",
    "event_time",
    "model_version",
    "category",
    "score",
    "feature_names",
    "feature_values",
)

FETCH_LABELS_SQL = """SELECT {columns}
FROM {table}
WHERE event_time >= %(since)s
ORDER BY event_time, number, decision_id
LIMIT 1 BY decision_id"""


def label_of(decision: FlagDecision) -> tuple[str, str] | None:
    """``(action, label)`` of an operator's decision; ``None`` for the pipeline's own.

    >>> from contracts.flag import Action
    >>> class Made:  # the fields label_of reads
    ...     source, action, category = "operator", Action.BLOCK, "fraud"
    >>> label_of(Made())
    ('confirm', 'fraud')
    """
    if decision.source == "appeal":
        return "appeal", NORMAL
    if decision.source != "operator":
        return None
    if decision.action is Action.BLOCK:
        return "confirm", decision.category
    if decision.action is Action.CLEAR:
        return "dismiss", NORMAL
    return None


def insert_labels(store: Store, decisions: Sequence[FlagDecision]) -> int:
    """Write the labelled examples among ``decisions``; the number written."""
    rows = [(decision, label) for decision in decisions
            if (label := label_of(decision)) is not None]
    if not rows:
        return 0
    columns: list[list[Any]] = [
        [decision.decision_id for decision, _ in rows],
        [decision.number for decision, _ in rows],
        [label for _, (_, label) in rows],
        [action for _, (action, _) in rows],
        [decision.actor for decision, _ in rows],
        [decision.reasons[0] if decision.reasons else "" for decision, _ in rows],
        [decision.flagged_at for decision, _ in rows],
        [decision.model_version for decision, _ in rows],
        [decision.category for decision, _ in rows],
        [float(decision.score) for decision, _ in rows],
        [list(decision.features) for decision, _ in rows],
        [[float(value) for value in decision.features.values()] for decision, _ in rows],
    ]
    return store.insert_columns("operator_labels", LABEL_COLUMNS, columns)


def fetch_labels(store: Store, *, since: datetime) -> list[dict[str, Any]]:
    """Every labelled example from ``since`` (aware) on, each once, oldest first."""
    sql = FETCH_LABELS_SQL.format(
        columns=", ".join(LABEL_COLUMNS), table=store.table("operator_labels")
    )
    rows = store.query_rows(sql, {"since": since})
    return [dict(zip(LABEL_COLUMNS, row, strict=True)) for row in rows]
