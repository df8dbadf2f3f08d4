"""Retention for servers without TTL (18.16), and a prompt sweep on any server.

Partitioned tables lose every monthly partition that ends before the cutoff
(``now - retention_days``), so rows live at most a month longer than the limit
until the next sweep. ``flags_current`` is not partitioned (that would split a
number's versions): its rows older than the cutoff are deleted by a mutation,
which only removes numbers whose latest decision is itself that old.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sinks.clickhouse.dialect import ServerFeatures
from sinks.clickhouse.errors import StoreError
from sinks.clickhouse.store import Store

__all__ = ["RETAINED_TABLES", "enforce_retention"]

_MUTATION_TIMEOUT_S = 60.0
# Partitioned table -> the time column its monthly partitions are cut by.
RETAINED_TABLES = {
    "flags_history": "flagged_at",
    "flag_features": "flagged_at",
    "flags_hourly": "hour",
    "number_lookups": "looked_up_at",
    "operator_labels": "event_time",
    "pipeline_metrics": "ts",
}


def enforce_retention(
    store: Store,
    retention_days: int,
    *,
    now: datetime | None = None,
) -> list[str]:
    """Drop data older than ``retention_days``; return what was done, one line per step."""
    if retention_days < 1:
        raise ValueError(f"retention_days must be at least 1, not {retention_days}")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    cutoff_month = cutoff.year * 100 + cutoff.month
    done: list[str] = []
    for table in RETAINED_TABLES:
        for partition in _partitions(store, table):
            if partition < cutoff_month:
                store.execute(f"ALTER TABLE {store.table(table)} DROP PARTITION {partition}")
                done.append(f"dropped {table} partition {partition}")
    if _delete_old_current(store, cutoff):
        done.append(f"deleted flags_current rows flagged before {cutoff:%Y-%m-%d %H:%M:%S}")
    return done


def _partitions(store: Store, table: str) -> list[int]:
    rows = store.query_rows(
        "SELECT DISTINCT partition FROM system.parts "
        "WHERE database = %(db)s AND table = %(t)s AND active",
        {"db": store.database, "t": table},
    )
    return sorted(int(str(partition).strip("'")) for (partition,) in rows)


def _delete_old_current(store: Store, cutoff: datetime) -> bool:
    table = store.table("flags_current")
    params = {"cutoff": cutoff}
    count_old = f"SELECT count() FROM {table} WHERE flagged_at < %(cutoff)s"  # noqa: S608 - quoted
    ((old,),) = store.query_rows(count_old, params)
    if not old:
        return False
    if ServerFeatures(store.server_version()).mutations_sync:
        store.execute(
            f"ALTER TABLE {table} DELETE WHERE flagged_at < %(cutoff)s SETTINGS mutations_sync = 1",
            params,
        )
    else:
        store.execute(f"ALTER TABLE {table} DELETE WHERE flagged_at < %(cutoff)s", params)
        _wait_for_mutations(store, "flags_current")
    return True


def _wait_for_mutations(store: Store, table: str) -> None:
    """Wait for the table's mutations (18.16 has no ``mutations_sync``)."""
    deadline = time.monotonic() + _MUTATION_TIMEOUT_S
    sql = (
        "SELECT count() FROM system.mutations "
        "WHERE database = %(db)s AND table = %(t)s AND is_done = 0"
    )
    while store.query_rows(sql, {"db": store.database, "t": table}) != [(0,)]:
        if time.monotonic() > deadline:
            raise StoreError(
                f"mutation on {store.database}.{table} still running after "
                f"{_MUTATION_TIMEOUT_S}s; see system.mutations"
            )
        time.sleep(0.05)
