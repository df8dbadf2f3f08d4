"""ClickHouse goes down under a running worker: scoring and flags go on, nothing is lost.

The flag-sink agent acknowledges a batch of ``cdr.flags`` only once it is in
the store, so during the outage its offsets stay behind (Kafka is the
buffer); when the server is back, it catches up, and every decision shows
exactly once.
"""

from __future__ import annotations

import orjson
import polars as pl
import pytest

from simulator.run import simulate
from simulator.scenario import builtin_scenario, with_overrides
from sinks.clickhouse import open_store
from tests.conftest import read_topic
from tests.integration.streaming import get_json, produce_cdrs, run_topics, wait_for

pytestmark = pytest.mark.integration


def test_decisions_survive_a_clickhouse_outage(
    kafka_bootstrap, kafka_producer, start_worker, model_dir, clickhouse_private_server
):
    url = clickhouse_private_server.database_url("outage")
    env = run_topics()
    worker = start_worker(**env, CALLGUARD_MODEL_DIR=str(model_dir), CALLGUARD_STORE_URL=url)
    status_url = f"http://127.0.0.1:{worker.web_port}/status"
    wait_for(lambda: get_json(status_url)["model"]["version"], 60, "the model", worker.log)
    cdrs = pl.concat([c.cdrs for c in simulate(with_overrides(builtin_scenario("tiny"),
                                                                seed=777, duration="4h"))])
    first, rest = cdrs.head(cdrs.height // 3), cdrs.tail(cdrs.height - cdrs.height // 3)

    def counters() -> dict:
        return get_json(status_url)["counters"]

    produce_cdrs(kafka_producer, env["CALLGUARD_TOPIC_CDR_RAW"], first)
    wait_for(lambda: counters()["flags_stored"] > 0, 120, "first decisions stored", worker.log)

    clickhouse_private_server.stop()
    published_before = sum(counters()["decisions"][a] for a in ("block", "watch", "clear"))
    produce_cdrs(kafka_producer, env["CALLGUARD_TOPIC_CDR_RAW"], rest)
    wait_for(lambda: counters()["features"]["accepted"] >= cdrs.height, 240,
             "every CDR scored while ClickHouse is down", worker.log)
    published = sum(counters()["decisions"][a] for a in ("block", "watch", "clear"))
    assert published > published_before, "no decision was made during the outage"
    wait_for(lambda: get_json(status_url)["store"]["insert_failures"] > 0, 60,
             "the sink to notice the outage", worker.log)
    assert worker.process.poll() is None

    clickhouse_private_server.ensure()
    records = read_topic(kafka_bootstrap, env["CALLGUARD_TOPIC_FLAGS"],
                         until=lambda rs: len(rs) >= published)
    on_topic = {orjson.loads(r.value)["decision_id"] for r in records}
    store = open_store(url)
    try:
        def stored() -> tuple[int, int]:
            return tuple(store.query_rows(
                f"SELECT uniqExact(decision_id), count() FROM {store.table('flags_history')}"
            )[0])

        wait_for(lambda: stored()[0] >= len(on_topic), 120, "the store to catch up", worker.log)
        distinct, rows = stored()
        assert distinct == rows == len(on_topic)
        ids = {row[0] for row in store.query_rows(
            f"SELECT decision_id FROM {store.table('flags_history')}")}
        assert ids == on_topic
    finally:
        store.close()
