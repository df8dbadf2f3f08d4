"""The flag store's tables, rendered for one server version.

Tables (all times ``DateTime('UTC')``):

``flags_history``
    Every decision ever made, worker or operator, one row each, partitioned by
    month of ``flagged_at``. Retried inserts may leave identical copies of a
    row; every documented read goes through ``LIMIT 1 BY decision_id`` (the
    ``flags_history_dedup`` view, or the queries in :mod:`sinks.clickhouse.queries`).
    ``decision_id`` is deterministic, so a retry carries the same id.
``flags_current``
    The latest state per number: ``ReplacingMergeTree(version) ORDER BY number``
    with ``version`` the decision time in epoch milliseconds. Read it with
    ``FINAL`` (see :data:`sinks.clickhouse.queries.CURRENT_FLAGS_SQL`); a retried
    row has the same version and collapses into its twin.
``flag_features``
    The per-caller feature snapshot behind each decision: parallel
    ``feature_names`` / ``feature_values`` arrays (18.16 has no ``Map``).
``flags_hourly`` (+ ``flags_hourly_mv``)
    A ``SummingMergeTree`` rollup fed by a materialized view on
    ``flags_history``: decisions and summed score per hour, category and action.
    Read with ``sum(...) GROUP BY`` (rows merge lazily). A raw retried insert
    would count twice here, which is why writers go through
    :func:`sinks.clickhouse.flags.insert_decisions`: it skips decisions already
    stored before inserting.
``pipeline_metrics``
    Worker gauges and counters: ``(ts, worker, name, value)``.

``flags_history`` and ``flags_current`` also carry ``source`` (model, expiry,
appeal, allowlist; added by migration 0007, ``'model'`` for older rows), which
is part of the decision id.
``operator_labels``
    Operators' decisions as labelled examples (migration 0009): one row per
    appeal, confirmation and dismissal, with the label (a nuisance category,
    or ``normal``), who, why, when (event time), the model version and the
    feature snapshot of the flag judged. Written with the decision; read with
    :func:`sinks.clickhouse.labels.fetch_labels` (``LIMIT 1 BY decision_id``).
``number_lookups``
    Who looked up which number, when, through which route (migration 0008):
    the audit of access to personal information on the worker's HTTP server.
``schema_migrations``
    The migrations applied, by name.

Retention: where the server has TTL, every table but ``schema_migrations``
expires rows ``retention_days`` after their time column. On 18.16 there is no
TTL: :func:`sinks.clickhouse.retention.enforce_retention` drops whole monthly
partitions instead.

Privacy: the store holds the flagged (calling) number and aggregates about its
traffic, never a raw CDR and never a callee number in clear. Features must be
aggregates (counts, ratios, distinct counts); notes and reasons are for the
operator's words, not for pasting call records.
"""

# ruff: noqa: S608 - DDL text: every name passes quote_identifier, no value is interpolated
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sinks.clickhouse.dialect import ServerFeatures
from sinks.clickhouse.sqltext import quote_identifier

__all__ = ["ACTION_TYPE", "Migration", "render_migrations"]

ACTION_TYPE = "Enum8('block' = 1, 'watch' = 2, 'clear' = 3)"
MIGRATIONS_TABLE = "schema_migrations"
_ILLEGAL_COLUMN = 44


@dataclass(frozen=True, slots=True)
class Migration:
    """One named step of the schema: statements that are each safe to repeat."""

    name: str
    statements: tuple[str, ...]
    # Error codes that mean "already done" for this migration, besides "already exists".
    done_codes: frozenset[int] = frozenset()

    @property
    def checksum(self) -> str:
        """A digest of the rendered statements, recorded with the migration."""
        return hashlib.sha256("\n;\n".join(self.statements).encode()).hexdigest()[:16]


def render_migrations(
    database: str,
    features: ServerFeatures,
    retention_days: int,
) -> tuple[Migration, ...]:
    """Every migration, in order, as SQL for this server; ``schema_migrations`` first."""
    if retention_days < 1:
        raise ValueError(f"retention_days must be at least 1, not {retention_days}")
    render = _Renderer(database, features, retention_days)
    return (
        Migration("0001_schema_migrations", (render.schema_migrations(),)),
        Migration("0002_flags_history", (render.flags_history(), render.flags_history_dedup())),
        Migration("0003_flags_current", (render.flags_current(),)),
        Migration("0004_flag_features", (render.flag_features(),)),
        Migration("0005_flags_hourly", (render.flags_hourly(), render.flags_hourly_mv())),
        Migration("0006_pipeline_metrics", (render.pipeline_metrics(),)),
        Migration(
            "0007_decision_source",
            (
                render.add_source("flags_history"),
                render.add_source("flags_current"),
                # 18.16 fixes a view's columns when it is created: recreate it.
                render.drop_history_dedup(),
                render.flags_history_dedup(),
            ),
            # Without IF NOT EXISTS, a rerun after a crash finds the column (ILLEGAL_COLUMN).
            frozenset() if features.add_column_if_not_exists else frozenset({_ILLEGAL_COLUMN}),
        ),
        Migration("0008_number_lookups", (render.number_lookups(),)),
        Migration("0009_operator_labels", (render.operator_labels(),)),
    )


