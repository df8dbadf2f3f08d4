"""Faust agents: thin loops that read, call the pure code, and send.

- ingest (:mod:`streams.pipeline.intake`, batches outside Faust's per-message machinery):
  ``cdr.raw`` and ``complaints`` -> validate -> ``cdr.by_caller`` / ``cdr.deadletter``
- ``callguard.features``: ``cdr.by_caller`` -> per-caller state (table ``caller-rows``,
  written to its changelog at checkpoints) -> emitted feature vectors -> ``caller.features``;
  scored in batches -> flag lifecycle (table ``flag-state``) -> ``cdr.flags``
- ``callguard.flag-sink``: ``cdr.flags`` -> ClickHouse/chdb, acknowledged only once written
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import faust

from contracts.by_caller import decode_routed
from contracts.cdr import Rejection
from contracts.flag import Flag, decode_flag, encode_flag
from features.emission import EmissionPolicy
from sinks.clickhouse import FlagDecision
from streams.pipeline.deadletter import SourcePosition, deadletter_record
from streams.pipeline.ingest import partition_for_number
from streams.pipeline.partitions import partitions_of
from streams.pipeline.trace import headers_for, source_ms
from streams.stages.block_stage import BlockFeatureStage
from streams.stages.caller_features import Emission, encode_features_parts
from streams.stages.decision_stage import apply_operator_action, decide_emission
from streams.stages.expiry import ExpiryIndex
from streams.state.checkpoint import Checkpointer
from streams.state.write_behind import ChangelogWriter, WriteBehindTable, store_dict
from streams.topics import CALLER_TABLE, FLAG_TABLE
from streams.tuning.heap_trim import trim_heap

if TYPE_CHECKING:
    from streams.app import CallguardApp

__all__ = ["register_agents"]

logger = logging.getLogger(__name__)


def register_agents(app: CallguardApp) -> None:
    """Attach every agent of the pipeline to ``app`` (ingest: :mod:`streams.pipeline.intake`)."""
    _register_features(app)
    if app.settings.store_enabled:
        _register_flag_sink(app)


def _raw_table(app: CallguardApp, name: str, help_text: str) -> tuple[faust.Table, str]:
    """A changelogged table of our own bytes, co-partitioned with ``cdr.by_caller``.

    Returns the table and its changelog topic's name.
    """
    settings = app.settings
    # Faust derives a table's serializers from key_type/value_type ("json" for
    # bytes) and uses them for the changelog and for recovery: set "raw".
    raw = faust.Schema(
        key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    changelog = app.faust_app.topic(
        f"{settings.app_id}-{name}-changelog",
        schema=raw,
        partitions=settings.partitions,
        compacting=True,
        deleting=False,
        acks=False,
        internal=True,
        maxsize=131_072,
        allow_empty=True,
    )
    table = app.faust_app.Table(
        name, schema=raw, changelog_topic=changelog, partitions=settings.partitions,
        help=help_text,
    )
    table.key_serializer = table.value_serializer = "raw"
    app.changelog_topics.append(changelog.get_topic_name())
    return table, changelog.get_topic_name()


def _register_features(app: CallguardApp) -> None:
    """Build the features agent and hang its parts on the Faust app."""
    agent = FeaturesAgent(app)
    app.feature_stage = agent.stage
    app.caller_table, app.flag_table = agent.callers, agent.flags
    app.checkpoints, app.changelog_writer = agent.checkpoints, agent.writer
    faust_app, settings = app.faust_app, app.settings
    faust_app.on_partitions_revoked.connect(agent.forget_revoked)
    faust_app.on_partitions_assigned.connect(agent.track_recovered)
    faust_app.timer(min(5.0, settings.emit_idle_s / 2), name="callguard.idle-buckets")(
        agent.emit_idle_buckets
    )
    faust_app.timer(min(1.0, settings.checkpoint_interval_s / 2), name="callguard.checkpoint")(
        agent.checkpoint_when_idle
    )
    faust_app.agent(app.topics.by_caller, name="callguard.features")(agent.update_features)


class FeaturesAgent:
    """``callguard.features``: routed batches -> state -> emitted rows -> decisions -> flags.

    One method per concern: the agent loop (:meth:`update_features`), one
    message (:meth:`process`), scoring (:meth:`decide`), publication
    (:meth:`publish`), the idle timers, expiry of idle callers and the
    rebalance signals. The feature math is in the stage; this only wires it.
    """

    def __init__(self, app: CallguardApp) -> None:
        self.app = app
        settings = self.settings = app.settings
        self.counters, self.models, self.topics = app.counters, app.models, app.topics
        self.stage = BlockFeatureStage(
            settings.feature_config(),
            EmissionPolicy(settings.emit_min_calls, settings.emit_min_long_calls),
            partitions=settings.partitions,
        )
        caller_table, caller_changelog = _raw_table(
            app, CALLER_TABLE, "Per-caller feature state (streams.stages.block_stage)."
        )
        # Callers reach the changelog at checkpoints (streams.state.checkpoint); flags, far
        # fewer, as they change.
        self.callers = WriteBehindTable(
            store_dict(caller_table),
            lambda keys: partitions_of(keys, settings.partitions).tolist(),
        )
        # Flags reach their changelog at the same checkpoints as the callers: a
        # restarted worker recovers both as they stood after the same message.
        flag_table, flag_changelog = _raw_table(
            app, FLAG_TABLE, "Per-number flag state (streams.stages.decision_stage)."
        )
        self.flags = WriteBehindTable(
            store_dict(flag_table),
            lambda keys: partitions_of(keys, settings.partitions).tolist(),
        )
        self.writer = ChangelogWriter(
            settings.bootstrap_servers,
            settings.internal_max_message_bytes,
            client_id=f"{settings.app_id}-checkpoints",
        )
        self.routed = self.topics.by_caller.get_topic_name()
        self._stream: Any = None  # the agent's stream, acknowledged by hand (set when it starts)
        self.checkpoints = Checkpointer(
            [(self.callers, caller_changelog), (self.flags, flag_changelog)],
            self.writer, self._ack,
            interval_s=settings.checkpoint_interval_s, max_rows=settings.checkpoint_max_rows,
        )
        self.expiry = ExpiryIndex(settings.partitions)
        self.stream_ms: dict[int, int] = {}  # per partition: the latest call start seen
        self.expired_at: dict[int, float] = {}  # per partition: wall clock of the last expiry
        self.grace_ms, self.hot_ms = settings.grace_s * 1000, settings.caller_hot_s * 1000
        self.untracked = True  # the recovered table is not in the expiry index yet
        self.waiting = Emission()  # rows emitted before a model was served, scored when one is
        self.warned_at: dict[int, float] = {}

    async def _ack(self, event: Any) -> None:
        await self._stream.ack(event)

    # -- the agent ---------------------------------------------------------------

    async def update_features(self, stream: Any) -> None:
        """Apply routed batches to per-caller state; score emitted callers; publish flags.

        Messages are acknowledged by checkpoints (streams.state.checkpoint), not one by one.
        """
        manual = self._stream = stream.noack()
        async for event in manual.events():
            try:
                await self.process(event)
            except Exception as error:
                await _stop_worker(self.app, event, error)
                raise
            self.checkpoints.hold(event)
            await self.checkpoints.step()

    async def process(self, event: Any) -> None:
        """One routed batch: state, emission, scoring, flag lifecycle, publication."""
        partition = event.message.partition
        trace = headers_for(source_ms(event.message.headers))
        try:
            batch = decode_routed(event.value)
        except ValueError as error:  # not ingest's: written to the internal topic by someone else
            await _dead_letter(self.app, event, f"not a cdr.by_caller batch: {error}")
            return
        stats, emission = self.stage.apply(batch, event.message.offset, self.callers, partition)
        self.counters.features.add(stats)
        self.counters.note_lateness(partition, stats)
        if stats.late_dropped:
            self.warn_if_late(partition)
        if len(batch.calls):
            latest = max(batch.calls.start_ms)
            self.stream_ms[partition] = max(self.stream_ms.get(partition, latest), latest)
        self.expire_idle(partition)
        published = await self.decide(partition, emission, trace)
        for kind, number, actor, why, sent_ms in batch.appeals.actions():
            # Decisions run on the CDRs' clock: an operator's action takes effect at
            # the partition's stream time (its wall-clock time if nothing streamed yet).
            at_ms = self.expiry.stream_time(partition) or sent_ms
            acted = apply_operator_action(
                kind, number, at_ms, self.flags, hold_ms=self.models.appeal_hold_ms,
                ttl_ms=self.models.flag_ttl_ms, actor=actor, why=why,
            )
            if acted is not None:
                published.append(acted)
        await self.publish(published, trace)

    # -- scoring and publication -------------------------------------------------

    async def decide(self, partition: int, emission: Emission, trace: Any) -> list[Flag]:
        """Send an emission's rows to ``features``, score them; the flags to publish.

        Without a model the rows wait (up to ``_MAX_WAITING_ROWS``, then they
        are counted in ``unscored_no_model`` and logged): a worker started
        before its model is loaded decides on them once it is.
        """
        published: list[Flag] = []
        if len(emission):
            for part in encode_features_parts(emission, self.settings.internal_max_message_bytes):
                await self.topics.features.send(value=part, partition=partition, headers=trace)
        kit, waiting = self.models.current, self.waiting
        if kit is None:
            room = max(0, _MAX_WAITING_ROWS - len(waiting))
            kept = Emission(emission.numbers[:room], emission.window_end_ms[:room],
                            emission.rows[:room])
            waiting.extend(kept)
            lost = len(emission) - len(kept)
            if lost:
                self.counters.decisions.unscored_no_model += lost
                logger.warning("no model served: %d rows waiting, %d more not scored "
                               "(promote a model: callguard train --promote)", len(waiting), lost)
        else:
            if len(waiting):
                logger.info("model %s served: scoring the %d rows emitted while none was",
                            kit.version, len(waiting))
                emission = _joined(_taken(waiting), emission)
            if len(emission):
                decided, decision_stats = decide_emission(
                    emission, kit, self.models.matcher, self.flags
                )
                self.counters.decisions.add(decision_stats)
                published.extend(decided)
        self.expiry.rebuild_once(partition, self.flags)
        published.extend(
            self.expiry.expire(partition, max(emission.window_end_ms, default=0), self.flags)
        )
        return published

    async def publish(self, published: list[Flag], trace: Any) -> None:
        """Publish decisions to the flag topic and track them for expiry."""
        for flag in published:
            self.expiry.track(partition_for_number(flag.number, self.settings.partitions), flag)
            await self.topics.flags.send(
                key=flag.number.encode(), value=encode_flag(flag), headers=trace
            )
        self.counters.decisions.count(published)

    # -- timers ------------------------------------------------------------------

    async def emit_idle_buckets(self) -> None:
        """Score the open buckets of partitions silent for ``emit_idle_s``.

        See :mod:`streams.stages.event_clock`.
        """
        models = self.models
        if len(self.waiting) and models.current is not None:  # a model came while all was quiet
            decided, decision_stats = decide_emission(_taken(self.waiting), models.current,
                                                      models.matcher, self.flags)
            self.counters.decisions.add(decision_stats)
            await self.publish(decided, None)
        for partition, buckets in self.stage.clock.idle(self.settings.emit_idle_s).items():
            emission = self.stage.emit_idle(partition, buckets, self.callers)
            logger.debug("partition %s silent: %d callers of %d open buckets scored as they stand",
                         partition, len(emission), len(buckets))
            await self.publish(await self.decide(partition, emission, None), None)

    async def checkpoint_when_idle(self) -> None:
        """Acknowledge the last messages when traffic stops (the agent checks while it flows).

        Writes made with no message held (a silent partition's rows and flags,
        see ``emit_idle``) are written too.
        """
        points = self.checkpoints
        if (points.held and points.due()) or (not points.held and points.pending):
            await points.run()

    # -- state upkeep ------------------------------------------------------------

    def expire_idle(self, partition: int) -> None:
        """Now and then, drop the partition's callers no window needs (block engine).

        Runs in the agent, between messages: the deletions reach the
        changelog as tombstones. Callers idle for ``caller_hot_s`` leave the
        block for the table's bytes (see ``BlockFeatureStage.expire_idle``).
        """
        stage, settings = self.stage, self.settings
        if partition not in self.stream_ms:
            return
        now = time.monotonic()
        if now - self.expired_at.get(partition, now) < settings.caller_expiry_interval_s:
            self.expired_at.setdefault(partition, now)
            return
        self.expired_at[partition] = now
        if self.untracked:
            self.untracked = False
            tracked = stage.track_table(self.callers, settings.partitions)
            logger.info("%d callers held as bytes tracked for expiry in %.2f s",
                        tracked, time.monotonic() - now)
        latest = self.stream_ms[partition]
        idle = stage.expire_idle(
            latest - self.grace_ms, self.callers, partition, settings.partitions,
            evict_before_ms=latest - self.hot_ms if self.hot_ms else None,
        )
        self.counters.features.expired += len(idle.removed)
        self.counters.features.evicted += idle.evicted
        if idle.removed or idle.evicted:
            took = trim_heap()
            logger.debug("partition %s: %d callers deleted, %d evicted; heap trimmed in %s s",
                         partition, len(idle.removed), idle.evicted, took)

    def warn_if_late(self, partition: int) -> None:
        """Log a warning (at most every 10 min a partition) when over 1% of calls were late."""
        counts = self.counters.late_by_partition[partition]
        share = counts["late_dropped"] / max(1, counts["calls"])
        now = time.monotonic()
        if (counts["calls"] >= 1000 and share > 0.01
                and now - self.warned_at.get(partition, -1e9) > 600):
            self.warned_at[partition] = now
            logger.warning(
                "partition %s of %s: %d of %d calls (%.1f%%) dropped as later than the grace "
                "(%d s): look at CALLGUARD_GRACE_S and at the drift between input partitions "
                "(/status ingest_drift_ms)", partition, self.routed, counts["late_dropped"],
                counts["calls"], 100 * share, self.settings.grace_s)

    # -- rebalance signals ---------------------------------------------------------

    async def forget_revoked(self, sender: Any, revoked: set[Any], **_: Any) -> None:
        """Checkpoint; callers of revoked partitions leave the hot block, the table keeps them."""
        gone = {tp.partition for tp in revoked if tp.topic == self.routed}
        if not gone:
            return
        dropped = await self.checkpoints.revoke(lambda partition: partition not in gone)
        logger.info("partitions %s of %s revoked: %d messages left to their next owner",
                    sorted(gone), self.routed, dropped)
        for partition in gone:
            self.stage.clock.forget(partition)
        for partition in sorted(gone):
            forgotten = self.stage.forget_partition(partition, self.settings.partitions,
                                                    self.callers)
            logger.info("partition %s revoked: %d callers leave the block", partition, forgotten)

    async def track_recovered(self, sender: Any, assigned: set[Any], **_: Any) -> None:
        """Recovery after an assignment adds callers as bytes: track them before next expiry."""
        self.untracked = True


_MAX_WAITING_ROWS = 200_000  # feature vectors held for a model: about 60 MB


def _taken(waiting: Emission) -> Emission:
    """``waiting``'s rows, moved out (``waiting`` is left empty)."""
    rows = Emission(waiting.numbers, waiting.window_end_ms, waiting.rows)
    waiting.numbers, waiting.window_end_ms, waiting.rows = [], [], []
    return rows


