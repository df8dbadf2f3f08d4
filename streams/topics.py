"""The Kafka topics callguard reads and writes, declared once."""

from __future__ import annotations

from dataclasses import dataclass

import faust

from streams.settings import Settings

__all__ = ["CALLER_TABLE", "FLAG_TABLE", "Topics", "declare_topics"]

# The worker's tables (changelog topics ``<app_id>-<name>-changelog``): callers' feature
# rows (streams.stages.block_stage) and flag states (streams.stages.decision_stage).
CALLER_TABLE = "caller-rows"
FLAG_TABLE = "flag-state"


@dataclass(frozen=True)
class Topics:
    """Handles on every topic of the pipeline (raw bytes; codecs live in our code)."""

    cdr_raw: faust.TopicT
    complaints: faust.TopicT
    deadletter: faust.TopicT
    by_caller: faust.TopicT
    features: faust.TopicT
    flags: faust.TopicT


def declare_topics(app: faust.App, settings: Settings) -> Topics:
    """Declare the topics; ``internal=True`` lets the worker create missing ones at start."""

    def raw_topic(name: str, *, compacting: bool | None = None) -> faust.TopicT:
        return app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
            internal=True,
            compacting=compacting,
        )

    return Topics(
        cdr_raw=raw_topic(settings.topic_cdr_raw),
        complaints=raw_topic(settings.topic_complaints),
        deadletter=raw_topic(settings.topic_deadletter),
        by_caller=raw_topic(settings.topic_by_caller),
        features=raw_topic(settings.topic_features),
        # Keyed by number; the latest decision per number is the truth.
        flags=raw_topic(settings.topic_flags, compacting=True),
    )
