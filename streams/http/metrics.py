"""``GET /metrics``: the worker's counters in the Prometheus text format (0.0.4).

Series (all prefixed ``callguard_``):

========================================  =======  ==========================================
``cdrs_total``                            counter  CDRs ingested (valid and dead-lettered)
``messages_total``                        counter  ``cdr.raw`` messages read (a batch is one)
``records_rejected_total``                counter  records sent to the dead letter
``late_events_total{kind}``               counter  late calls ``accepted`` / ``dropped``
``partition_late_events_total{...}``      counter  the same per ``cdr.by_caller`` partition
``ingest_event_time_seconds{topic,...}``  gauge    event time each input partition reached
``ingest_drift_seconds``                  gauge    spread of those between input partitions
``duplicates_total``                      counter  calls seen before (by ``cdr_id``)
``complaints_total``                      counter  complaints applied
``scored_total``                          counter  feature vectors scored
``flags_total{action}``                   counter  decisions published, by action
``flags_stored_total``                    counter  decisions written to the store
``flags_current{action,category}``        gauge    numbers blocked/watched now (from the store)
``model_info{version}``                   gauge    1 for the serving model version
``store_insert_failures_total``           counter  failed store flushes
``store_buffered``                        gauge    decisions waiting for the store
``consumer_lag{topic,partition}``         gauge    messages not yet read, per partition
``cdrs_per_second``                       gauge    CDRs per second over the last minute
``calls_received_share``                  gauge    recent rows scored with a call received
``scoring_without_calls_received``        gauge    1 while the model's second path scores
========================================  =======  ==========================================

The last two tell whether the feed shows the calls numbers receive
(:mod:`models.called_evidence`): under 5% of at least 200 of the last
50,000 rows scored, rows are scored without reciprocity and inbound ratio.

Counters are this worker's since it started (Prometheus' ``rate()`` handles
restarts); ``flags_current`` is the same for every worker, refreshed every
``FLAG_COUNTS_INTERVAL_S`` from the store.

Every ``STORE_SAMPLE_INTERVAL_S`` the worker also writes a sample of the
unlabelled series (without prefix) plus ``consumer_lag`` (summed) to the
store's ``pipeline_metrics`` table, so Grafana's pipeline-health panels read
ClickHouse like the rest of its dashboard.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from faust.web import Request, Response, View

from models.called_evidence import CalledEvidence
from sinks.clickhouse import StoreError, insert_metrics
from streams.http.dashboard.monitor import PipelineMonitor, consumer_lag, monitor_for
from streams.http.dashboard.queries import as_of, flag_counts
from streams.pipeline.alignment import drift_ms

if TYPE_CHECKING:
    from streams.app import CallguardApp

__all__ = ["CONTENT_TYPE", "MetricFamily", "collect", "register_metrics", "render", "store_sample"]

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4"  # aiohttp adds the charset (utf-8)
PREFIX = "callguard_"
FLAG_COUNTS_INTERVAL_S = 30.0
STORE_SAMPLE_INTERVAL_S = 60.0

Labels = Mapping[str, str]


@dataclass(frozen=True)
class MetricFamily:
    """One metric: its name (without prefix), type, help and samples."""

    name: str
    kind: str  # counter or gauge
    help: str
    samples: Sequence[tuple[Labels, float]] = field(default_factory=list)


def render(families: Iterable[MetricFamily]) -> str:
    r"""The exposition text of ``families``.

    >>> print(render([MetricFamily("up", "gauge", "Alive.", [({"w": 'a"b'}, 1)])]), end="")
    # HELP callguard_up Alive.
    # TYPE callguard_up gauge
    callguard_up{w="a\"b"} 1
    """
    lines: list[str] = []
    for family in families:
        name = PREFIX + family.name
        lines.append(f"# HELP {name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {name} {family.kind}")
        for labels, value in family.samples:
            lines.append(f"{name}{_labels(labels)} {_value(value)}")
    return "\n".join(lines) + "\n"


def collect(app: CallguardApp, monitor: PipelineMonitor,
            flag_counts_now: Sequence[Mapping[str, object]] = ()) -> list[MetricFamily]:
    """Every family, from the app's counters, writer, consumer and the cached flag counts."""
    counters = app.counters
    features, decisions = counters.features, counters.decisions
    store = app.writer.metrics()
    kit = app.models.current

    def one(name: str, kind: str, help_text: str, value: float) -> MetricFamily:
        return MetricFamily(name, kind, help_text, [({}, value)])

    lags = [lag for lag in consumer_lag(app) if lag.lag is not None]
    positions = app.intake.event_positions() if app.intake is not None else []
    drift = drift_ms({f"{topic}:{partition}": ms for topic, partition, ms in positions})
    return [
        one("cdrs_total", "counter", "CDRs ingested, valid and dead-lettered.",
            monitor.cdrs_total()),
        one("messages_total", "counter", "cdr.raw messages read (a batch counts once).",
            counters.messages_in),
        one("records_rejected_total", "counter",
            "Records sent to the dead letter (CDRs, complaints, unreadable routed messages).",
            counters.records_rejected),
        MetricFamily("late_events_total", "counter",
                     "Late calls: accepted within grace, or dropped.",
                     [({"kind": "accepted"}, features.late_accepted),
                      ({"kind": "dropped"}, features.late_dropped)]),
        MetricFamily("partition_late_events_total", "counter",
                     "Late calls per cdr.by_caller partition: accepted within grace, or dropped.",
                     [({"partition": str(partition), "kind": kind}, counts[f"late_{kind}"])
                      for partition, counts in sorted(counters.late_by_partition.items())
                      for kind in ("accepted", "dropped")]),
        MetricFamily("ingest_event_time_seconds", "gauge",
                     "Event time (latest call start, epoch seconds) each input partition "
                     "has reached.",
                     [({"topic": topic, "partition": str(partition)}, ms / 1000)
                      for topic, partition, ms in positions if ms is not None]),
        MetricFamily("ingest_drift_seconds", "gauge",
                     "Event time between the input partition furthest ahead and the one behind.",
                     [] if drift is None else [({}, drift / 1000)]),
        one("duplicates_total", "counter", "Calls seen before (same cdr_id).",
            features.duplicates),
        one("complaints_total", "counter", "Complaints applied to callers.",
            features.complaints),
        MetricFamily("callers_moved_total", "counter",
                     "Callers moved between the block's columns and the table's bytes: "
                     "loaded on a call, or evicted when idle.",
                     [({"to": "block"}, features.loaded), ({"to": "table"}, features.evicted)]),
        one("callers_expired_total", "counter",
            "Callers deleted: no window needs their state.", features.expired),
        one("scored_total", "counter", "Feature vectors scored.", decisions.scored),
        MetricFamily("flags_total", "counter", "Decisions published, by action.",
                     [({"action": action}, getattr(decisions, action))
                      for action in ("block", "watch", "clear")]),
        one("flags_stored_total", "counter", "Decisions written to the store.",
            counters.flags_stored),
        MetricFamily("flags_current", "gauge",
                     "Numbers blocked or watched now, by action and category (from the store).",
                     [({"action": str(row["action"]), "category": str(row["category"])},
                       float(row["numbers"]))  # type: ignore[arg-type]
                      for row in flag_counts_now]),
        MetricFamily("model_info", "gauge", "The serving model version (value 1).",
                     [({"version": kit.version}, 1)] if kit else []),
        one("store_insert_failures_total", "counter", "Failed flushes to the flag store.",
            store.insert_failures),
        one("store_buffered", "gauge", "Decisions waiting to be written to the store.",
            store.buffered),
        MetricFamily("consumer_lag", "gauge", "Messages not yet read, per assigned partition.",
                     [({"topic": lag.topic, "partition": str(lag.partition)}, lag.lag or 0)
                      for lag in lags]),
        one("cdrs_per_second", "gauge", "CDRs ingested per second over the last minute.",
            monitor.cdr_meter.rate()),
        *_called_families(kit.scorer.called if kit else None),
        *_checkpoint_families(app),
    ]


