"""The flag store in ClickHouse: a narrow store client, its schema, writes and reads.

Pick a store by URL with :func:`open_store` (``clickhouse://`` for a server,
``chdb:///path`` for the embedded engine), apply the schema with
:func:`migrate`, write with :func:`insert_decisions`, read with
:func:`current_flags` and :func:`flag_history`. Every call blocks: run it in an
executor from async code. The tables and their guarantees (deduplication,
retention, privacy) are described in :mod:`sinks.clickhouse.schema`.
"""

from contracts.flag import Action, decision_id_for
from sinks.clickhouse.dialect import ServerFeatures
from sinks.clickhouse.engines import open_store
from sinks.clickhouse.errors import (
    QueryError,
    StoreError,
    StoreUnavailable,
    StoreURLError,
    UnsupportedFeature,
)
from sinks.clickhouse.flags import FlagDecision, insert_decisions, insert_metrics
from sinks.clickhouse.migrate import DEFAULT_RETENTION_DAYS, migrate
from sinks.clickhouse.queries import (
    current_flag,
    current_flags,
    decision_features,
    flag_history,
    hourly_counts,
)
from sinks.clickhouse.retention import enforce_retention
from sinks.clickhouse.store import Store
from sinks.clickhouse.url import StoreURL, parse_store_url
from sinks.clickhouse.users import create_users

__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "Action",
    "FlagDecision",
    "QueryError",
    "ServerFeatures",
    "Store",
    "StoreError",
    "StoreURL",
    "StoreURLError",
    "StoreUnavailable",
    "UnsupportedFeature",
    "create_users",
    "current_flag",
    "current_flags",
    "decision_features",
    "decision_id_for",
    "enforce_retention",
    "flag_history",
    "hourly_counts",
    "insert_decisions",
    "insert_metrics",
    "migrate",
    "open_store",
    "parse_store_url",
]
