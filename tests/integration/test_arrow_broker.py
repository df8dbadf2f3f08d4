"""Arrow IPC batches through the real broker and a worker: the features JSON gives."""

from __future__ import annotations

import asyncio
import uuid

import polars as pl
import pytest

from contracts.cdr_arrow import ARROW_STREAM_CONTENT_TYPE, validate_arrow_message
from simulator.kafka import kafka_messages, produce_to_kafka
from simulator.run import simulate
from simulator.scenario import builtin_scenario, with_overrides
from tests.conftest import read_topic
from tests.integration.streaming import (
    assert_features_match_offline,
    get_json,
    run_topics,
    sample_callers,
    wait_for,
)

pytestmark = pytest.mark.integration


def test_arrow_batches_give_the_features_json_batches_give(kafka_producer, start_worker):
    scenario = with_overrides(builtin_scenario("tiny"), duration="3h")
    chunks = list(simulate(scenario))
    cdrs = pl.concat([chunk.cdrs for chunk in chunks])
    env = run_topics()
    worker = start_worker(**env)
    sent = 0
    for chunk in chunks:
        for message in kafka_messages(chunk, scenario, topic=env["CALLGUARD_TOPIC_CDR_RAW"],
                                      complaints_topic="unused", batch_size=500,
                                      encoding="arrow"):
            if message.cdrs:
                # Raw number formats, text and epoch times, dictionary dispositions.
                kafka_producer.send(message.topic, message.value, partition=0,
                                    headers=list(message.headers))
                sent += message.cdrs
    kafka_producer.flush()
    assert sent == cdrs.height

    def counters() -> dict:
        return get_json(f"http://127.0.0.1:{worker.web_port}/status")["counters"]

    wait_for(lambda: counters()["features"]["accepted"] >= cdrs.height, 180, "every CDR",
             worker.log)
    final = counters()
    assert final["records_rejected"] == 0 and final["records_valid"] == cdrs.height
    assert final["features"]["accepted"] == cdrs.height
    assert final["features"]["late_dropped"] == final["features"]["duplicates"] == 0
    assert_features_match_offline(worker.web_port, cdrs, sample_callers(cdrs))


def test_the_simulator_produces_arrow_batches_with_the_header(kafka_bootstrap: str) -> None:
    scenario = with_overrides(builtin_scenario("tiny"), duration="1h")
    run = uuid.uuid4().hex[:8]
    cdr_topic = f"sim.arrow.{run}"
    stats = asyncio.run(produce_to_kafka(scenario, kafka_bootstrap, topic=cdr_topic,
                                         complaints_topic=f"sim.complaints.{run}",
                                         batch_size=200, encoding="arrow"))
    expected = pl.concat([chunk.cdrs for chunk in simulate(scenario)])
    records = read_topic(kafka_bootstrap, cdr_topic, timeout_s=60,
                         until=lambda rs: len(rs) >= stats.messages - stats.complaints)
    assert all(dict(r.headers)["content-type"] == ARROW_STREAM_CONTENT_TYPE.encode()
               for r in records)
    results = [validate_arrow_message(r.value) for r in records]
    assert [r.rejections for r in results if r.rejections] == []
    got = pl.concat([r.cdrs for r in results]).sort("cdr_id")
    want = expected.sort("cdr_id")
    assert got.select("cdr_id", "caller", "callee", "start_ms").equals(
        want.select("cdr_id", "caller", "callee", "start_ms"))
