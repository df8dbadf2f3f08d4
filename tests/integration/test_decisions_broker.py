"""CDRs in, decisions out: scoring, flags on the topic, lookups, appeals, the store."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime

import orjson
import polars as pl
import pytest
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from models.operator_labels import label_training_rows, labels_frame
from simulator.run import simulate
from simulator.scenario import builtin_scenario, with_overrides
from simulator.world import build_world
from sinks.clickhouse import current_flag, current_flags, flag_history, open_store
from sinks.clickhouse.labels import fetch_labels
from streams.http.dashboard.queries import as_of
from streams.pipeline.trace import source_ms
from streams.review_cli import app as review_app
from streams.stages.caller_features import decode_features
from tests.conftest import ROOT, callguard, read_topic
from tests.integration.streaming import (
    get_json,
    produce_cdrs,
    run_topics,
    start_deciding_worker,
    wait_for,
)

pytestmark = pytest.mark.integration

SCHEMA = json.loads((ROOT / "contracts" / "schemas" / "flag.schema.json").read_text())


def test_decisions_reach_the_topic_the_lookup_and_the_store(
    kafka_bootstrap, kafka_producer, start_worker, model_dir, clickhouse_database_url, tmp_path
):
    worker, env = start_deciding_worker(
        start_worker, model_dir=model_dir, store_url=clickhouse_database_url,
        allowlist=tmp_path / "allow.sqlite",
    )
    port = worker.web_port
    wait_for(lambda: get_json(f"http://127.0.0.1:{port}/status")["model"]["version"], 60,
             "the worker to load the model", worker.log)
    # The model was loaded and its kernels warmed before the worker joined its groups.
    wait_for(lambda: "Joined group" in worker.log(), 60, "the worker to join", worker.log)
    log = worker.log()
    assert "loaded and warmed in" in log
    assert log.index("loaded and warmed in") < log.index("Joined group")
    assert log.index("state kernels warmed in") < log.index("Joined group")
    # Traffic the model has not seen: another seed of the tiny scenario.
    scenario = with_overrides(builtin_scenario("tiny"), seed=4242, duration="3h")
    cdrs = pl.concat([chunk.cdrs for chunk in simulate(scenario)])
    produce_cdrs(kafka_producer, env["CALLGUARD_TOPIC_CDR_RAW"], cdrs)
    wait_for(
        lambda: get_json(f"http://127.0.0.1:{port}/status")["counters"]["features"]["accepted"]
        >= cdrs.height, 240, "every CDR", worker.log,
    )
    flags_topic = env["CALLGUARD_TOPIC_FLAGS"]
    records = read_topic(kafka_bootstrap, flags_topic, until=lambda rs: len(rs) > 0, timeout_s=60)
    decisions = [orjson.loads(r.value) for r in records]
    validator = Draft202012Validator(SCHEMA)
    for decision, record in zip(decisions, records, strict=True):
        validator.validate(decision)
        assert record.key == decision["number"].encode()
        # The latency trace: the oldest cdr.raw timestamp behind the decision.
        source = source_ms(record.headers)
        assert source is not None and 0 <= record.timestamp - source < 600_000, record.headers

    world = build_world(scenario)
    nuisance = set(world.ground_truth()["number"].to_list())
    legit = set(world.legit_callers()["number"].to_list())
    flagged = {d["number"] for d in decisions if d["action"] in ("block", "watch")}
    blocked = {d["number"] for d in decisions if d["action"] == "block"}
    assert flagged, "no number was flagged"
    assert not blocked & legit, f"legitimate callers blocked: {blocked & legit}"
    assert len(flagged & nuisance) >= 0.9 * len(flagged), (flagged - nuisance)
    assert all(d["reasons"] for d in decisions)

    # Lookup: a flagged number in another format, an unknown number, a bad one.
    number = sorted(blocked or flagged)[0]
    latest = [d for d in decisions if d["number"] == number][-1]
    answer = get_json(f"http://127.0.0.1:{port}/numbers/{number.removeprefix('+86')}")
    assert answer["flagged"] and answer["action"] == latest["action"]
    assert answer["reasons"] == latest["reasons"]
    assert get_json(f"http://127.0.0.1:{port}/numbers/13000000001")["flagged"] is False
    assert "error" in get_json(f"http://127.0.0.1:{port}/numbers/not-a-number")

    # Appeal: the owning worker publishes a clear, audited with the operator.
    callguard("appeal", number, "--actor", "op:li", "--why", "registered school notices",
              env={**env, "CALLGUARD_BROKER_URL": f"kafka://{kafka_bootstrap}",
                   "PATH": "/usr/bin:/bin"})
    cleared = read_topic(
        kafka_bootstrap, flags_topic,
        until=lambda rs: any(orjson.loads(r.value).get("source") == "appeal" for r in rs),
    )
    appeal = [orjson.loads(r.value) for r in cleared if orjson.loads(r.value)["source"] == "appeal"]
    assert appeal[0]["number"] == number and appeal[0]["action"] == "clear"
    assert appeal[0]["actor"] == "op:li"
    assert get_json(f"http://127.0.0.1:{port}/numbers/{number}")["flagged"] is False

    # The same traffic goes on, three hours later: the appealed number is scored again
    # (its rows reach caller.features) but not blocked again within the hold.
    later = cdrs.with_columns(pl.col("start_ms") + 3 * 3600 * 1000,
                              cdr_id=pl.col("cdr_id") + "-later")
    produce_cdrs(kafka_producer, env["CALLGUARD_TOPIC_CDR_RAW"], later)
    wait_for(
        lambda: get_json(f"http://127.0.0.1:{port}/status")["counters"]["features"]["accepted"]
        >= 2 * cdrs.height, 240, "every CDR of the later traffic", worker.log,
    )
    appealed_ms = _ms(appeal[0]["flagged_at"])
    rescored = read_topic(
        kafka_bootstrap, env["CALLGUARD_TOPIC_FEATURES"],
        until=lambda rs: any(_scored_after(r.value, number, appealed_ms) for r in rs),
        timeout_s=120,
    )
    assert rescored
    after = [d for d in _decisions(kafka_bootstrap, flags_topic)
             if d["number"] == number and _ms(d["flagged_at"]) > appealed_ms]
    assert not [d for d in after if d["action"] == "block"], after
    assert all("goes to review" in d["reasons"][0] for d in after if d["action"] == "watch")

    # The review queue: an operator confirms one watch and dismisses one block.
    review_env = {**env, "CALLGUARD_BROKER_URL": f"kafka://{kafka_bootstrap}",
                  "CALLGUARD_STORE_URL": clickhouse_database_url,
                  "CALLGUARD_LOOKUP_EVENT_TIME": "true"}
    latest = {d["number"]: d for d in _decisions(kafka_bootstrap, flags_topic)}
    watched = sorted(n for n, d in latest.items() if d["action"] == "watch" and n != number)
    blocked_now = sorted(n for n, d in latest.items() if d["action"] == "block" and n != number)
    assert watched and blocked_now, latest
    reviewed = {watched[0]: "confirm", blocked_now[0]: "dismiss"}
    for reviewed_number, kind in reviewed.items():
        # The store must show the decision before the review's check accepts it.
        wait_for(lambda n=reviewed_number: _stored(clickhouse_database_url, n), 60,
                 "the store to show the flag", worker.log)
        done = CliRunner().invoke(review_app, [kind, reviewed_number, "--actor", "op:wu",
                                               "--reason", f"{kind} after a look"],
                                  env=review_env)
        assert done.exit_code == 0, done.output
    by_operator = read_topic(
        kafka_bootstrap, flags_topic,
        until=lambda rs: sum(orjson.loads(r.value)["source"] == "operator" for r in rs) >= 2,
    )
    operator = {d["number"]: d for d in map(orjson.loads, (r.value for r in by_operator))
                if d["source"] == "operator"}
    assert operator[watched[0]]["action"] == "block"
    assert operator[blocked_now[0]]["action"] == "clear"
    assert {d["actor"] for d in operator.values()} == {"op:wu"}

    # The store holds every decision exactly once, and the latest state per number.
    cleared = by_operator
    all_decisions = {orjson.loads(r.value)["decision_id"] for r in cleared}
    store = open_store(clickhouse_database_url)
    try:
        def stored() -> int:
            return store.query_rows(
                f"SELECT uniqExact(decision_id), count() FROM {store.table('flags_history')}"
            )[0]
        wait_for(lambda: stored()[0] >= len(all_decisions), 60, "the store to catch up",
                 worker.log)
        distinct, rows = stored()
        assert distinct == rows == len(all_decisions)
        history = flag_history(store, number)
        assert any(row["action"] == "clear" and row["actor"] == "op:li" for row in history)
        now = as_of(store, event_time=True)  # the stream's clock: 2018
        current = {row["number"]: row for row in current_flags(store, now=now)}
        # Held: not flagged again, unless the later traffic went to review as a watch.
        assert number not in current or current[number]["action"] == "watch"
        assert current[watched[0]]["source"] == "operator"
        assert blocked_now[0] not in current
        assert_no_callee_in_clear(store, cdrs)

        # Confirm, dismiss and the appeal are labelled examples that training reads.
        labelled = fetch_labels(store, since=datetime(2018, 1, 1, tzinfo=UTC))
        assert {(r["number"], r["action"], r["actor"]) for r in labelled} == {
            (number, "appeal", "op:li"),
            (watched[0], "confirm", "op:wu"),
            (blocked_now[0], "dismiss", "op:wu"),
        }
        rows = label_training_rows(labels_frame(labelled))
        assert dict(zip(rows["caller"], rows["label"], strict=True)) == {
            number: "normal", blocked_now[0]: "normal",
            watched[0]: latest[watched[0]]["category"],
        }
    finally:
        store.close()


def _ms(rfc3339: str) -> int:
    return round(datetime.fromisoformat(rfc3339).timestamp() * 1000)


def _decisions(bootstrap: str, topic: str) -> list[dict]:
    """Every decision on the flags topic so far, in each number's order."""
    records = read_topic(bootstrap, topic, until=lambda rs: len(rs) > 0)
    return [orjson.loads(r.value) for r in sorted(records, key=lambda r: r.offset)]


