"""A SIGTERM'd worker stops well inside an orchestrator's grace period and commits its work."""

from __future__ import annotations

import subprocess
import time

import polars as pl
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from simulator.run import simulate
from simulator.scenario import builtin_scenario, with_overrides
from streams.broker import LocalBroker
from tests.conftest import WorkerProcess
from tests.integration.streaming import (
    caught_up,
    get_json,
    kill_broker,
    produce_cdrs,
    run_topics,
    sample_callers,
    wait_for,
)

pytestmark = pytest.mark.integration

# WorkerProcess.stop (like Kubernetes' default grace period) kills after 30 s.
STOP_WITHIN_S = 15.0
# CALLGUARD_SHUTDOWN_TIMEOUT_S (9 s) bounds every stop; loosely here, for a
# loaded 2-core machine.
BOUNDED_STOP_S = 25.0


@pytest.fixture(scope="module")
def cdrs() -> pl.DataFrame:
    # About 12,000 CDRs: enough that the producer buffer is still busy with
    # changelog writes when the last call is applied.
    scenario = with_overrides(builtin_scenario("tiny"), duration="3h")
    return pl.concat([chunk.cdrs for chunk in simulate(scenario)])


def feature_counters(port: int) -> dict:
    return get_json(f"http://127.0.0.1:{port}/status")["counters"]["features"]


def uncommitted(bootstrap: str, group: str, topics: list[str]) -> dict[str, int]:
    """Messages per partition of ``topics`` past the group's committed offset."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, partition) for topic in topics
                      for partition in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = consumer.end_offsets(partitions)
        lag = {f"{tp.topic}:{tp.partition}": ends[tp] - (consumer.committed(tp) or 0)
               for tp in partitions}
    finally:
        consumer.close()
    return {tp: behind for tp, behind in lag.items() if behind > 0}


def test_sigterm_stops_in_time_commits_and_successor_reads_nothing_twice(
    kafka_bootstrap, kafka_producer, start_worker, cdrs
):
    env = run_topics()
    first = start_worker(**env)
    produce_cdrs(kafka_producer, env["CALLGUARD_TOPIC_CDR_RAW"], cdrs)
    wait_for(lambda: feature_counters(first.web_port)["accepted"] >= cdrs.height, 180,
             "every CDR applied", first.log)

    started = time.monotonic()
    first.process.terminate()
    try:
        code = first.process.wait(STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"no exit {STOP_WITHIN_S} s after SIGTERM\n{first.log()[-3000:]}")
    print(f"stopped in {time.monotonic() - started:.1f} s with exit code {code}")
    assert code == 0, first.log()[-3000:]

    # Ingest reads cdr.raw in a consumer group of its own (streams.pipeline.intake).
    ingest_group = f"{env['CALLGUARD_APP_ID']}-ingest"
    assert uncommitted(kafka_bootstrap, ingest_group, [env["CALLGUARD_TOPIC_CDR_RAW"]]) == {}
    assert uncommitted(kafka_bootstrap, env["CALLGUARD_APP_ID"],
                       [env["CALLGUARD_TOPIC_BY_CALLER"]]) == {}

    # The successor rebuilds every caller from the changelog alone: nothing
    # read again, nothing lost from the producer buffer.
    successor = start_worker(**env)
    numbers = sample_callers(cdrs)
    wait_for(lambda: caught_up(successor.web_port, cdrs, numbers), 120,
             "the successor to hold every call of the sampled callers", successor.log)
    counters = feature_counters(successor.web_port)
    assert counters["calls"] == counters["replayed"] == 0, counters


def test_sigterm_after_the_broker_died_ends_the_worker_in_time_and_says_what_it_could_not_do(
    tmp_path, cdrs
):
    env = run_topics()
    with LocalBroker(log_path=tmp_path / "tansu.log") as broker:
        worker = WorkerProcess(broker.bootstrap, tmp_path, **env).start()
        try:
            producer = KafkaProducer(bootstrap_servers=broker.bootstrap,
                                     max_request_size=16 * 1024 * 1024)
            produce_cdrs(producer, env["CALLGUARD_TOPIC_CDR_RAW"], cdrs)
            producer.close()
            wait_for(lambda: feature_counters(worker.web_port)["accepted"] >= cdrs.height, 180,
                     "every CDR applied", worker.log)
            kill_broker(broker)

            started = time.monotonic()
            worker.process.terminate()
            try:
                code = worker.process.wait(30)
            except subprocess.TimeoutExpired:
                pytest.fail(f"no exit 30 s after SIGTERM\n{worker.log()[-3000:]}")
            stopped_s = time.monotonic() - started
        finally:
            worker.stop()
    problems = [line for line in worker.log().splitlines() if "stop problem:" in line]
    print(f"stopped in {stopped_s:.1f} s with exit code {code}", *problems, sep="\n")
    assert code != 0, worker.log()[-3000:]
    assert stopped_s < BOUNDED_STOP_S, worker.log()[-3000:]
    assert problems, worker.log()[-3000:]
