"""Faust agents: thin loops that read, call the pure code, and send."""

from __future__ import annotations

import time

from streams.app import CallguardApp
from streams.deadletter import SourcePosition
from streams.ingest import RawMessage, ingest
from streams.wire import encode_columns

__all__ = ["register_agents"]


def register_agents(app: CallguardApp) -> None:
    """Attach every agent of the pipeline to ``app``."""
    _register_ingest(app)


def _register_ingest(app: CallguardApp) -> None:
    settings, topics, counters = app.settings, app.topics, app.counters

    @app.faust_app.agent(topics.cdr_raw, name="callguard.ingest")
    async def ingest_cdrs(stream):  # type: ignore[no-untyped-def]
        """Validate raw CDRs in batches; route good ones by caller, dead-letter the rest."""
        async for events in stream.take_events(
            settings.ingest_batch_size, within=settings.ingest_batch_within_s
        ):
            messages = [
                RawMessage(
                    event.message.value,
                    SourcePosition(
                        event.message.topic, event.message.partition, event.message.offset
                    ),
                )
                for event in events
            ]
            outcome = ingest(
                messages,
                partitions=settings.partitions,
                default_region=settings.default_region,
                max_message_bytes=settings.max_message_bytes,
                max_original_bytes=settings.deadletter_max_original_bytes,
                now_ms=int(time.time() * 1000),
            )
            for key, value in outcome.deadletters:
                await topics.deadletter.send(key=key, value=value)
            for partition, columns in outcome.by_partition.items():
                await topics.by_caller.send(value=encode_columns(columns), partition=partition)
            counters.messages_in += len(messages)
            counters.cdrs_valid += outcome.valid
            counters.cdrs_rejected += outcome.rejected
            counters.batches_routed += len(outcome.by_partition)
