"""How long a fetch may wait at the broker for data: Faust fixes 1.5 s, callguard sets it.

faust-streaming 0.15.3 builds its aiokafka consumer with ``fetch_max_wait_ms=1500``
and offers no setting for it. Apache Kafka answers a waiting fetch as soon as
data arrives, so there the value only bounds fetches on idle partitions. Tansu,
the embedded broker of the demo and the tests, holds a fetch that found no
data for the whole wait: measured here, a record consumed by a caught-up
consumer arrived a median 466 ms after it was produced with a 500 ms wait and
15 ms with 50 ms. Each hop of the pipeline (``cdr.raw``, ``cdr.by_caller``,
``cdr.flags``) then added up to 1.5 s to a CDR's path to its flag.

:func:`install` makes Faust's consumer use ``CALLGUARD_FETCH_MAX_WAIT_MS``;
the ingest consumer (:mod:`streams.pipeline.intake`) takes the same setting. Tied to
faust-streaming 0.15.3 and aiokafka 0.14.0 (the attribute is read when the
consumer starts): check again when upgrading either.

On Apache Kafka Faust's 1.5 s is harmless (it only bounds fetches on idle
partitions), so the module can be dropped there, or everywhere once the
embedded broker (Tansu 0.6.0) answers a waiting fetch when data arrives, or
faust-streaming offers the setting.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

__all__ = ["install"]

_ORIGINAL = AIOKafkaConsumerThread._create_worker_consumer
_wait_ms = 1500


def _create_worker_consumer(self: AIOKafkaConsumerThread, transport: Any) -> Any:
    consumer = _ORIGINAL(self, transport)
    consumer._fetch_max_wait_ms = _wait_ms
    return consumer


def install(fetch_max_wait_ms: int) -> None:
    """Every Faust worker consumer built from now on waits at most ``fetch_max_wait_ms``."""
    global _wait_ms
    _wait_ms = fetch_max_wait_ms
    AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer  # type: ignore[method-assign]
