"""The flag store end to end, on the real server (18.16) and on chDB, same schema, same checks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from contracts.flag import Flag
from features.vector import FEATURE_NAMES
from models.dataset import build_training_table
from models.decisions import DecisionPolicy, FlagState, Score, decide
from models.operator_labels import LABELS_FILE, labels_frame
from simulator.parquet import write_parquet
from simulator.scenario import builtin_scenario, with_overrides
from sinks.clickhouse import (
    Action,
    FlagDecision,
    ServerFeatures,
    Store,
    StoreError,
    UnsupportedFeature,
    create_users,
    current_flag,
    current_flags,
    decision_features,
    enforce_retention,
    flag_history,
    hourly_counts,
    insert_decisions,
    insert_metrics,
    migrate,
    open_store,
)
from sinks.clickhouse.flags import HISTORY_COLUMNS, _history_columns, epoch_ms
from sinks.clickhouse.labels import fetch_labels
from sinks.clickhouse.schema import render_migrations
from streams.http.dashboard.review_queue import ReviewAction, refusal, review_queue
from streams.review_cli import app as review_app
from streams.stages.decision_stage import apply_operator_action, encode_state

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
HOUR = NOW.replace(minute=0, second=0)
ALL_TABLES = {
    "schema_migrations",
    "flags_history",
    "flags_history_dedup",
    "flags_current",
    "flag_features",
    "flags_hourly",
    "flags_hourly_mv",
    "pipeline_metrics",
    "operator_labels",
    "number_lookups",
}


def decision(
    number: str,
    action: Action = Action.BLOCK,
    *,
    at: datetime = HOUR,
    category: str = "robocall",
    score: float = 0.9,
    expires_in: timedelta = timedelta(days=7),
    **fields: object,
) -> FlagDecision:
    values: dict[str, object] = {
        "number": number,
        "action": action,
        "category": category,
        "score": score,
        "window_start": at - timedelta(minutes=10),
        "window_end": at,
        "flagged_at": at,
        "expires_at": at + expires_in,
        "model_version": "hgb-2026.11",
        "actor": "worker-1",
        "reasons": ("short_call_ratio", "distinct_callees"),
        "features": {"short_call_ratio": 0.8, "distinct_callees": 412.0},
    }
    values.update(fields)
    return FlagDecision(**values)  # type: ignore[arg-type]


@pytest.fixture(params=["clickhouse", "chdb"])
def store_url(request: pytest.FixtureRequest) -> str:
    fixture = "clickhouse_database_url" if request.param == "clickhouse" else "chdb_url"
    return request.getfixturevalue(fixture)


@pytest.fixture()
def fresh_store(store_url: str) -> Iterator[Store]:
    store = open_store(store_url)
    yield store
    store.close()


@pytest.fixture()
def store(fresh_store: Store) -> Store:
    migrate(fresh_store)
    return fresh_store


def count(store: Store, table: str, where: str = "1") -> int:
    ((rows,),) = store.query_rows(f"SELECT count() FROM {store.table(table)} WHERE {where}")
    return rows


def test_migrate_twice_applies_once(fresh_store: Store) -> None:
    first = migrate(fresh_store)
    second = migrate(fresh_store)

    rendered = render_migrations(fresh_store.database, ServerFeatures((18, 16)), 180)
    assert first == [migration.name for migration in rendered]
    assert first[0] == "0001_schema_migrations" and "0009_operator_labels" in first
    assert second == []
    tables = fresh_store.query_rows(
        "SELECT name FROM system.tables WHERE database = %(db)s", {"db": fresh_store.database}
    )
    assert {name for (name,) in tables} == ALL_TABLES


def test_schema_follows_server_version(store: Store) -> None:
    features = ServerFeatures(store.server_version())
    ((create,),) = store.query_rows(
        "SELECT create_table_query FROM system.tables WHERE database = %(db)s AND name = %(t)s",
        {"db": store.database, "t": "flags_history"},
    )
    ((category_type,),) = store.query_rows(
        "SELECT type FROM system.columns WHERE database = %(db)s AND table = %(t)s "
        "AND name = 'category'",
        {"db": store.database, "t": "flags_history"},
    )

    assert ("TTL" in create) is features.ttl
    assert (category_type == "LowCardinality(String)") is features.low_cardinality
    if store.kind == "clickhouse":  # the local server is Debian's 18.16
        assert not features.ttl and category_type == "String"
    else:
        assert features.ttl and category_type == "LowCardinality(String)"


def test_migrate_from_two_threads_at_once(store_url: str) -> None:
    stores = [open_store(store_url)] if store_url.startswith("chdb") else []
    stores = stores * 2 or [open_store(store_url), open_store(store_url)]
    results: list[list[str]] = []
    errors: list[Exception] = []

    def run(target: Store) -> None:
        try:
            results.append(migrate(target))
        except Exception as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(target,)) for target in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert migrate(stores[0]) == []
    assert len(results) == 2
    for target in set(stores):
        target.close()


def test_retried_batch_shows_each_decision_once(store: Store) -> None:
    batch = [decision("+8613800000001"), decision("+8613800000002"), decision("+8613800000003")]

    assert insert_decisions(store, batch) == 3
    assert insert_decisions(store, batch) == 0  # the writer's own retry is skipped
    # A retry that bypasses the check (a second writer replaying the batch):
    store.insert_columns("flags_history", HISTORY_COLUMNS, _history_columns(batch))

    assert count(store, "flags_history") == 6
    assert count(store, "flags_history_dedup") == 3
    history = flag_history(store, "+8613800000001")
    assert [row["decision_id"] for row in history] == [batch[0].decision_id]
    assert history[0]["action"] == "block" and history[0]["flagged_at"] == HOUR
    assert history[0]["reasons"] == ["short_call_ratio", "distinct_callees"]


def test_current_flag_is_the_latest_decision(store: Store) -> None:
    earlier, later = HOUR - timedelta(hours=2), HOUR - timedelta(hours=1)
    insert_decisions(store, [decision("+8613900000001", Action.BLOCK, at=earlier)])
    insert_decisions(store, [decision("+8613900000001", Action.CLEAR, at=later, actor="op:li")])
    insert_decisions(store, [decision("+8613900000002", Action.WATCH, at=earlier)])
    insert_decisions(store, [decision("+8613900000002", Action.BLOCK, at=later)])
    insert_decisions(
        store, [decision("+8613900000003", at=earlier, expires_in=timedelta(minutes=30))]
    )

    flags = current_flags(store, now=NOW)

    assert [(row["number"], row["action"]) for row in flags] == [("+8613900000002", "block")]
    cleared = current_flag(store, "+8613900000001")
    assert cleared is not None
    assert (cleared["action"], cleared["actor"]) == ("clear", "op:li")
    assert [row["action"] for row in flag_history(store, "+8613900000001")] == ["clear", "block"]
    assert current_flag(store, "+8610000000000") is None


def test_features_are_stored_with_their_decision(store: Store) -> None:
    flagged = decision("+8613700000001", features={"short_call_ratio": 0.75, "night_share": 0.5})
    insert_decisions(store, [flagged])

    features = decision_features(store, flagged.number, flagged.decision_id)

    assert features == {"short_call_ratio": 0.75, "night_share": 0.5}


def test_hourly_rollup_counts_decisions_once(store: Store) -> None:
    previous = HOUR - timedelta(hours=1)
    batch = [
        decision("+8613600000001", at=previous, score=0.8),
        decision("+8613600000002", at=previous, score=0.6),
        decision("+8613600000003", at=HOUR, category="fraud", score=1.0),
        decision("+8613600000004", Action.WATCH, at=HOUR, score=0.5),
    ]
    insert_decisions(store, batch[:2])
    insert_decisions(store, batch)  # a retry that overlaps the first write

    counts = hourly_counts(store, since=previous)

    assert [(r["hour"], r["category"], r["action"], r["decisions"]) for r in counts] == [
        (previous, "robocall", "block", 2),
        (HOUR, "fraud", "block", 1),
        (HOUR, "robocall", "watch", 1),
    ]
    assert counts[0]["mean_score"] == pytest.approx(0.7)


def test_retention_drops_old_rows_everywhere(store: Store) -> None:
    old, recent = NOW - timedelta(days=400), NOW - timedelta(days=10)
    appealed = decision("+8613500000003", Action.CLEAR, at=old, source="appeal")
    insert_decisions(
        store, [decision("+8613500000001", at=old), decision("+8613500000002", at=old), appealed]
    )
    insert_decisions(store, [decision("+8613500000002", at=recent)])
    insert_metrics(store, "worker-1", {"cdr_per_s": 10.0}, at=old)
    insert_metrics(store, "worker-1", {"cdr_per_s": 20.0}, at=recent)
    if not ServerFeatures(store.server_version()).ttl:
        assert count(store, "flags_history") == 4  # nothing expires by itself on 18.16
        assert count(store, "operator_labels") == 1

    enforce_retention(store, 180)

    for table, column in [
        ("flags_history", "flagged_at"),
        ("flag_features", "flagged_at"),
        ("flags_current", "flagged_at"),
        ("flags_hourly", "hour"),
        ("pipeline_metrics", "ts"),
        ("operator_labels", "event_time"),
    ]:
        assert count(store, table, f"{column} < now() - INTERVAL 180 DAY") == 0, table
    assert count(store, "pipeline_metrics") == 1
    assert [row["flagged_at"] for row in flag_history(store, "+8613500000002")] == [recent]
    assert current_flag(store, "+8613500000001") is None
    assert enforce_retention(store, 180) == []


NASTY_STRINGS = [
    "it's",
    "back\\slash\\",
    "\\'; DROP TABLE flags_history; --",
    "%(number)s",
    "line\nbreak\ttab\rreturn",
    'quote " double',
    "nul\0byte",
    "号码 ✓",
]


def test_strings_survive_quoting_both_ways(store: Store) -> None:
    tricky = decision(
        "+8613400000001",
        category=NASTY_STRINGS[0],
        reasons=tuple(NASTY_STRINGS),
        note="".join(NASTY_STRINGS),
        actor=NASTY_STRINGS[2],
        features={text: float(i) for i, text in enumerate(NASTY_STRINGS)},
    )
    insert_decisions(store, [tricky])
    assert insert_decisions(store, [tricky]) == 0  # the id lookup binds safely too

    (row,) = flag_history(store, tricky.number)
    assert row["reasons"] == NASTY_STRINGS
    assert row["note"] == tricky.note and row["actor"] == tricky.actor
    assert row["category"] == "it's"
    features = decision_features(store, tricky.number, tricky.decision_id)
    assert list(features) == NASTY_STRINGS
    for text in NASTY_STRINGS:
        assert store.query_rows("SELECT %(text)s", {"text": text}) == [(text,)]
    assert count(store, "flags_history") == 1


def test_store_persists_across_reopening(store_url: str) -> None:
    with open_store(store_url) as first:
        migrate(first)
        insert_decisions(first, [decision("+8613300000001")])
    with open_store(store_url) as second:
        assert migrate(second) == []
        assert [row["number"] for row in flag_history(second, "+8613300000001")] == [
            "+8613300000001"
        ]


def test_sql_users_need_a_server_that_has_them(store: Store) -> None:
    with pytest.raises(UnsupportedFeature):
        create_users(store, "writer-secret", "reader-secret")


def test_a_column_of_the_wrong_type_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError):
        store.insert_columns("pipeline_metrics", ["ts", "value"], [[NOW], ["not a number"]])
    with pytest.raises(StoreError):
        store.insert_columns("pipeline_metrics", ["ts", "value"], [[NOW, NOW], [1.0]])
    assert count(store, "pipeline_metrics") == 0


def test_a_published_flag_is_stored_with_its_id_and_source(store: Store) -> None:
    at_ms = int(HOUR.timestamp()) * 1000 + 250
    flag = Flag(
        number="+8613200000001",
        action=Action.CLEAR,
        category="fraud",
        score=0.97,
        reasons=("appeal upheld: school notices",),
        model_version="hgb-1",
        window_end_ms=at_ms - 3_600_000,
        flagged_at_ms=at_ms,
        expires_at_ms=None,
        source="appeal",
    )
    insert_decisions(store, [FlagDecision.from_flag(flag, actor="op:li")])

    (row,) = flag_history(store, flag.number)
    assert row["decision_id"] == flag.decision_id
    assert (row["source"], row["actor"]) == ("appeal", "op:li")
    current = current_flag(store, flag.number)
    assert current is not None and current["source"] == "appeal"
    ((source,),) = store.query_rows(
        f"SELECT source FROM {store.table('flags_history_dedup')}"  # noqa: S608
    )
    assert source == "appeal"


def test_operators_decisions_are_labelled_examples_training_reads(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    """Confirm, dismiss and appeal, as the worker decides and the sink stores them."""
    policy = DecisionPolicy(block_threshold=0.9, watch_threshold=0.6)
    at_ms = epoch_ms(HOUR)
    snapshot = {name: float(index) for index, name in enumerate(FEATURE_NAMES)}

    def flagged(number: str, probability: float) -> dict[str, bytes]:
        scored = Score(number, "fraud", probability, "hgb-1", at_ms - 60_000, ("one-ring",),
                       features=snapshot)
        return {number: encode_state(decide(FlagState(), scored, policy, allowed=False)[0])}

    acted = []
    for kind, number, probability in [("confirm", "+8613300000001", 0.7),
                                      ("dismiss", "+8613300000002", 0.7),
                                      ("appeal", "+8613300000003", 0.95)]:
        flag = apply_operator_action(kind, number, at_ms, flagged(number, probability),
                                     hold_ms=policy.appeal_hold_ms, ttl_ms=policy.flag_ttl_ms,
                                     actor="op:li", why=f"{kind} it")
        assert flag is not None
        acted.append(FlagDecision.from_flag(flag, actor=flag.actor, note=flag.source))
    model = decision("+8613300000004", features=snapshot)
    insert_decisions(store, [*acted, model])
    insert_decisions(store, [*acted, model])  # a retried batch labels nothing twice

    rows = fetch_labels(store, since=HOUR - timedelta(days=1))
    assert [(r["number"], r["action"], r["label"], r["actor"]) for r in rows] == [
        ("+8613300000001", "confirm", "fraud", "op:li"),
        ("+8613300000002", "dismiss", "normal", "op:li"),
        ("+8613300000003", "appeal", "normal", "op:li"),
    ]
    assert rows[0]["reason"] == "confirmed by an operator: confirm it"
    assert rows[0]["event_time"] == HOUR and rows[0]["model_version"] == "hgb-1"
    assert dict(zip(rows[1]["feature_names"], rows[1]["feature_values"], strict=True)) == snapshot

    # What `callguard review labels --out DIR` writes, next to the tables train --data reads.
    write_parquet(with_overrides(builtin_scenario("tiny"), duration="3h"), tmp_path,
                  progress=False)
    labels_frame(rows).write_parquet(tmp_path / LABELS_FILE)
    if store_url.startswith("clickhouse://"):  # a chDB path is held by this test's store
        exported = tmp_path / "exported"
        done = CliRunner().invoke(review_app, ["labels", "--out", str(exported),
                                               "--url", store_url, "--days", "3650"])
        assert done.exit_code == 0 and "3 labelled examples" in done.output, done.output
        assert pl.read_parquet(exported / LABELS_FILE).equals(labels_frame(rows))
    table = build_training_table(tmp_path)
    taught = table.filter(pl.col("caller").str.starts_with("+861330000000"))
    assert sorted(zip(taught["caller"], taught["label"], strict=True)) == [
        ("+8613300000001", "fraud"), ("+8613300000002", "normal"), ("+8613300000003", "normal"),
    ]
    assert taught["end_ms"].to_list() == [at_ms] * 3
    assert taught.filter(pl.col("label") == "fraud")["campaign_id"].item() < 0
    assert taught.select(FEATURE_NAMES[3]).to_series().to_list() == [3.0] * 3


def test_the_review_queue_is_the_watches_in_force(store: Store, store_url: str) -> None:
    watched, blocked, lapsed = "+8613300000011", "+8613300000012", "+8613300000013"
    insert_decisions(store, [
        decision(watched, Action.WATCH, at=HOUR - timedelta(hours=1)),
        decision(blocked, Action.BLOCK, at=HOUR - timedelta(hours=1)),
        decision(lapsed, Action.WATCH, at=HOUR - timedelta(days=9)),
    ])
    assert [row["number"] for row in review_queue(store, HOUR)] == [watched]
    if store_url.startswith("clickhouse://"):  # a chDB path is held by this test's store
        listed = CliRunner().invoke(review_app, ["list", "--url", store_url])
        assert listed.exit_code == 0 and watched in listed.output, listed.output
        assert blocked not in listed.output and lapsed not in listed.output

    def refused(kind: str, number: str) -> str | None:
        action = ReviewAction.checked(kind, number, actor="op:li", reason="x", region="CN")
        return refusal(store, action, HOUR)

    assert refused("confirm", watched) is None and refused("dismiss", blocked) is None
    assert "not in the review queue (latest decision: block)" in refused("confirm", blocked)
    assert "not in the review queue" in refused("confirm", lapsed)
    assert "has no decision to dismiss" in refused("dismiss", "+8613300000019")


def test_number_lookups_are_stored_and_read_back(store: Store) -> None:
    from sinks.clickhouse.lookups import NumberLookup, insert_lookups, lookups_of

    seen = [
        NumberLookup(NOW - timedelta(minutes=minutes), "li", "operator", number, route,
                     "10.0.0.7", "worker:cg:6066")
        for minutes, number, route in [(2, "+8613800138000", "/api/number"),
                                       (1, "+8613800138000", "/numbers/{number}"),
                                       (1, "+8613900139000", "/api/number")]
    ]
    assert insert_lookups(store, seen) == 3
    rows = lookups_of(store, "+8613800138000")
    assert [(row["route"], row["user_name"]) for row in rows] == [
        ("/numbers/{number}", "li"), ("/api/number", "li")]
    assert rows[0]["looked_up_at"].replace(tzinfo=UTC) == NOW - timedelta(minutes=1)