@dataclass(frozen=True, slots=True)
class _Renderer:
    database: str
    features: ServerFeatures
    retention_days: int

    def _table(self, name: str) -> str:
        return f"{quote_identifier(self.database)}.{quote_identifier(name)}"

    def _ttl(self, column: str) -> str:
        if not self.features.ttl:
            return ""
        return f"\nTTL {column} + INTERVAL {int(self.retention_days)} DAY"

    def _decision_columns(self) -> str:
        short = self.features.string_type
        return f"""    number String,
    action {ACTION_TYPE},
    category {short},
    score Float64,
    reasons Array(String),
    model_version {short},
    window_end DateTime('UTC'),
    flagged_at DateTime('UTC'),
    expires_at DateTime('UTC'),
    decision_id String,
    actor {short},
    note String"""

    def schema_migrations(self) -> str:
        return f"""CREATE TABLE IF NOT EXISTS {self._table(MIGRATIONS_TABLE)} (
    name String,
    checksum String,
    server_version String,
    applied_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(applied_at)
ORDER BY name"""

    def flags_history(self) -> str:
        return f"""CREATE TABLE IF NOT EXISTS {self._table("flags_history")} (
{self._decision_columns()}
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(flagged_at)
ORDER BY (number, flagged_at, decision_id){self._ttl("flagged_at")}"""

    def flags_history_dedup(self) -> str:
        return f"""CREATE VIEW IF NOT EXISTS {self._table("flags_history_dedup")} AS
SELECT * FROM {self._table("flags_history")}
LIMIT 1 BY decision_id"""

    def flags_current(self) -> str:
        return f"""CREATE TABLE IF NOT EXISTS {self._table("flags_current")} (
{self._decision_columns()},
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY number{self._ttl("flagged_at")}"""

    def flag_features(self) -> str:
        return f"""CREATE TABLE IF NOT EXISTS {self._table("flag_features")} (
    decision_id String,
    number String,
    window_start DateTime('UTC'),
    window_end DateTime('UTC'),
    flagged_at DateTime('UTC'),
    feature_names Array(String),
    feature_values Array(Float64)
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(flagged_at)
ORDER BY (number, flagged_at, decision_id){self._ttl("flagged_at")}"""

    def flags_hourly(self) -> str:
        return f"""CREATE TABLE IF NOT EXISTS {self._table("flags_hourly")} (
    hour DateTime('UTC'),
    category {self.features.string_type},
    action {ACTION_TYPE},
    decisions UInt64,
    score_sum Float64
) ENGINE = SummingMergeTree((decisions, score_sum))
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, category, action){self._ttl("hour")}"""

    def flags_hourly_mv(self) -> str:
        return f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {self._table("flags_hourly_mv")}
TO {self._table("flags_hourly")} AS
SELECT
    toStartOfHour(flagged_at) AS hour,
    category,
    action,
    count() AS decisions,
    sum(score) AS score_sum
FROM {self._table("flags_history")}
GROUP BY hour, category, action"""

    def drop_history_dedup(self) -> str:
        return f"DROP TABLE IF EXISTS {self._table('flags_history_dedup')}"

    def add_source(self, table: str) -> str:
        if_not_exists = " IF NOT EXISTS" if self.features.add_column_if_not_exists else ""
        return (
            f"ALTER TABLE {self._table(table)} ADD COLUMN{if_not_exists} "
            f"source {self.features.string_type} DEFAULT 'model' AFTER note"
        )

    def number_lookups(self) -> str:
        short = self.features.string_type
        return f"""CREATE TABLE IF NOT EXISTS {self._table("number_lookups")} (
    looked_up_at DateTime('UTC'),
    user_name {short},
    role {short},
    number String,
    route {short},
    address String,
    worker {short}
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(looked_up_at)
ORDER BY (number, looked_up_at){self._ttl("looked_up_at")}"""

    def operator_labels(self) -> str:
        short = self.features.string_type
        return f"""CREATE TABLE IF NOT EXISTS {self._table("operator_labels")} (
    decision_id String,
    number String,
    label {short},
    action {short},
    actor {short},
    reason String,
    event_time DateTime('UTC'),
    model_version {short},
    category {short},
    score Float64,
    feature_names Array(String),
    feature_values Array(Float64)
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(event_time)
ORDER BY (number, event_time, decision_id){self._ttl("event_time")}"""

    def pipeline_metrics(self) -> str:
        short = self.features.string_type
        return f"""CREATE TABLE IF NOT EXISTS {self._table("pipeline_metrics")} (
    ts DateTime('UTC'),
    worker {short},
    name {short},
    value Float64
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (name, worker, ts){self._ttl("ts")}"""
