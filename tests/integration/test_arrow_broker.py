"""Arrow IPC batches through the real broker and a worker: the features JSON gives."""

from __future__ import annotations

import polars as pl
import pytest

from simulator.kafka import kafka_messages
from simulator.run import simulate
from simulator.scenario import builtin_scenario, with_overrides
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