def _scored_after(value: bytes, number: str, after_ms: int) -> bool:
    rows = decode_features(value)
    return any(n == number and end > after_ms
               for n, end in zip(rows["numbers"], rows["window_end_ms"], strict=True))


def _stored(store_url: str, number: str) -> bool:
    with open_store(store_url) as store:
        return current_flag(store, number) is not None


def assert_no_callee_in_clear(store, cdrs: pl.DataFrame) -> None:
    """PIPL: no table holds a callee's number (nor a raw CDR); callers flagged may appear."""
    callers = set(cdrs["caller"].to_list())
    # Subscribers' numbers; short service codes (10086, 95588) are no one's personal data.
    callees_only = {n for n in set(cdrs["callee"].to_list()) - callers if len(n) >= 10}
    tables = [row[0] for row in store.query_rows(
        f"SELECT name FROM system.tables WHERE database = '{store.database}'"
        " AND engine NOT LIKE '%View'"
    )]
    assert "flags_history" in tables
    for table in tables:
        columns = store.query_rows(
            f"SELECT name, type FROM system.columns WHERE database = '{store.database}'"
            f" AND table = '{table}'"
        )
        for column, kind in columns:
            if "String" not in kind:
                continue
            values = store.query_rows(
                f"SELECT DISTINCT toString({column}) FROM {store.table(table)}"
                if "Array" not in kind else
                f"SELECT DISTINCT arrayJoin({column}) FROM {store.table(table)}"
            )
            text = " ".join(str(value[0]) for value in values)
            leaked = [n for n in callees_only if n in text or n.removeprefix("+86") in text]
            assert not leaked, f"{table}.{column} holds callee numbers: {leaked[:3]}"


