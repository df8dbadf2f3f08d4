"""Checkpoint writes through the real broker: every record stored, in order, before the acks."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from streams.state.checkpoint import Checkpointer
from streams.state.write_behind import ChangelogWriter, WriteBehindTable

pytestmark = pytest.mark.integration

PARTITIONS = 2


def create_topic(bootstrap: str) -> str:
    name = f"checkpoints-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    finally:
        admin.close()
    return name


def read_all(bootstrap: str, topic: str, expected: int) -> dict[int, list[tuple[bytes, bytes]]]:
    """Every record of ``topic`` by partition, in offset order (waits for ``expected``)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=3000,
                             auto_offset_reset="earliest", enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
    found: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in range(PARTITIONS)}
    try:
        for record in consumer:
            found[record.partition].append((record.key, record.value))
            if sum(map(len, found.values())) >= expected:
                break
    finally:
        consumer.close()
    return found


def test_a_large_checkpoint_is_stored_whole_and_in_order_before_any_ack(kafka_bootstrap):
    topic = create_topic(kafka_bootstrap)
    # 3,000 rows of 1.5 KB, cut into batches of at most 100 KB: several per partition.
    writer = ChangelogWriter(kafka_bootstrap, 100_000, client_id="checkpoint-test")
    table = WriteBehindTable({}, lambda keys: [int(key) % PARTITIONS for key in keys])
    acked_after: list[int] = []

    async def ack(event: object) -> None:
        acked_after.append(writer_rows[0])

    writer_rows = [0]
    original_write = writer.write

    async def counting_write(name: str, records: list) -> int:
        written = await original_write(name, records)
        writer_rows[0] += written
        return written

    writer.write = counting_write  # type: ignore[method-assign]
    points = Checkpointer([(table, topic)], writer, ack, interval_s=60, max_rows=10_000)

    async def run() -> bool:
        for key in range(3000):
            table[str(key)] = b"%05d" % key + b"." * 1500
        table["7"] = b"newest"  # rewritten before the checkpoint: only this value goes
        points.hold(type("Event", (), {"message": None})())
        try:
            return await points.run()
        finally:
            await writer.stop()

    assert asyncio.run(run()) is True
    assert acked_after == [3000]  # acknowledged once all 3,000 were stored
    found = read_all(kafka_bootstrap, topic, 3000)
    assert sum(map(len, found.values())) == 3000
    for partition, records in found.items():
        keys = [int(key) for key, _ in records]
        assert keys == sorted(keys) and all(k % PARTITIONS == partition for k in keys)
    assert dict(found[1])[b"7"] == b"newest"
    assert table.pending == 0 and table["7"] == b"newest"


def test_an_unreachable_broker_keeps_the_messages_held_and_the_rows_waiting():
    writer = ChangelogWriter("127.0.0.1:1", 100_000, client_id="checkpoint-test")
    table = WriteBehindTable({}, lambda keys: [0] * len(keys))
    acked: list[object] = []

    async def ack(event: object) -> None:
        acked.append(event)

    points = Checkpointer([(table, "nowhere")], writer, ack, interval_s=60, max_rows=10)

    async def run() -> bool:
        table["1"] = b"state"
        points.hold(object())
        return await points.run()

    assert asyncio.run(run()) is False
    assert acked == [] and points.held == 1 and table.pending == 1
    assert points.stats.failures == 1
