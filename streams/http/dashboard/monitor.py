"""What the dashboard and the metrics endpoint read about a running worker.

One :class:`PipelineMonitor` per app (:func:`monitor_for`): a throughput meter
fed by a timer, the consumer lag of the partitions this worker reads, and a
:class:`StoreReader` that runs store queries off the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sinks.clickhouse import Store, StoreError, open_store
from streams.pipeline.alignment import drift_ms

if TYPE_CHECKING:
    from streams.app import CallguardApp

__all__ = [
    "PartitionLag",
    "PipelineMonitor",
    "StoreReader",
    "ThroughputMeter",
    "consumer_lag",
    "monitor_for",
]

T = TypeVar("T")

SAMPLE_INTERVAL_S = 5.0


class ThroughputMeter:
    """Events per second over a sliding window, from samples of a running total.

    >>> meter = ThroughputMeter(window_s=60, clock=iter([0.0, 30.0, 60.0]).__next__)
    >>> meter.sample(0); meter.sample(300); meter.sample(1200)
    >>> meter.rate()
    20.0
    """

    def __init__(self, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.window_s = window_s
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque()

    def sample(self, total: int) -> None:
        """Record the running total as of now; forget samples older than the window."""
        now = self._clock()
        self._samples.append((now, total))
        # Keep one sample at or before the window's start, so the rate spans it all.
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window_s:
            self._samples.popleft()

    def rate(self) -> float:
        """Mean events per second between the oldest and newest sample (0 with fewer than 2)."""
        if len(self._samples) < 2:
            return 0.0
        (first_at, first), (last_at, last) = self._samples[0], self._samples[-1]
        if last_at <= first_at:
            return 0.0
        return max(0, last - first) / (last_at - first_at)


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """Messages not yet read from one partition this worker consumes."""

    topic: str
    partition: int
    highwater: int | None
    position: int | None

    @property
    def lag(self) -> int | None:
        """``highwater - position``; ``None`` until the consumer has fetched the partition."""
        if self.highwater is None:
            return None
        return max(0, self.highwater - (self.position or 0))


def consumer_lag(app: CallguardApp) -> list[PartitionLag]:
    """Lag of the source partitions actively assigned to this worker (not changelogs).

    The highwater is the one the consumer learnt from its last fetch (no broker
    round trip); the position is the offset after the last message read, else
    the committed offset.
    """
    faust_app = app.faust_app
    sources = {app.topics.by_caller.get_topic_name()}  # Faust reads; ingest's are below
    if app.settings.store_enabled:
        sources.add(app.topics.flags.get_topic_name())
    try:
        consumer = faust_app.consumer
        assigned = faust_app.assignor.assigned_actives()
    except Exception:  # noqa: BLE001 - not started yet, or stopping: no lag to report
        return []
    lags = []
    for tp in sorted(assigned):
        if tp.topic not in sources:
            continue
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - the partition is being revoked
            highwater = None
        read = consumer._read_offset.get(tp)  # Faust keeps the last offset it read
        position = read + 1 if read is not None else consumer._committed_offset.get(tp)
        lags.append(PartitionLag(tp.topic, tp.partition, highwater, position))
    if app.intake is not None:  # the input topics, read outside Faust
        lags.extend(PartitionLag(*position) for position in app.intake.positions())
    return lags


class StoreReader:
    """Runs read-only work on the flag store, off the event loop.

    An embedded chdb store (and a server store without a separate reader) is
    read through the writer's own connection in the store executor: chdb
    admits one process per path. With a reader URL, reads use their own
    connection and thread, so they never wait for a flush.
    """

    def __init__(self, app: CallguardApp, reader_url: str | None = None,
                 reader_password: str | None = None) -> None:
        self._app = app
        self._reader_url = reader_url
        self._reader_password = reader_password
        self._store: Store | None = None
        self._executor = (
            ThreadPoolExecutor(1, thread_name_prefix="callguard-reader") if reader_url else None
        )

    async def run(self, work: Callable[[Store], T]) -> T:
        """Run ``work(store)`` in the right thread and return its result."""
        loop = asyncio.get_running_loop()
        if self._executor is None:
            return await loop.run_in_executor(
                self._app.store_executor, self._app.writer.run, work
            )
        return await loop.run_in_executor(self._executor, self._run_on_reader, work)

    def _run_on_reader(self, work: Callable[[Store], T]) -> T:
        if self._store is None:
            assert self._reader_url is not None
            self._store = open_store(self._reader_url, password=self._reader_password)
        try:
            return work(self._store)
        except StoreError:
            self._store.close()
            self._store = None
            raise


class PipelineMonitor:
    """Throughput, lag and store access for one worker's dashboard and metrics."""

    def __init__(self, app: CallguardApp, reader: StoreReader) -> None:
        self.app = app
        self.reader = reader
        self.cdr_meter = ThroughputMeter()

    def cdrs_total(self) -> int:
        """CDRs ingested by this worker, valid or dead-lettered."""
        counters = self.app.counters
        return counters.records_valid + counters.records_rejected

    def sample(self) -> None:
        """Feed the throughput meter (called by a timer)."""
        self.cdr_meter.sample(self.cdrs_total())

    def health(self) -> dict[str, Any]:
        """Pipeline health of this worker as plain data (the dashboard's health panel)."""
        app, counters = self.app, self.app.counters
        features, decisions = counters.features, counters.decisions
        total = self.cdrs_total()
        lags = consumer_lag(app)
        known = [lag.lag for lag in lags if lag.lag is not None]
        reached = {(topic, partition): ms for topic, partition, ms in
                   (app.intake.event_positions() if app.intake is not None else ())}
        store = app.writer.metrics()
        kit = app.models.current
        return {
            "worker": app.worker_name,
            "cdrs_total": total,
            "cdrs_per_second": round(self.cdr_meter.rate(), 2),
            "messages_in": counters.messages_in,
            "records_rejected": counters.records_rejected,
            "deadletter_ratio": counters.records_rejected / total if total else 0.0,
            "late_accepted": features.late_accepted,
            "late_dropped": features.late_dropped,
            "duplicates": features.duplicates,
            "decisions": {
                "scored": decisions.scored,
                "block": decisions.block,
                "watch": decisions.watch,
                "clear": decisions.clear,
            },
            "flags_stored": counters.flags_stored,
            "model_version": kit.version if kit else None,
            "model_status": app.models.last_status,
            "allowlist_revision": app.models.matcher.revision,
            "consumer_lag": sum(known) if known else None,
            "partitions": [
                {"topic": lag.topic, "partition": lag.partition, "lag": lag.lag,
                 "event_time_ms": reached.get((lag.topic, lag.partition))}
                for lag in lags
            ],
            "ingest_drift_ms": drift_ms({f"{t}:{p}": ms for (t, p), ms in reached.items()}),
            "store": {
                "enabled": app.settings.store_enabled,
                "buffered": store.buffered,
                "insert_failures": store.insert_failures,
                "last_error": store.last_error,
                "last_success_at": store.last_success_at.isoformat()
                if store.last_success_at else None,
            },
        }


_monitors: dict[int, PipelineMonitor] = {}


def monitor_for(app: CallguardApp) -> PipelineMonitor:
    """The app's one monitor, created (and its sampling timer registered) on first use."""
    monitor = _monitors.get(id(app))
    if monitor is None:
        monitor = PipelineMonitor(app, StoreReader(app, *_reader_settings(app)))
        _monitors[id(app)] = monitor

        @app.faust_app.timer(SAMPLE_INTERVAL_S, on_leader=False)
        async def sample_throughput() -> None:
            monitor.sample()

    return monitor


def _reader_settings(app: CallguardApp) -> tuple[str | None, str | None]:
    # A store server with separate users gives the worker an INSERT-only
    # writer; reads then need the reader's URL. Not every build's Settings
    # declares these two yet, hence getattr.
    url = getattr(app.settings, "reader_store_url", None)
    secret = getattr(app.settings, "reader_store_password", None)
    if not url or url.startswith("chdb://"):
        return None, None
    return url, secret.get_secret_value() if secret is not None else None
