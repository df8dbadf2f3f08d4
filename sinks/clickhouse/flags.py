"""Flag decisions and the one way to write them: retry-safe, columnar.

A decision's ``decision_id`` is a digest of what makes it the same decision
(number, action, window end, model version), so a batch replayed after a
crash or a timeout carries the ids it had the first time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sinks.clickhouse.store import Store

__all__ = [
    "Action",
    "FlagDecision",
    "decision_id_for",
    "insert_decisions",
    "insert_metrics",
    "stored_decision_ids",
]

HISTORY_COLUMNS = (
    "number",
    "action",
    "category",
    "score",
    "reasons",
    "model_version",
    "window_end",
    "flagged_at",
    "expires_at",
    "decision_id",
    "actor",
    "note",
)
FEATURE_COLUMNS = (
    "decision_id",
    "number",
    "window_start",
    "window_end",
    "flagged_at",
    "feature_names",
    "feature_values",
)
_LOOKUP_CHUNK = 2000  # ids per existence query: keeps the SQL text well under max_query_size


class Action(StrEnum):
    """What a decision does to a number."""

    BLOCK = "block"
    WATCH = "watch"
    CLEAR = "clear"


def decision_id_for(number: str, action: str, window_end: datetime, model_version: str) -> str:
    """The deterministic id of a decision (32 hex characters).

    Operators' decisions pass the time of their action as ``window_end`` and
    their tool's name as ``model_version``.
    """
    key = "\x1f".join((number, str(action), str(int(window_end.timestamp())), model_version))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class FlagDecision:
    """One decision about one calling number, with the features behind it.

    ``features`` are aggregates of the number's traffic (never callee numbers).
    Times must be aware; ``decision_id`` is derived when not given.
    """

    number: str
    action: Action
    category: str
    score: float
    window_start: datetime
    window_end: datetime
    flagged_at: datetime
    expires_at: datetime
    model_version: str
    actor: str
    reasons: tuple[str, ...] = ()
    note: str = ""
    features: Mapping[str, float] = field(default_factory=dict, hash=False)
    decision_id: str = ""

    def __post_init__(self) -> None:
        if not self.number:
            raise ValueError("a decision needs a number")
        object.__setattr__(self, "action", Action(self.action))
        object.__setattr__(self, "reasons", tuple(self.reasons))
        for name in ("window_start", "window_end", "flagged_at", "expires_at"):
            moment: datetime = getattr(self, name)
            if moment.tzinfo is None or moment.utcoffset() is None:
                raise ValueError(f"{name} must be an aware datetime, got {moment!r}")
        if not self.decision_id:
            digest = decision_id_for(self.number, self.action, self.window_end, self.model_version)
            object.__setattr__(self, "decision_id", digest)

    @property
    def version(self) -> int:
        """The ``flags_current`` version: decision time in epoch milliseconds."""
        return int(self.flagged_at.timestamp() * 1000)


def stored_decision_ids(store: Store, decisions: Iterable[FlagDecision]) -> set[str]:
    """Which of these decisions ``flags_history`` already holds."""
    pending = list(decisions)
    found: set[str] = set()
    sql = (
        f"SELECT DISTINCT decision_id FROM {store.table('flags_history')} "  # noqa: S608 - quoted
        "WHERE number IN %(numbers)s AND decision_id IN %(ids)s"
    )
    for start in range(0, len(pending), _LOOKUP_CHUNK):
        chunk = pending[start : start + _LOOKUP_CHUNK]
        params = {
            "numbers": tuple({decision.number for decision in chunk}),
            "ids": tuple({decision.decision_id for decision in chunk}),
        }
        found.update(decision_id for (decision_id,) in store.query_rows(sql, params))
    return found


def insert_decisions(store: Store, decisions: Sequence[FlagDecision]) -> int:
    """Write decisions to ``flag_features``, ``flags_current`` and ``flags_history``.

    Decisions whose id is already in ``flags_history`` are skipped, so retrying
    a batch neither duplicates history nor double-counts the hourly rollup.
    History is written last: it is what marks a decision as stored, so a batch
    that failed half-way is written again in full by its retry. Returns the
    number of decisions written.
    """
    unique = {decision.decision_id: decision for decision in decisions}
    if not unique:
        return 0
    existing = stored_decision_ids(store, unique.values())
    fresh = [decision for key, decision in unique.items() if key not in existing]
    if not fresh:
        return 0
    with_features = [decision for decision in fresh if decision.features]
    if with_features:
        store.insert_columns("flag_features", FEATURE_COLUMNS, _feature_columns(with_features))
    current = _history_columns(fresh) + [[decision.version for decision in fresh]]
    store.insert_columns("flags_current", (*HISTORY_COLUMNS, "version"), current)
    store.insert_columns("flags_history", HISTORY_COLUMNS, _history_columns(fresh))
    return len(fresh)


def insert_metrics(
    store: Store,
    worker: str,
    values: Mapping[str, float],
    *,
    at: datetime,
) -> int:
    """Write one sample of a worker's metrics to ``pipeline_metrics``."""
    if not values:
        return 0
    count = len(values)
    columns = [[at] * count, [worker] * count, list(values), [float(v) for v in values.values()]]
    return store.insert_columns("pipeline_metrics", ("ts", "worker", "name", "value"), columns)


def _history_columns(decisions: Sequence[FlagDecision]) -> list[list[Any]]:
    """Columns in ``HISTORY_COLUMNS`` order."""
    return [
        [decision.number for decision in decisions],
        [decision.action.value for decision in decisions],
        [decision.category for decision in decisions],
        [float(decision.score) for decision in decisions],
        [list(decision.reasons) for decision in decisions],
        [decision.model_version for decision in decisions],
        [decision.window_end for decision in decisions],
        [decision.flagged_at for decision in decisions],
        [decision.expires_at for decision in decisions],
        [decision.decision_id for decision in decisions],
        [decision.actor for decision in decisions],
        [decision.note for decision in decisions],
    ]


def _feature_columns(decisions: Sequence[FlagDecision]) -> list[list[Any]]:
    return [
        [decision.decision_id for decision in decisions],
        [decision.number for decision in decisions],
        [decision.window_start for decision in decisions],
        [decision.window_end for decision in decisions],
        [decision.flagged_at for decision in decisions],
        [list(decision.features) for decision in decisions],
        [[float(value) for value in decision.features.values()] for decision in decisions],
    ]
