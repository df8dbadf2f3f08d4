"""The app factory: one place that turns :class:`Settings` into a wired Faust app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field

import faust

from streams.feature_stage import Emission, StageStats
from streams.settings import Settings
from streams.topics import Topics, declare_topics

__all__ = ["CallguardApp", "PipelineCounters", "create_app"]


@dataclass
class PipelineCounters:
    """Running totals of one worker, read by status pages and tests."""

    messages_in: int = 0
    records_valid: int = 0
    records_rejected: int = 0
    features: StageStats = field(default_factory=StageStats)


@dataclass
class CallguardApp:
    """The Faust app with its settings, topics and counters."""

    faust_app: faust.App
    settings: Settings
    topics: Topics
    counters: PipelineCounters = field(default_factory=PipelineCounters)
    caller_table: MutableMapping[str, bytes] | None = None
    changelog_topics: list[str] = field(default_factory=list)
    emission_listeners: list[Callable[[Emission], Awaitable[None]]] = field(default_factory=list)


def create_app(settings: Settings) -> CallguardApp:
    """Build the Faust app, its topics and agents from ``settings``."""
    faust_app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        store="memory://",
        datadir=str(settings.data_dir),
        web_port=settings.web_port,
        web_host="127.0.0.1",
        topic_partitions=settings.partitions,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_rebalance_timeout=settings.broker_rebalance_timeout_s,
        broker_heartbeat_interval=settings.broker_heartbeat_interval_s,
        producer_max_request_size=max(1_048_576, settings.deadletter_max_original_bytes * 2),
        stream_wait_empty=False,
    )
    app = CallguardApp(faust_app, settings, declare_topics(faust_app, settings))
    from streams.agents import register_agents  # agents and views need the built app
    from streams.web import register_views

    register_agents(app)
    register_views(app)
    return app