def test_a_promoted_model_is_picked_up_without_restart_and_decides_what_waited(
    kafka_bootstrap, kafka_producer, start_worker, model_dir, tmp_path
):
    registry = tmp_path / "models"
    shutil.copytree(model_dir, registry)
    version = (registry / "current").read_text()
    version = json.loads(version)["version"]
    (registry / "current").unlink()
    (registry / "history.jsonl").unlink()  # nothing promoted yet
    env = run_topics()
    worker = start_worker(**env, CALLGUARD_MODEL_DIR=str(registry),
                          CALLGUARD_MODEL_REFRESH_S="1", CALLGUARD_STORE_ENABLED="false")
    status_url = f"http://127.0.0.1:{worker.web_port}/status"
    wait_for(lambda: get_json(status_url)["model"]["status"] == "no_model", 60,
             "the worker to report that no model serves", worker.log)
    # Traffic while no model serves: its rows are emitted and wait for one.
    scenario = with_overrides(builtin_scenario("tiny"), seed=4243, duration="3h")
    cdrs = pl.concat([chunk.cdrs for chunk in simulate(scenario)])
    produce_cdrs(kafka_producer, env["CALLGUARD_TOPIC_CDR_RAW"], cdrs)

    def counters() -> dict:
        return get_json(status_url)["counters"]

    wait_for(lambda: counters()["features"]["accepted"] >= cdrs.height
             and counters()["features"]["emitted"] > 0, 240, "every CDR, rows emitted",
             worker.log)
    emitted = counters()["features"]["emitted"]
    assert counters()["decisions"]["scored"] == 0
    callguard("models", "promote", version, "--actor", "ops", "--why", "first model",
              env={"CALLGUARD_MODEL_DIR": str(registry), "PATH": "/usr/bin:/bin"})
    wait_for(lambda: get_json(status_url)["model"]["version"] == version, 30,
             "the worker to serve the promoted model", worker.log)
    # Every row emitted before the model came is scored once it serves, none lost.
    wait_for(lambda: counters()["decisions"]["scored"] >= emitted, 60,
             "the waiting rows to be scored", worker.log)
    assert counters()["decisions"]["unscored_no_model"] == 0
    flags = read_topic(kafka_bootstrap, env["CALLGUARD_TOPIC_FLAGS"],
                       until=lambda rs: len(rs) > 0, timeout_s=60)
    assert flags, "nothing flagged from the rows that waited for the model"
    assert worker.process.poll() is None