def _called_families(evidence: CalledEvidence | None) -> list[MetricFamily]:
    """Whether the model sees the features of calls received (none before a row is scored)."""
    seen = evidence is not None and not math.isnan(evidence.recent_share)
    return [
        MetricFamily("calls_received_share", "gauge",
                     "Share of the last rows scored with a call received in the long window.",
                     [({}, evidence.recent_share)] if seen and evidence else []),
        MetricFamily("scoring_without_calls_received", "gauge",
                     "1 while rows are scored without reciprocity and inbound ratio "
                     "(the feed shows too few calls received), else 0.",
                     [({}, float(evidence.hiding))] if seen and evidence else []),
    ]


def _checkpoint_families(app: CallguardApp) -> list[MetricFamily]:
    checkpoints = app.checkpoints
    if checkpoints is None:
        return []
    stats = checkpoints.stats
    return [
        MetricFamily(name, kind, help_text, [({}, value)])
        for name, kind, help_text, value in (
            ("checkpoints_total", "counter", "Caller-state checkpoints written.",
             stats.checkpoints),
            ("checkpoint_rows_total", "counter", "Caller rows written by checkpoints.",
             stats.rows),
            ("checkpoint_failures_total", "counter",
             "Checkpoints the broker did not take (retried).", stats.failures),
            ("checkpoint_seconds_total", "counter", "Time spent writing checkpoints.",
             stats.seconds),
            ("checkpoint_held_messages", "gauge",
             "Routed messages applied, waiting for the next checkpoint.", checkpoints.held),
        )
    ]