def _joined(first: Emission, second: Emission) -> Emission:
    """``first``'s rows, then ``second``'s."""
    joined = Emission(list(first.numbers), list(first.window_end_ms), list(first.rows))
    joined.extend(second)
    return joined


async def _dead_letter(app: CallguardApp, event: Any, reason: str) -> None:
    """Send a routed message the features stage cannot read to the dead letter, whole."""
    message = event.message
    source = SourcePosition(message.topic, message.partition, message.offset)
    value = deadletter_record(
        Rejection(reason, event.value if isinstance(event.value, bytes) else b""),
        source,
        rejected_at_ms=int(time.time() * 1000),
        max_original_bytes=app.settings.deadletter_max_original_bytes,
    )
    await app.topics.deadletter.send(key=source.key, value=value)
    app.counters.records_rejected += 1
    logger.warning("%s[%d]@%d dead-lettered: %s", message.topic, message.partition,
                   message.offset, reason)


async def _stop_worker(app: CallguardApp, event: Any, error: Exception) -> None:
    """A routed message failed: a bug, not bad input (ingest dead-letters that). Stop.

    Skipping it would leave its offset unacknowledged behind later ones, so
    nothing after it would ever be committed, and its calls would be missing
    from the callers' state; the next start reads it again from the last
    checkpoint instead, with the state that checkpoint wrote.
    """
    message = event.message
    logger.exception(
        "features agent failed on %s[%d]@%d: stopping the worker", message.topic,
        message.partition, message.offset, exc_info=error,
    )
    await app.faust_app.crash(error)


def _register_flag_sink(app: CallguardApp) -> None:
    settings, writer = app.settings, app.writer
    actor = f"worker:{settings.app_id}:{settings.web_port}"

    @app.faust_app.agent(app.topics.flags, name="callguard.flag-sink")
    async def store_flags(stream: Any) -> None:
        """Write decisions to the store in batches; a batch is acknowledged once written."""
        async for events in stream.take_events(1000, within=1.0):
            decisions = []
            for event in events:
                flag = decode_flag(event.message.value)
                decisions.append(
                    FlagDecision.from_flag(flag, actor=flag.actor or actor, note=flag.source)
                )
            await writer.add_async(decisions, executor=app.store_executor)
            await writer.flush_async(executor=app.store_executor)
            app.counters.flags_stored += len(decisions)
