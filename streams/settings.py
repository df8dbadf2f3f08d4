"""The one settings object: every knob, its environment name, type and meaning.

Read once at the edge (the CLI), frozen, then passed down. Environment
variables use the prefix ``CALLGUARD_`` (``CALLGUARD_BROKER_URL`` and so on).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import phonenumbers
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from features.config import FeatureConfig
from features.emission import EmissionPolicy

__all__ = ["ConfigurationError", "Settings", "load_settings"]

_EMISSION = EmissionPolicy()  # the defaults training builds its table with too


class ConfigurationError(RuntimeError):
    """A setting is wrong; the message says which and what to change."""


class Settings(BaseSettings):
    """callguard's configuration, with the embedded defaults of the demo."""

    model_config = SettingsConfigDict(env_prefix="CALLGUARD_", frozen=True, extra="forbid")

    app_id: str = Field("callguard", description="Faust app id = Kafka consumer group.")
    broker_url: str = Field(
        "kafka://127.0.0.1:9092",
        description="Kafka bootstrap servers, kafka://host:port[;host:port].",
    )
    default_region: str = Field("CN", description="Region for numbers without a country code.")

    topic_cdr_raw: str = Field("cdr.raw", description="Where carriers publish CDRs.")
    topic_deadletter: str = Field("cdr.deadletter", description="Rejected CDRs and why.")
    topic_by_caller: str = Field(
        "cdr.by_caller", description="Valid CDRs repartitioned by normalised caller."
    )
    topic_complaints: str = Field("complaints", description="User complaints about numbers.")
    topic_flags: str = Field("cdr.flags", description="Decisions for interception systems.")
    topic_features: str = Field(
        "caller.features", description="Emitted per-caller feature vectors (for analysts)."
    )
    partitions: int = Field(4, ge=1, le=1024, description="Partitions of the topics we create.")

    max_message_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="Larger cdr.raw messages are dead-lettered."
    )
    deadletter_max_original_bytes: int = Field(
        900_000,
        ge=1024,
        description="Originals longer than this are truncated in the dead letter (size kept).",
    )
    gc_thresholds: tuple[int, int, int] = Field(
        (50_000, 20, 100),
        description=(
            "The worker's garbage-collector thresholds (gc.set_threshold), as a JSON "
            "list; Python's default is [700, 10, 10] (see streams/tuning/gc_tuning.py)."
        ),
    )
    ingest_batch_size: int = Field(
        5000, ge=1, description="Messages taken from cdr.raw per processing batch."
    )
    ingest_batch_within_s: float = Field(
        0.2,
        gt=0,
        description=(
            "Longest wait, from its first message, to fill an ingest batch, seconds "
            "(bigger batches cost less per CDR downstream)."
        ),
    )
    ingest_idle_s: float = Field(
        1.0,
        ge=0,
        description=(
            "Longest wait for an empty input partition caught up to its end (a producer "
            "may still write older records to it) before the others go on without it."
        ),
    )
    ingest_lead_s: float | None = Field(
        None,
        ge=0,
        description=(
            "How far in event time the input partitions ahead may go on past the slowest "
            "one before they wait for it, seconds; below grace_s, so its next calls still "
            "count (streams/pipeline/alignment.py). Default: a twelfth of grace_s (10 s "
            "with the default grace)."
        ),
    )
    ingest_hold_bytes: int = Field(
        1024 * 1024,
        ge=0,
        description=(
            "Bytes an input partition ahead of the others may hold before it is paused "
            "until they catch up (0: pause it whatever it holds)."
        ),
    )
    fetch_max_wait_ms: int = Field(
        100,
        ge=0,
        le=60_000,
        description=(
            "Longest a consumer's fetch waits at the broker for data, milliseconds. Apache "
            "Kafka answers as soon as data arrives; a broker that holds the fetch for the "
            "whole wait (Tansu, the embedded one) adds up to this much latency per hop."
        ),
    )
    caller_expiry_interval_s: float = Field(
        60.0,
        gt=0,
        description=(
            "How often (wall clock) each partition drops callers idle for longer than "
            "the long window, and moves callers idle for longer than caller_hot_s out "
            "of the block."
        ),
    )
    caller_hot_s: int = Field(
        3600,
        ge=0,
        description=(
            "Callers with no call for this long (event time, seconds) leave the block's "
            "columns (about 2-3 KB each) for compact bytes in the table (about 0.5 KB) and "
            "load again, with the rest of their message's, on their next call (about 5-10 us "
            "each). 0 keeps every caller in the block."
        ),
    )
    checkpoint_interval_s: float = Field(
        1.0,
        gt=0,
        description=(
            "Per-caller state reaches its changelog, and the messages behind it are "
            "acknowledged, at most this long after they were applied (streams.state.checkpoint)."
        ),
    )
    checkpoint_max_rows: int = Field(
        20_000,
        ge=1,
        description="A checkpoint runs early once this many callers wait to be written.",
    )
    internal_max_message_bytes: int = Field(
        900_000,
        ge=10_000,
        description=(
            "cdr.by_caller and caller.features messages are cut below this size "
            "(keep it under the broker's message.max.bytes, 1 MiB by default)."
        ),
    )

    short_window_s: int = Field(600, description="Short window length, seconds.")
    short_hop_s: int = Field(300, description="Short window hop, seconds.")
    long_window_s: int = Field(86_400, description="Long window length, seconds.")
    long_hop_s: int = Field(21_600, description="Long window hop, seconds.")
    grace_s: int = Field(120, description="Lateness a caller's calls may have and still count.")
    max_future_s: int = Field(
        900,
        ge=1,
        description=(
            "A CDR starting more than this after the worker's clock goes to the dead letter: "
            "its switch's clock or time zone is wrong (local time sent as UTC is 8 h ahead)."
        ),
    )
    short_call_s: float = Field(10.0, description="Answered calls shorter than this are short.")
    one_ring_s: float = Field(3.0, description="Unanswered calls ringing less are one-ring.")
    emit_min_calls: int = Field(
        _EMISSION.min_calls,
        ge=1,
        description="Short-window calls that make a burst, scored at the bucket's end.",
    )
    emit_idle_s: float = Field(
        30.0,
        gt=0,
        description="Wall-clock seconds without a message after which a partition's open "
        "buckets are scored as they stand (the end of the traffic, a quiet night).",
    )
    emit_min_long_calls: int = Field(
        _EMISSION.min_long_calls,
        ge=1,
        description="Long-window calls that make a steady caller worth scoring.",
    )

    model_dir: Path = Field(Path("var/callguard/models"), description="Model registry root.")
    allowlist_path: Path = Field(
        Path("var/callguard/allowlist.sqlite"), description="The allow-list database."
    )
    users_path: Path = Field(
        Path("var/callguard/users.sqlite"),
        description="The users, their hashed tokens and sessions (callguard users ...); "
        "share it between workers.",
    )
    session_ttl_s: float = Field(
        12 * 3600.0, gt=0, description="A browser session ends this long after sign-in."
    )
    login_max_failures: int = Field(
        5,
        ge=1,
        description="Failed sign-ins allowed per user name within login_failure_window_s "
        "(four times as many per remote address) before further attempts get 429.",
    )
    login_failure_window_s: float = Field(
        300.0, gt=0, description="The window over which failed sign-ins are counted."
    )
    model_refresh_s: float = Field(
        5.0, gt=0, description="How often a worker looks for a newly promoted model."
    )
    flag_ttl_s: float = Field(86_400.0, gt=0, description="A flag lapses this long after renewal.")
    appeal_hold_s: float = Field(
        30 * 86_400.0,
        ge=0,
        description=(
            "After an upheld appeal or a dismissed review, the number is not flagged again "
            "this long (event time, seconds) unless its behaviour changes materially, and "
            "then only as a watch for review, never a block."
        ),
    )
    appeal_review_margin: float = Field(
        0.5,
        ge=0,
        le=1,
        description=(
            "While a number is held after an appeal, a score counts as a material change "
            "when it reaches this share of the way to 1 from the block threshold or the "
            "lifted flag's score, whichever is higher (0.5, block 0.9, lifted at 0.94: 0.97); "
            "a new category is a material change too."
        ),
    )
    category_switch_ratio: float = Field(
        1.5,
        ge=1,
        description="A flag changes category only when another class is this many times as "
        "probable as its current one.",
    )
    block_hold_margin: float = Field(
        0.05,
        ge=0,
        lt=1,
        description="An active block is renewed as a block while the score stays within this "
        "margin below the block threshold.",
    )

    lookup_event_time: bool = Field(
        False,
        description="GET /numbers: judge expiry by event time only (simulated clocks, demo).",
    )

    store_url: str = Field(
        "chdb:///var/lib/callguard/chdb",
        description="clickhouse://user:password@host:9000/db or chdb:///path.",
    )
    store_password: SecretStr | None = Field(
        None, description="Overrides the password in store_url, so URLs can be logged."
    )
    reader_store_url: str | None = Field(
        None,
        description="Read-only store URL for the dashboard where the writer may not SELECT.",
    )
    reader_store_password: SecretStr | None = Field(None, description="Its password.")
    store_retention_days: int = Field(
        180, ge=1, description="Keep decisions this long (event time; TTL or dropped partitions)."
    )
    store_migrate_on_start: bool = Field(
        True, description="Apply the schema at worker start (off where the writer may not DDL)."
    )
    store_enabled: bool = Field(True, description="Write decisions to the store at all.")
    stop_drain_timeout_s: float = Field(
        8.0,
        gt=0,
        description=(
            "At worker stop: longest wait for agents to finish the events they hold, so "
            "that the final commit includes them (keep the stop inside a 30 s grace period)."
        ),
    )
    store_close_timeout_s: float = Field(
        5.0,
        gt=0,
        description=(
            "At worker stop: longest wait to write the decisions still buffered before the "
            "store closes (the rest are read again by the next worker)."
        ),
    )
    shutdown_timeout_s: float = Field(
        9.0,
        ge=3.0,
        description=(
            "At worker stop: the longest the whole stop takes, from SIGTERM to exit, whatever "
            "the broker or the store do (keep it under the orchestrator's grace period). It "
            "shortens the two timeouts above where they do not fit. What is not flushed or "
            "committed by then is logged, the store is closed and the worker exits with code "
            "1; the next worker reads the uncommitted input again."
        ),
    )
    data_dir: Path = Field(Path("var/callguard"), description="Worker state (Faust tables).")
    web_port: int = Field(6066, ge=1, le=65535, description="Worker HTTP port.")
    web_host: str = Field(
        "127.0.0.1", description="Worker HTTP bind address (0.0.0.0 in containers)."
    )

    broker_session_timeout_s: float = Field(
        6.0, gt=0, description="Consumer session timeout; low so group joins are quick."
    )
    broker_rebalance_timeout_s: float = Field(
        6.0, gt=0, description="Consumer rebalance timeout; Faust's 30 s default slows joins."
    )
    broker_heartbeat_interval_s: float = Field(1.0, gt=0, description="Consumer heartbeat.")
    changelog_nudge_s: float = Field(
        2.0,
        ge=0,
        description="Embedded-broker workaround (streams.workarounds.hw_nudge); 0 on Apache Kafka.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("broker_url")
    @classmethod
    def _check_broker_url(cls, value: str) -> str:
        if not value.startswith("kafka://") or len(value) <= len("kafka://"):
            raise ValueError(
                f"{value!r} is not a broker URL; use kafka://host:port (several: separated by ;)"
            )
        return value

    @field_validator("gc_thresholds")
    @classmethod
    def _gc_thresholds_collect(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        if value[0] < 1 or min(value) < 0:
            raise ValueError(
                "the first threshold must be at least 1 (0 turns collection off) and none "
                f"negative, got {list(value)}; Python's default is [700, 10, 10]"
            )
        return value

    @field_validator("default_region")
    @classmethod
    def _check_region(cls, value: str) -> str:
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not an ISO 3166 region phonenumbers knows (e.g. CN)")
        return value

    @field_validator("store_url")
    @classmethod
    def _check_store_url(cls, value: str) -> str:
        if not value.startswith(("clickhouse://", "chdb://")):
            raise ValueError(
                f"{value!r}: use clickhouse://user:password@host:9000/db or chdb:///path"
            )
        return value

    @model_validator(mode="after")
    def _check_windows(self) -> Settings:
        self.feature_config()  # FeatureConfig names the bad field and the fix
        lead = self.ingest_lead_s
        if lead is not None and lead > 0 and lead >= self.grace_s:
            raise ValueError(
                f"ingest_lead_s: must be below grace_s ({self.grace_s}), got {lead:g}; calls "
                "of the input partitions left that far behind would come too late to count"
            )
        return self

    @property
    def ingest_lead_ms(self) -> int:
        """The ingest lead in milliseconds (by default a twelfth of the grace)."""
        lead = self.grace_s / 12 if self.ingest_lead_s is None else self.ingest_lead_s
        return int(lead * 1000)

    def feature_config(self) -> FeatureConfig:
        """The feature core's configuration from these settings."""
        try:
            return FeatureConfig(
                short_window_s=self.short_window_s,
                short_hop_s=self.short_hop_s,
                long_window_s=self.long_window_s,
                long_hop_s=self.long_hop_s,
                grace_s=self.grace_s,
                short_call_s=self.short_call_s,
                one_ring_s=self.one_ring_s,
            )
        except ValueError as error:
            raise ValueError(str(error).replace("FeatureConfig.", "")) from None

    @property
    def appeal_suppression_s(self) -> float:
        """The appeal hold under its former name (``CALLGUARD_APPEAL_SUPPRESSION_S`` is refused)."""
        return self.appeal_hold_s

    @property
    def bootstrap_servers(self) -> str:
        """The broker URL as a client's ``host:port,host:port`` list."""
        return self.broker_url.removeprefix("kafka://").replace(";", ",")


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment (and overrides), or fail with what to change."""
    if "CALLGUARD_FEATURE_ENGINE" in os.environ:
        # The records engine is the reference the block engine is tested against, not a mode.
        raise ConfigurationError(
            "invalid configuration:\n  CALLGUARD_FEATURE_ENGINE is no longer read: the worker "
            "always keeps callers' state as columns (the block engine); unset it"
        )
    if "CALLGUARD_APPEAL_SUPPRESSION_S" in os.environ:
        # An ignored old name would silently give a 30-day hold where 7 days were meant.
        raise ConfigurationError(
            "invalid configuration:\n  CALLGUARD_APPEAL_SUPPRESSION_S is no longer read: set "
            "CALLGUARD_APPEAL_HOLD_S (seconds an upheld appeal holds; default 30 days) instead"
        )
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        lines = []
        for problem in error.errors():
            message = str(problem["msg"]).removeprefix("Value error, ")
            field = ".".join(str(part) for part in problem["loc"])
            if not field:  # a check across fields names its field first
                field, _, message = message.partition(": ")
            lines.append(f"  {field} (env CALLGUARD_{field.upper()}): {message}")
        raise ConfigurationError("invalid configuration:\n" + "\n".join(lines)) from None
