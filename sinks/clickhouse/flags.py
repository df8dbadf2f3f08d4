"""Flag decisions and the one way to write them: retry-safe, columnar.

A decision's ``decision_id`` is :func:`contracts.flag.decision_id_for`,
the same id the decision carries on ``cdr.flags``: a batch replayed after a
crash or a timeout carries the ids it had the first time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.flag import Action, Flag, decision_id_for
from sinks.clickhouse.labels import insert_labels
from sinks.clickhouse.store import Store

__all__ = [
    "Action",
    "FlagDecision",
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
    "source",
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
SOURCES = ("model", "expiry", "appeal", "allowlist", "operator")
_LOOKUP_CHUNK = 2000  # ids per existence query: keeps the SQL text well under max_query_size
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def epoch_ms(moment: datetime) -> int:
    """Exact epoch milliseconds of an aware datetime (no float rounding)."""
    return (moment - _EPOCH) // _MILLISECOND


def from_epoch_ms(epoch_milliseconds: int) -> datetime:
    """The aware UTC datetime of epoch milliseconds (exact)."""
    return _EPOCH + epoch_milliseconds * _MILLISECOND


@dataclass(frozen=True, slots=True)
class FlagDecision:
    """One decision about one calling number, with the features behind it, as stored.

    Build it from the published record with :meth:`from_flag`. ``features``
    are aggregates of the number's traffic (never callee numbers). Times must
    be aware; ``decision_id`` is derived with
    :func:`contracts.flag.decision_id_for` when not given.
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
    source: str = "model"
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
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        if not self.decision_id:
            digest = decision_id_for(
                self.number, self.action, self.category, self.version, self.source
            )
            object.__setattr__(self, "decision_id", digest)

    @classmethod
    def from_flag(
        cls,
        flag: Flag,
        *,
        actor: str,
        note: str = "",
        window_start_ms: int | None = None,
    ) -> FlagDecision:
        """The stored form of a published :class:`~contracts.flag.Flag`; same ``decision_id``.

        ``actor`` is who wrote it (the worker's name, ``op:<login>``). A
        ``clear`` has no expiry on the topic; it is stored as expiring when it
        was made. Without ``window_start_ms`` the window start is its end.
        """
        window_end = from_epoch_ms(flag.window_end_ms)
        flagged_at = from_epoch_ms(flag.flagged_at_ms)
        expires_ms = flag.expires_at_ms
        return cls(
            number=flag.number,
            action=flag.action,
            category=flag.category,
            score=flag.score,
            window_start=window_end if window_start_ms is None else from_epoch_ms(window_start_ms),
            window_end=window_end,
            flagged_at=flagged_at,
            expires_at=flagged_at if expires_ms is None else from_epoch_ms(expires_ms),
            model_version=flag.model_version,
            actor=actor,
            reasons=flag.reasons,
            note=note,
            features=dict(flag.features),
            source=flag.source,
            decision_id=flag.decision_id,
        )

    @property
    def version(self) -> int:
        """The ``flags_current`` version: decision time in epoch milliseconds."""
        return epoch_ms(self.flagged_at)


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

    Operators' decisions (appeals, confirmations, dismissals) also go to
    ``operator_labels`` as labelled examples (:mod:`sinks.clickhouse.labels`).

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
    insert_labels(store, fresh)  # operators' decisions as labelled examples
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
    columns: list[list[Any]] = [
        [at] * count,
        [worker] * count,
        list(values),
        [float(value) for value in values.values()],
    ]
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
        [decision.source for decision in decisions],
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
