"""The dashboard's reads of the flag store, as plain JSON-ready dicts.

Each function takes a :class:`~sinks.clickhouse.Store` and blocks: run it
through :class:`streams.http.dashboard.monitor.StoreReader`. Reads follow the
documented shapes of :mod:`sinks.clickhouse.queries` (``FINAL`` on
``flags_current``, ``LIMIT 1 BY decision_id`` on ``flags_history``,
``sum() GROUP BY`` on ``flags_hourly``), and reuse its functions where they fit.

"Now" is ``as_of``: the wall clock, or, when decisions run on a simulated or
replayed clock (``CALLGUARD_LOOKUP_EVENT_TIME``), the latest decision time in
the store, so the page shows what the stream considers current.
"""

# ruff: noqa: S608 - table names pass Store.table (quoted); values are bound parameters
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sinks.clickhouse import Store, current_flag, current_flags, decision_features
from sinks.clickhouse import flag_history as stored_history
from sinks.clickhouse import hourly_counts as stored_hourly_counts

__all__ = [
    "FLAGGED",
    "as_of",
    "first_flagged",
    "flag_counts",
    "flags_now",
    "jsonable",
    "number_detail",
    "timeline",
    "top_new_offenders",
]

FLAGGED = ("block", "watch")
_EPOCH = datetime(1970, 1, 2, tzinfo=UTC)


def as_of(store: Store, *, event_time: bool) -> datetime:
    """The moment the dashboard calls "now" (see the module docstring)."""
    wall = datetime.now(UTC).replace(microsecond=0)
    if not event_time:
        return wall
    rows = store.query_rows(f"SELECT max(flagged_at) FROM {store.table('flags_history')}")
    latest = _aware(rows[0][0]) if rows else None
    return latest if latest is not None and latest > _EPOCH else wall


def flag_counts(store: Store, now: datetime) -> list[dict[str, Any]]:
    """Numbers blocked or watched at ``now``, per action and category."""
    sql = f"""SELECT action, category, count() AS numbers
FROM {store.table("flags_current")} FINAL
WHERE action IN %(actions)s AND expires_at > %(now)s
GROUP BY action, category
ORDER BY action, category"""
    rows = store.query_rows(sql, {"actions": FLAGGED, "now": now})
    return [
        {"action": str(action), "category": category, "numbers": int(numbers)}
        for action, category, numbers in rows
    ]


def flags_now(
    store: Store,
    now: datetime,
    *,
    actions: tuple[str, ...] = FLAGGED,
    category: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """The flagged numbers at ``now``, newest decision first, optionally one category."""
    rows = current_flags(store, now=now, actions=actions, limit=10_000)
    if category:
        rows = [row for row in rows if row["category"] == category]
    return [jsonable(row) for row in rows[:limit]]


def first_flagged(store: Store, now: datetime, *, lookback: timedelta) -> dict[str, datetime]:
    """When each number flagged within ``lookback`` before ``now`` was first flagged then."""
    sql = f"""SELECT number, min(flagged_at) AS first_flagged
FROM {store.table("flags_history")}
WHERE action IN %(actions)s AND flagged_at > %(since)s AND flagged_at <= %(now)s
GROUP BY number"""
    rows = store.query_rows(sql, {"actions": FLAGGED, "since": now - lookback, "now": now})
    return {number: _aware(first) for number, first in rows}


def top_new_offenders(
    store: Store, now: datetime, *, within: timedelta = timedelta(hours=24), limit: int = 10
) -> list[dict[str, Any]]:
    """Numbers first flagged within ``within`` before ``now``, most decisions first.

    A number flagged again and again (renewed while it keeps calling) ranks
    above a one-off; ties go to the higher score. "New" means no block or
    watch about it in the 30 days before.
    """
    sql = f"""SELECT number, argMax(category, flagged_at) AS category,
    argMax(action, flagged_at) AS action, max(score) AS top_score, count() AS decisions,
    min(flagged_at) AS first_flagged, max(flagged_at) AS last_flagged
FROM (
    SELECT number, category, action, score, flagged_at, decision_id
    FROM {store.table("flags_history")}
    WHERE action IN %(actions)s AND flagged_at > %(lookback)s AND flagged_at <= %(now)s
    LIMIT 1 BY decision_id
)
GROUP BY number
HAVING first_flagged > %(since)s
ORDER BY decisions DESC, top_score DESC, number
LIMIT %(limit)s"""
    params = {
        "actions": FLAGGED,
        "lookback": now - within - timedelta(days=30),
        "since": now - within,
        "now": now,
        "limit": int(limit),
    }
    names = ("number", "category", "action", "top_score", "decisions", "first_flagged",
             "last_flagged")
    return [jsonable(dict(zip(names, row, strict=True))) for row in store.query_rows(sql, params)]


def timeline(store: Store, now: datetime, *, hours: int = 48) -> list[dict[str, Any]]:
    """Decisions per hour, category and action over the ``hours`` before ``now``."""
    since = (now - timedelta(hours=hours)).replace(minute=0, second=0, microsecond=0)
    rows = stored_hourly_counts(store, since=since)
    return [
        jsonable({**row, "action": str(row["action"]), "decisions": int(row["decisions"])})
        for row in rows
        if _aware(row["hour"]) <= now
    ]


def number_detail(store: Store, number: str, now: datetime) -> dict[str, Any]:
    """One number: its latest decision, whether it is in force, its history and features."""
    latest = current_flag(store, number)
    history = stored_history(store, number, limit=200)
    snapshot_of = next(
        (row for row in history if str(row["action"]) in FLAGGED), latest
    )
    features = (
        decision_features(store, number, snapshot_of["decision_id"]) if snapshot_of else {}
    )
    in_force = bool(
        latest and str(latest["action"]) in FLAGGED and _aware(latest["expires_at"]) > now
    )
    return {
        "number": number,
        "flagged": in_force,
        "current": jsonable(latest) if latest else None,
        "history": [jsonable(row) for row in history],
        "features": {
            "decision_id": snapshot_of["decision_id"] if snapshot_of else None,
            "flagged_at": _iso(snapshot_of["flagged_at"]) if snapshot_of else None,
            "values": {name: float(value) for name, value in features.items()},
        },
    }


def jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """A store row with datetimes as RFC 3339 UTC, enums and tuples as JSON values."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        if isinstance(value, datetime):
            out[name] = _iso(value)
        elif isinstance(value, list | tuple):
            out[name] = [str(item) for item in value]
        elif isinstance(value, str | int | float | bool) or value is None:
            out[name] = value
        else:  # enums and other driver types
            out[name] = str(value)
    return out


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: datetime) -> str:
    return _aware(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
