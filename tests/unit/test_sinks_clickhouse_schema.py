"""Schema rendering per server version, user grants and decisions, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.flag import Flag
from sinks.clickhouse import Action, FlagDecision, ServerFeatures, decision_id_for
from sinks.clickhouse.schema import render_migrations
from sinks.clickhouse.users import render_user_statements

OLD = ServerFeatures((18, 16, 1))
CURRENT = ServerFeatures((26, 9, 2, 1))
WINDOW_END = datetime(2026, 11, 22, 12, tzinfo=UTC)


def all_sql(features: ServerFeatures, retention_days: int = 180) -> str:
    migrations = render_migrations("callguard", features, retention_days)
    return "\n".join(statement for m in migrations for statement in m.statements)


def test_old_server_gets_no_ttl_and_no_low_cardinality() -> None:
    sql = all_sql(OLD)

    assert "TTL" not in sql
    assert "LowCardinality" not in sql
    assert "ReplacingMergeTree(version)" in sql
    assert "PARTITION BY toYYYYMM(flagged_at)" in sql


def test_current_server_gets_ttl_on_every_retained_table() -> None:
    sql = all_sql(CURRENT, retention_days=30)

    # history, current, features, hourly, metrics, lookups, labels
    assert sql.count("TTL ") == 7
    assert "TTL flagged_at + INTERVAL 30 DAY" in sql
    assert "TTL hour + INTERVAL 30 DAY" in sql
    assert "category LowCardinality(String)" in sql


def test_every_statement_can_be_repeated() -> None:
    for features in (OLD, CURRENT):
        for migration in render_migrations("callguard", features, 180):
            for statement in migration.statements:
                first_line = statement.split("\n", 1)[0]
                guarded = "IF NOT EXISTS" in first_line or "IF EXISTS" in first_line
                # 18.16 has no ADD COLUMN IF NOT EXISTS: "column exists" counts as done.
                assert guarded or (features is OLD and 44 in migration.done_codes), statement


def test_source_column_is_added_and_the_dedup_view_recreated() -> None:
    for features in (OLD, CURRENT):
        by_name = {m.name: m for m in render_migrations("db", features, 180)}
        last = by_name["0007_decision_source"]
        assert sum("ADD COLUMN" in s and "source" in s for s in last.statements) == 2
        assert "DROP TABLE IF EXISTS `db`.`flags_history_dedup`" in last.statements
        view = "CREATE VIEW IF NOT EXISTS `db`.`flags_history_dedup`"
        assert last.statements[-1].startswith(view)


def test_migrations_are_named_in_order_and_versioned_by_content() -> None:
    old, current = render_migrations("db", OLD, 180), render_migrations("db", CURRENT, 180)

    names = [migration.name for migration in old]
    assert names == sorted(names) and names[0] == "0001_schema_migrations"
    assert names == [migration.name for migration in current]
    assert old[1].checksum != current[1].checksum


def test_retention_must_be_positive() -> None:
    with pytest.raises(ValueError, match="retention_days"):
        render_migrations("db", CURRENT, 0)


@pytest.mark.parametrize(
    ("version", "ttl", "sql_users"),
    [((18, 16, 1), False, False), ((20, 3), True, False), ((24, 8, 1), True, True)],
)
def test_features_by_version(version: tuple[int, ...], ttl: bool, sql_users: bool) -> None:
    features = ServerFeatures(version)

    assert (features.ttl, features.sql_users) == (ttl, sql_users)


def test_user_statements_grant_narrowly_and_escape_passwords() -> None:
    statements = render_user_statements("callguard", "w'pass\\", "reader")
    sql = "\n".join(statements)

    assert "IDENTIFIED WITH sha256_password BY 'w\\'pass\\\\'" in sql
    assert "GRANT INSERT ON `callguard`.* TO `callguard_writer`" in statements
    assert "GRANT SELECT ON `callguard`.* TO `callguard_reader`" in statements
    assert not any("GRANT SELECT ON" in s and "writer" in s for s in statements)


def test_user_statements_need_passwords() -> None:
    with pytest.raises(ValueError, match="password"):
        render_user_statements("callguard", "", "reader")


def make(**fields: object) -> FlagDecision:
    values: dict[str, object] = {
        "number": "+8613800000001",
        "action": "block",
        "category": "robocall",
        "score": 0.9,
        "window_start": WINDOW_END - timedelta(minutes=10),
        "window_end": WINDOW_END,
        "flagged_at": WINDOW_END + timedelta(seconds=3),
        "expires_at": WINDOW_END + timedelta(days=7),
        "model_version": "hgb-1",
        "actor": "worker-1",
    }
    values.update(fields)
    return FlagDecision(**values)  # type: ignore[arg-type]


def test_decision_id_is_the_same_for_a_replayed_decision() -> None:
    first = make()
    # Replayed by another worker under a newer model, with another score: same decision.
    replay = make(actor="worker-2", model_version="hgb-2", score=0.93, note="replay")

    assert first.action is Action.BLOCK
    assert first.decision_id == replay.decision_id
    assert len(first.decision_id) == 32 and first.number not in first.decision_id
    flagged_ms = int((WINDOW_END + timedelta(seconds=3)).timestamp()) * 1000
    assert first.decision_id == decision_id_for(
        first.number, "block", "robocall", flagged_ms, "model"
    )


def test_decision_id_differs_for_another_decision() -> None:
    ids = {
        make().decision_id,
        make(action="clear").decision_id,
        make(category="fraud").decision_id,
        make(flagged_at=WINDOW_END + timedelta(milliseconds=3001)).decision_id,
        make(source="appeal").decision_id,
        make(number="+8613800000002").decision_id,
    }

    assert len(ids) == 6


def test_from_flag_keeps_the_published_id_and_times() -> None:
    t0 = 1_795_000_000_123  # not a whole second: the id and version keep milliseconds
    flag = Flag(
        number="+8613800000001",
        action=Action.CLEAR,
        category="fraud",
        score=0.97,
        reasons=("appeal upheld: school notices",),
        model_version="hgb-1",
        window_end_ms=t0 - 60_000,
        flagged_at_ms=t0,
        expires_at_ms=None,
        source="appeal",
        features={"short_call_ratio": 0.5},
    )

    stored = FlagDecision.from_flag(flag, actor="op:li", note="ticket 42")

    assert stored.decision_id == flag.decision_id
    assert stored.version == t0 and stored.source == "appeal"
    assert stored.expires_at == stored.flagged_at  # a clear lapses when it is made
    assert stored.window_start == stored.window_end
    assert stored.window_end.timestamp() * 1000 == t0 - 60_000
    assert dict(stored.features) == {"short_call_ratio": 0.5}
    assert (stored.actor, stored.note) == ("op:li", "ticket 42")
    started = FlagDecision.from_flag(flag, actor="w", window_start_ms=t0 - 660_000)
    assert (stored.window_end - started.window_start).total_seconds() == 600


def test_one_action_enum_and_one_id_definition() -> None:
    from contracts import flag as flag_record
    from sinks.clickhouse import flags

    assert flags.Action is flag_record.Action is Action
    assert decision_id_for is flag_record.decision_id_for


def test_decisions_refuse_naive_times_and_unknown_actions() -> None:
    with pytest.raises(ValueError, match="flagged_at"):
        make(flagged_at=datetime(2026, 11, 22, 12))  # noqa: DTZ001 - naive on purpose
    with pytest.raises(ValueError):
        make(action="delete")
    with pytest.raises(ValueError, match="source"):
        make(source="reviewer")


def test_version_orders_decisions_by_time() -> None:
    earlier = make(flagged_at=WINDOW_END + timedelta(milliseconds=1000))
    later = make(flagged_at=WINDOW_END + timedelta(milliseconds=1500))

    assert later.version - earlier.version == 500


def test_operator_labels_fit_the_old_server_and_the_new() -> None:
    for features, short in ((OLD, "String"), (CURRENT, "LowCardinality(String)")):
        by_name = {m.name: m for m in render_migrations("db", features, 180)}
        (statement,) = by_name["0009_operator_labels"].statements
        assert statement.startswith("CREATE TABLE IF NOT EXISTS `db`.`operator_labels`")
        assert f"label {short}" in statement and "feature_values Array(Float64)" in statement
        assert "event_time DateTime('UTC')" in statement
        assert ("TTL event_time" in statement) is (features is CURRENT)


def test_number_lookups_fit_the_old_server_and_the_new() -> None:
    for features, short in ((OLD, "String"), (CURRENT, "LowCardinality(String)")):
        by_name = {m.name: m for m in render_migrations("db", features, 180)}
        (statement,) = by_name["0008_number_lookups"].statements
        assert statement.startswith("CREATE TABLE IF NOT EXISTS `db`.`number_lookups`")
        assert f"user_name {short}" in statement and "number String" in statement
        assert ("TTL looked_up_at" in statement) == features.ttl