def register_metrics(app: CallguardApp) -> None:
    """Serve ``GET /metrics`` from ``app``'s web server."""
    monitor = monitor_for(app)
    cached: dict[str, list[dict[str, object]]] = {"flag_counts": []}

    @app.faust_app.page("/metrics")
    async def metrics(web: View, request: Request) -> Response:
        text = render(collect(app, monitor, cached["flag_counts"]))
        return web.text(text, content_type=CONTENT_TYPE)

    if not app.settings.store_enabled:
        return
    event_time = app.settings.lookup_event_time

    @app.faust_app.timer(FLAG_COUNTS_INTERVAL_S, on_leader=False)
    async def refresh_flag_counts() -> None:
        try:
            cached["flag_counts"] = await monitor.reader.run(
                lambda store: flag_counts(store, as_of(store, event_time=event_time))
            )
        except StoreError as error:  # keep the last counts; the store's own metrics say why
            logger.debug("metrics: flag counts not refreshed: %s", error)

    @app.faust_app.timer(STORE_SAMPLE_INTERVAL_S, on_leader=False)
    async def sample_to_store() -> None:
        values = store_sample(collect(app, monitor))
        at = datetime.now(UTC)
        try:
            await asyncio.get_running_loop().run_in_executor(
                app.store_executor, app.writer.run,
                lambda store: insert_metrics(store, app.worker_name, values, at=at),
            )
        except StoreError as error:
            logger.debug("metrics: sample not stored: %s", error)


def store_sample(families: Sequence[MetricFamily]) -> dict[str, float]:
    """The unlabelled series by name, plus the consumer lag summed, for ``pipeline_metrics``."""
    values = {
        family.name: float(family.samples[0][1])
        for family in families
        if len(family.samples) == 1 and not family.samples[0][0]
    }
    for family in families:
        if family.name == "consumer_lag":
            values["consumer_lag"] = float(sum(value for _, value in family.samples))
        elif family.name == "late_events_total":
            for labels, value in family.samples:
                values[f"late_{labels['kind']}_total"] = float(value)
    return values


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{name}="{_escape_label(value)}"' for name, value in labels.items())
    return "{" + inner + "}"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _value(value: float) -> str:
    if isinstance(value, int) or (math.isfinite(value) and float(value).is_integer()):
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))
