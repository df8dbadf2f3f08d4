"""Features through the real broker and workers: parity, restarts, scale-out."""

from __future__ import annotations

import signal
import urllib.request

import orjson
import polars as pl
import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from simulator.run import simulate
from simulator.scenario import builtin_scenario, with_overrides
from tests.integration.streaming import (
    assert_features_match_offline,
    caught_up,
    get_json,
    produce_cdrs,
    run_topics,
    sample_callers,
    wait_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cdrs() -> pl.DataFrame:
    scenario = with_overrides(builtin_scenario("tiny"), duration="3h")
    return pl.concat([chunk.cdrs for chunk in simulate(scenario)])


def applied(port: int) -> int:
    return get_json(f"http://127.0.0.1:{port}/status")["counters"]["features"]["accepted"]


def test_stream_features_match_offline_features(kafka_producer, start_worker, cdrs):
    env = run_topics()
    worker = start_worker(**env)
    produce_cdrs(kafka_producer, env["CALLGUARD_TOPIC_CDR_RAW"], cdrs)
    wait_for(lambda: applied(worker.web_port) >= cdrs.height, 180, "every CDR", worker.log)
    counters = get_json(f"http://127.0.0.1:{worker.web_port}/status")["counters"]
    assert counters["records_rejected"] == 0
    assert counters["features"]["accepted"] == cdrs.height
    assert counters["features"]["late_dropped"] == counters["features"]["duplicates"] == 0
    assert_features_match_offline(worker.web_port, cdrs, sample_callers(cdrs))


def test_state_survives_a_worker_restart(kafka_producer, start_worker, cdrs):
    env = run_topics()
    first_half, second_half = cdrs.head(cdrs.height // 2), cdrs.tail(cdrs.height - cdrs.height // 2)
    worker = start_worker(**env)
    produce_cdrs(kafka_producer, env["CALLGUARD_TOPIC_CDR_RAW"], first_half)
    wait_for(lambda: applied(worker.web_port) >= first_half.height, 180, "first half", worker.log)
    worker.stop()
    # A new worker with an empty data dir rebuilds the table from its changelog.
    successor = start_worker(**env)
    produce_cdrs(kafka_producer, env["CALLGUARD_TOPIC_CDR_RAW"], second_half)
    numbers = sample_callers(cdrs)
    wait_for(lambda: caught_up(successor.web_port, cdrs, numbers), 180, "second half",
             successor.log)
    counters = get_json(f"http://127.0.0.1:{successor.web_port}/status")["counters"]
    print("successor counters:", counters["features"])
    assert_features_match_offline(successor.web_port, cdrs, numbers)


def test_two_workers_one_killed_mid_stream_lose_and_double_nothing(
    kafka_producer, start_worker, cdrs
):
    env = run_topics()
    survivor = start_worker(**env)
    victim = start_worker(**env)
    wait_for(
        lambda: all(
            any(tp.startswith(env["CALLGUARD_TOPIC_BY_CALLER"])
                for tp in get_json(f"http://127.0.0.1:{w.web_port}/status")["assigned"])
            for w in (survivor, victim)
        ),
        120, "both workers to own partitions", victim.log,
    )
    produce_cdrs(kafka_producer, env["CALLGUARD_TOPIC_CDR_RAW"], cdrs.head(cdrs.height // 2))
    wait_for(lambda: applied(victim.web_port) > 0, 120, "the victim to apply calls", victim.log)
    victim.process.send_signal(signal.SIGKILL)  # no goodbye, no final commit
    victim.process.wait()
    produce_cdrs(kafka_producer, env["CALLGUARD_TOPIC_CDR_RAW"], cdrs.tail(cdrs.height // 2 + 1))

    def taken_over() -> bool:
        routed = get_json(f"http://127.0.0.1:{survivor.web_port}/status")
        owns_all = sum(tp.startswith(env["CALLGUARD_TOPIC_BY_CALLER"])
                       for tp in routed["assigned"]) == 4
        return owns_all and caught_up(survivor.web_port, cdrs, sample_callers(cdrs))

    wait_for(taken_over, 240, "the survivor to take over and catch up", survivor.log)
    assert_features_match_offline(survivor.web_port, cdrs, sample_callers(cdrs))


def test_unkeyed_input_read_as_a_backlog_gives_the_keyed_features(kafka_producer, start_worker,
                                                                  cdrs, kafka_bootstrap):
    # An exporter with a sticky partitioner: batches of 200 CDRs, each to the next of 4
    # partitions, so every partition holds the whole period. The worker starts after
    # all of it is on the topic and reads it as a backlog.
    env = run_topics()
    raw = env["CALLGUARD_TOPIC_CDR_RAW"]
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(raw, 4, 1)])
    finally:
        admin.close()
    rows = cdrs.drop("start_time").rename({"start_ms": "start_time"})
    for index, start in enumerate(range(0, rows.height, 200)):
        batch = orjson.dumps(rows.slice(start, 200).to_dicts())
        kafka_producer.send(raw, batch, partition=index % 4)
    kafka_producer.flush()
    worker = start_worker(**env)

    def seen() -> dict:
        return get_json(f"http://127.0.0.1:{worker.web_port}/status")["counters"]["features"]

    wait_for(lambda: sum(seen()[k] for k in ("accepted", "late_dropped", "duplicates"))
             >= cdrs.height, 180, "every CDR", worker.log)
    features = seen()
    assert (features["late_dropped"], features["accepted"]) == (0, cdrs.height), features
    assert_features_match_offline(worker.web_port, cdrs, sample_callers(cdrs))
    # Where each input partition stands in event time, and lateness per routed partition.
    status = get_json(f"http://127.0.0.1:{worker.web_port}/status")
    reached = {key: ms for key, ms in status["ingest_event_time_ms"].items()
               if key.startswith(f"{raw}:")}
    assert sorted(reached) == [f"{raw}:{p}" for p in range(4)]
    # A message stands at its first call's time: each partition's last batch's first call.
    firsts = {index % 4: int(rows["start_time"][start])
              for index, start in enumerate(range(0, rows.height, 200))}
    assert reached == {f"{raw}:{p}": ms for p, ms in firsts.items()}
    assert status["ingest_drift_ms"] == max(firsts.values()) - min(firsts.values())
    by_partition = status["counters"]["late_by_partition"]
    assert sum(counts["calls"] for counts in by_partition.values()) == cdrs.height
    assert all(counts["late_dropped"] == 0 for counts in by_partition.values())
    url = f"http://127.0.0.1:{worker.web_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - localhost
        metrics = response.read().decode()
    assert "callguard_ingest_drift_seconds " in metrics
    assert 'callguard_partition_late_events_total{partition="0",kind="dropped"} 0' in metrics
