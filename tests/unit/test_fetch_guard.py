"""The fetch filter Faust hands aiokafka: an empty set of active partitions fetches nothing."""

from __future__ import annotations

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from streams.workarounds.fetch_guard import ActivePartitions, install


def drained(partitions: object, buffered: list[str]) -> list[str]:
    """What aiokafka's ``Fetcher.fetched_records`` hands over of ``buffered``."""
    return [tp for tp in buffered if not (partitions and tp not in partitions)]


def test_an_empty_live_set_drains_nothing_and_follows_later_changes() -> None:
    live: set[str] = set()
    guarded = ActivePartitions(live)
    buffered = ["raw:0", "routed:2"]
    assert drained(live, buffered) == buffered  # aiokafka: empty means every partition
    assert drained(guarded, buffered) == []
    live.add("routed:2")  # Faust resumes a partition while the fetch waits
    assert drained(guarded, buffered) == ["routed:2"]
    assert len(guarded) == 1 and list(guarded) == ["routed:2"]


def test_installing_routes_faust_fetches_through_the_guard() -> None:
    install()
    install()
    assert AIOKafkaConsumerThread._fetch_records.__module__ == "streams.workarounds.fetch_guard"
