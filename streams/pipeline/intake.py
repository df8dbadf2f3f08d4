"""Ingest: ``cdr.raw`` and ``complaints`` read in batches by a consumer group of their own.

Measured (bench/profile_worker.py, one CDR per JSON message): with the ingest
agent reading ``cdr.raw`` through Faust, about 70% of the worker's CPU went
to Faust's per-message machinery (a consumer message, an event, a task and
a flow-control wait per Kafka message), several times the cost of
validating the CDR. Ingest keeps no state, so it needs none of what that
machinery buys: it reads with aiokafka's ``getmany`` (a list per fetch),
validates the whole list with the pure functions of :mod:`streams.pipeline.ingest`,
sends the routed batches and dead letters, waits until the broker has them,
and only then commits the offsets it read. The stateful part (the features
agent, its tables and changelogs) stays a Faust agent on ``cdr.by_caller``.

Input partitions are kept together in time (:mod:`streams.pipeline.alignment`):
fetched records wait in per-partition buffers and go on in event-time order
across partitions, partitions that run ahead being paused, so a caller's
calls reach the features in close to event-time order however the input is
partitioned; only the released records' offsets are committed.

Scale-out is Kafka's own: the consumer group ``<app_id>-ingest`` shares the
input partitions among the workers, as the Faust group shares
``cdr.by_caller``. At-least-once: a batch read again after a crash is
routed again, and the features stage drops its calls by ``cdr_id``.
A rebalance waits for the batch in hand to be sent and committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from contracts.by_caller import RoutedBatch, encode_routed_parts
from streams.pipeline.alignment import PartitionAligner, message_event_ms
from streams.pipeline.deadletter import SourcePosition
from streams.pipeline.ingest import IngestOutcome, RawMessage, ingest_cdrs, ingest_complaints
from streams.pipeline.trace import headers_for, oldest_ms

if TYPE_CHECKING:
    from streams.app import CallguardApp

__all__ = ["Intake"]

logger = logging.getLogger(__name__)


class _WaitForBatch(ConsumerRebalanceListener):  # type: ignore[misc]
    """Revocation waits until the batch in hand is sent and its offsets committed.

    The aligner forgets revoked partitions (their held records were never
    committed: the new owner reads them) and waits for assigned ones.
    """

    def __init__(self, lock: asyncio.Lock, aligner: PartitionAligner[TopicPartition]) -> None:
        self._lock = lock
        self._aligner = aligner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self._lock:
            self._aligner.revoke(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self._aligner.assign(assigned, now=time.monotonic())
        logger.info("ingest partitions assigned: %s",
                    ", ".join(f"{tp.topic}:{tp.partition}" for tp in sorted(assigned)) or "none")


class Intake:
    """The worker's ingest loop over the input topics (started and stopped by the app)."""

    def __init__(self, app: CallguardApp) -> None:
        settings = app.settings
        self._app = app
        self._ingest: dict[str, Callable[..., IngestOutcome]] = {
            settings.topic_cdr_raw: partial(ingest_cdrs, max_future_s=settings.max_future_s),
            settings.topic_complaints: ingest_complaints,
        }
        self.group_id = f"{settings.app_id}-ingest"
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._read: dict[TopicPartition, int] = {}  # next offset to read, per partition
        self._aligner: PartitionAligner[TopicPartition] = PartitionAligner(
            idle_s=settings.ingest_idle_s,
            key=message_event_ms,
            lead_ms=settings.ingest_lead_ms,
            hold_bytes=settings.ingest_hold_bytes,
        )

    async def start(self) -> None:
        """Join the ingest group and start reading (once)."""
        if self._task is not None:
            return
        settings = self._app.settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=self.group_id,
            client_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=settings.max_message_bytes + 65_536,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            session_timeout_ms=int(settings.broker_session_timeout_s * 1000),
            rebalance_timeout_ms=int(settings.broker_rebalance_timeout_s * 1000),
            heartbeat_interval_ms=int(settings.broker_heartbeat_interval_s * 1000),
        )
        consumer.subscribe(list(self._ingest), listener=_WaitForBatch(self._lock, self._aligner))
        await consumer.start()
        self._consumer = consumer
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Finish the batch in hand (sent and committed), then leave the group."""
        task, self._task = self._task, None
        if task is not None:
            async with self._lock:  # not in the middle of a batch
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    def positions(self) -> list[tuple[str, int, int | None, int | None]]:
        """``(topic, partition, highwater, next offset to read)`` of each input partition held.

        The highwater is the one the last fetch brought; ``None`` where unknown yet.
        """
        consumer = self._consumer
        if consumer is None:
            return []
        return [
            (tp.topic, tp.partition, consumer.highwater(tp), self._read.get(tp))
            for tp in sorted(consumer.assignment())
        ]

    def event_positions(self) -> list[tuple[str, int, int | None]]:
        """``(topic, partition, event time reached in ms)`` of each input partition held."""
        positions = sorted(self._aligner.positions().items())
        return [(tp.topic, tp.partition, ms) for tp, ms in positions]

    async def _run(self) -> None:
        try:
            await self._loop()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            # A bug, not bad input (bad input is dead-lettered): stop the worker
            # rather than skip data; the offsets of the batch stay uncommitted.
            logger.exception("ingest failed; stopping the worker")
            await self._app.faust_app.crash(error)

    async def _loop(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            fetched = await self._gather(consumer)
            now = time.monotonic()
            self._aligner.add(fetched, now=now)
            released = self._aligner.release(now=now, behind=await self._behind(consumer))
            if released.to_pause:
                consumer.pause(*released.to_pause)
            if released.to_resume:
                consumer.resume(*released.to_resume)
            if not released.records:
                continue
            async with self._lock:
                await self._route(released.records)
                offsets = {tp: offset + 1 for tp, offset in released.last_offsets.items()}
                self._read.update(offsets)
                try:
                    await consumer.commit(offsets)
                except KafkaError as error:
                    # The group moved on (a rebalance): the new owner reads the
                    # batch again and the features stage drops its calls by cdr_id.
                    logger.warning("ingest commit not taken (%r); the batch is read again",
                                   error)

    async def _behind(self, consumer: AIOKafkaConsumer) -> set[TopicPartition]:
        """Input partitions whose broker holds records not handed to us yet, or not known yet.

        The high watermark is the one the last fetch response brought: none
        yet (a partition just assigned) counts as behind. The position is
        the next offset the consumer hands out (past transaction markers too).
        """
        behind = set()
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None or await consumer.position(tp) < highwater:
                behind.add(tp)
        return behind

    async def _gather(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, list[Any]]:
        """Messages for one batch: up to ``ingest_batch_size``, within ``ingest_batch_within_s``.

        Fetches until the batch is full or the time since its first message
        is up. Under light traffic this trades up to that much latency for
        fewer, larger routed messages: each one costs the features agent a
        fixed overhead (an event, a scoring call) whatever its size, and
        messages taken one at a time kept a worker 90% busy at half the
        rate it sustains on a backlog.
        """
        settings = self._app.settings
        size, within_s = settings.ingest_batch_size, settings.ingest_batch_within_s
        fetched: dict[TopicPartition, list[Any]] = await consumer.getmany(
            timeout_ms=int(within_s * 1000), max_records=size
        )
        count = sum(map(len, fetched.values()))
        deadline = time.monotonic() + within_s
        while fetched and count < size:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                break
            more = await consumer.getmany(timeout_ms=left_ms, max_records=size - count)
            for tp, records in more.items():
                fetched.setdefault(tp, []).extend(records)
                count += len(records)
        return fetched

    async def _route(self, released: list[Any]) -> None:
        """Validate and route records (in timestamp order); return once the broker has them.

        A partition's calls, inbound notes and complaints of one release go
        in one routed message (cut in event time when too large): the stage
        applies them together in time order, so a row emitted at one of its
        cuts counts the complaints and call-backs dated before its end.
        """
        settings, topics, counters = self._app.settings, self._app.topics, self._app.counters
        sent: list[Any] = []
        routed_by_partition: dict[int, RoutedBatch] = {}
        trace = headers_for(oldest_ms(record.timestamp for record in released))
        for topic in dict.fromkeys(record.topic for record in released):
            records = [record for record in released if record.topic == topic]
            messages = [
                RawMessage(record.value or b"",
                           SourcePosition(record.topic, record.partition, record.offset),
                           record.headers)
                for record in records
            ]
            outcome = self._ingest[topic](
                messages,
                partitions=settings.partitions,
                default_region=settings.default_region,
                max_message_bytes=settings.max_message_bytes,
                max_original_bytes=settings.deadletter_max_original_bytes,
                now_ms=int(time.time() * 1000),
            )
            for key, value in outcome.deadletters:
                sent.append(await topics.deadletter.send(key=key, value=value))
            for partition, routed in outcome.by_partition.items():
                together = routed_by_partition.setdefault(partition, RoutedBatch())
                if len(routed.calls) or len(routed.inbound):
                    together.calls, together.inbound = routed.calls, routed.inbound
                if len(routed.complaints):
                    together.complaints = routed.complaints
            counters.messages_in += len(messages)
            counters.records_valid += outcome.valid
            counters.records_rejected += outcome.rejected
        for partition, routed in sorted(routed_by_partition.items()):
            # Large batches of batches are cut to stay under Kafka's record limit.
            for part in encode_routed_parts(routed, settings.internal_max_message_bytes):
                sent.append(await topics.by_caller.send(
                    value=part, partition=partition, headers=trace
                ))
        if sent:
            await asyncio.gather(*sent)
