"""The documented reads of the flag store, returning plain dicts.

Each query is the supported way to read its table; ad-hoc SQL should follow
the same shape (``FINAL`` on ``flags_current``, ``LIMIT 1 BY decision_id`` on
``flags_history`` and ``flag_features``, ``sum() GROUP BY`` on ``flags_hourly``).
Templates name tables as ``{flags_current}`` etc. and the decision columns as
``{columns}``, filled by :func:`render`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sinks.clickhouse.flags import HISTORY_COLUMNS, Action
from sinks.clickhouse.store import Store

__all__ = [
    "CURRENT_FLAGS_SQL",
    "FLAG_HISTORY_SQL",
    "HOURLY_COUNTS_SQL",
    "current_flags",
    "decision_features",
    "flag_history",
    "hourly_counts",
]

CURRENT_FLAGS_SQL = """SELECT {columns}
FROM {flags_current} FINAL
WHERE action IN %(actions)s AND expires_at > %(now)s
ORDER BY flagged_at DESC, number
LIMIT %(limit)s"""

CURRENT_FLAG_SQL = """SELECT {columns}
FROM {flags_current} FINAL
WHERE number = %(number)s"""

FLAG_HISTORY_SQL = """SELECT {columns}
FROM {flags_history}
WHERE number = %(number)s
ORDER BY flagged_at DESC, decision_id
LIMIT 1 BY decision_id
LIMIT %(limit)s"""

FEATURES_SQL = """SELECT feature_names, feature_values
FROM {flag_features}
WHERE number = %(number)s AND decision_id = %(decision_id)s
LIMIT 1 BY decision_id"""

HOURLY_COUNTS_SQL = """SELECT hour, category, action, sum(decisions) AS total_decisions,
    sum(score_sum) / total_decisions AS mean_score
FROM {flags_hourly}
WHERE hour >= %(since)s
GROUP BY hour, category, action
ORDER BY hour, category, action"""


def render(store: Store, template: str) -> str:
    """Fill a template's ``{table}`` names and ``{columns}`` for this store."""
    tables = ("flags_current", "flags_history", "flag_features", "flags_hourly")
    names = {name: store.table(name) for name in tables}
    return template.format(columns=", ".join(HISTORY_COLUMNS), **names)


def current_flags(
    store: Store,
    *,
    now: datetime | None = None,
    actions: Iterable[Action | str] = (Action.BLOCK, Action.WATCH),
    limit: int = 10_000,
) -> list[dict[str, Any]]:
    """Numbers whose latest decision is one of ``actions`` and has not expired, newest first."""
    params = {
        "actions": tuple(str(action) for action in actions),
        "now": now or datetime.now(UTC),
        "limit": int(limit),
    }
    return _dicts(store.query_rows(render(store, CURRENT_FLAGS_SQL), params), HISTORY_COLUMNS)


def current_flag(store: Store, number: str) -> dict[str, Any] | None:
    """The latest decision about ``number`` (expired or not), or ``None``."""
    rows = store.query_rows(render(store, CURRENT_FLAG_SQL), {"number": number})
    return _dicts(rows, HISTORY_COLUMNS)[0] if rows else None


def flag_history(store: Store, number: str, *, limit: int = 1000) -> list[dict[str, Any]]:
    """Every decision about ``number``, newest first, each once however often it was written."""
    rows = store.query_rows(
        render(store, FLAG_HISTORY_SQL), {"number": number, "limit": int(limit)}
    )
    return _dicts(rows, HISTORY_COLUMNS)


def decision_features(store: Store, number: str, decision_id: str) -> dict[str, float]:
    """The feature snapshot behind one decision (empty if none was stored)."""
    params = {"number": number, "decision_id": decision_id}
    rows = store.query_rows(render(store, FEATURES_SQL), params)
    if not rows:
        return {}
    names, values = rows[0]
    return dict(zip(names, values, strict=True))


def hourly_counts(store: Store, *, since: datetime) -> list[dict[str, Any]]:
    """Decisions per hour, category and action from ``since`` on, with their mean score."""
    rows = store.query_rows(render(store, HOURLY_COUNTS_SQL), {"since": since})
    return _dicts(rows, ("hour", "category", "action", "decisions", "mean_score"))


def _dicts(rows: list[tuple[Any, ...]], names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [dict(zip(names, row, strict=True)) for row in rows]
