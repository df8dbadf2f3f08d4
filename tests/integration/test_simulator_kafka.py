"""The simulator's Kafka output on the real local broker, validated against the contract."""

import asyncio
import uuid

import orjson
import polars as pl
import pytest

from contracts.cdr import validate_message
from simulator.kafka import produce_to_kafka
from simulator.run import simulate
from simulator.scenario import builtin_scenario, with_overrides
from tests.conftest import read_topic

pytestmark = pytest.mark.integration


def _topics() -> tuple[str, str]:
    run = uuid.uuid4().hex[:8]  # the broker is shared by the session: no cross-talk
    return f"sim.cdr.{run}", f"sim.complaints.{run}"


def test_produced_cdrs_land_on_the_broker_and_validate(kafka_bootstrap: str) -> None:
    scenario = with_overrides(builtin_scenario("tiny"), duration="2h")
    cdr_topic, complaints_topic = _topics()
    stats = asyncio.run(produce_to_kafka(scenario, kafka_bootstrap, topic=cdr_topic,
                                         complaints_topic=complaints_topic, batch_size=100))
    expected = pl.concat([chunk.cdrs for chunk in simulate(scenario)])
    assert stats.cdrs == expected.height > 1000

    cdr_messages = stats.messages - stats.complaints
    records = read_topic(kafka_bootstrap, cdr_topic,
                         until=lambda records: len(records) >= cdr_messages, timeout_s=60)
    seen: dict[str, tuple[str, str, int]] = {}
    for record in records:
        result = validate_message(record.value)
        assert result.rejections == [], result.rejections[:3]
        seen.update({cdr.cdr_id: (cdr.caller, cdr.callee, cdr.start_ms) for cdr in result.cdrs})
    assert len(seen) == expected.height
    for row in expected.sample(500, seed=3).iter_rows(named=True):
        assert seen[row["cdr_id"]] == (row["caller"], row["callee"], row["start_ms"])

    complaints = read_topic(kafka_bootstrap, complaints_topic,
                            until=lambda records: len(records) >= stats.complaints, timeout_s=60)
    decoded = [orjson.loads(record.value) for record in complaints]
    assert len(decoded) == stats.complaints > 0
    pairs = zip(complaints, decoded, strict=True)
    assert all(record.key.decode() == body["reported"] for record, body in pairs)


def test_rate_caps_the_cdrs_per_second(kafka_bootstrap: str) -> None:
    scenario = with_overrides(builtin_scenario("tiny"), duration="1h")
    cdr_topic, complaints_topic = _topics()
    rate = 4000.0
    stats = asyncio.run(produce_to_kafka(scenario, kafka_bootstrap, topic=cdr_topic,
                                         complaints_topic=complaints_topic, rate=rate,
                                         batch_size=50))
    assert stats.seconds >= 0.9 * stats.cdrs / rate


def test_acceleration_plays_event_time_faster(kafka_bootstrap: str) -> None:
    scenario = with_overrides(builtin_scenario("tiny"), duration="1h")
    cdr_topic, complaints_topic = _topics()
    acceleration = 3600 / 1.5  # an hour in a second and a half
    stats = asyncio.run(produce_to_kafka(scenario, kafka_bootstrap, topic=cdr_topic,
                                         complaints_topic=complaints_topic,
                                         acceleration=acceleration))
    assert 1.2 <= stats.seconds <= 6.0
