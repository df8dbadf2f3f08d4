"""The app factory: one place that turns :class:`Settings` into a wired Faust app."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections.abc import Awaitable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, fields
from functools import partial
from typing import TYPE_CHECKING, NoReturn

import faust

from sinks.buffered import BufferedStoreWriter
from sinks.clickhouse import StoreError, migrate, open_store
from streams.agents import register_agents
from streams.http.access import register_access
from streams.http.dashboard import register_dashboard
from streams.http.metrics import register_metrics
from streams.http.web import register_views
from streams.pipeline.intake import Intake
from streams.settings import Settings
from streams.stages.block_stage import BlockFeatureStage
from streams.stages.decision_stage import DecisionStats
from streams.stages.model_service import ModelService
from streams.stages.stage_stats import StageStats
from streams.state.checkpoint import Checkpointer
from streams.state.write_behind import ChangelogWriter
from streams.topics import Topics, declare_topics
from streams.workarounds.faust_resume import hold_events_until_streams_resume
from streams.workarounds.fetch_guard import install as install_fetch_guard
from streams.workarounds.fetch_wait import install as install_fetch_wait
from streams.workarounds.hw_nudge import schedule_nudges

if TYPE_CHECKING:
    from streams.http.access.middleware import AccessGuard

__all__ = ["CallguardApp", "PipelineCounters", "create_app", "run_worker"]

logger = logging.getLogger(__name__)

# The part of a stop that follows the agents' drain: Faust's producer flush,
# final commit and service stops, and mode's closing sleep of 1 s; 1.1-1.4 s
# in all with a live broker.
FAUST_STOP_RESERVE_S = 2.0
# A stop that has not finished this long before its deadline is given up:
# enough to close the store (0.5 s, and close_store's 2 s to disconnect).
GIVE_UP_RESERVE_S = 2.5


@dataclass
class PipelineCounters:
    """Running totals of one worker, read by status pages, metrics and tests."""

    messages_in: int = 0
    records_valid: int = 0
    records_rejected: int = 0
    features: StageStats = field(default_factory=StageStats)
    decisions: DecisionStats = field(default_factory=DecisionStats)
    flags_stored: int = 0
    # Per cdr.by_caller partition: calls, late_accepted, late_dropped.
    late_by_partition: dict[int, dict[str, int]] = field(default_factory=dict)

    def note_lateness(self, partition: int, stats: StageStats) -> None:
        """Add one routed message's call and lateness counts to its partition's."""
        mine = self.late_by_partition.setdefault(
            partition, {"calls": 0, "late_accepted": 0, "late_dropped": 0}
        )
        mine["calls"] += stats.calls
        mine["late_accepted"] += stats.late_accepted
        mine["late_dropped"] += stats.late_dropped


@dataclass
class CallguardApp:
    """The Faust app with its settings, topics, services and counters."""

    faust_app: faust.App
    settings: Settings
    topics: Topics
    models: ModelService
    writer: BufferedStoreWriter
    # The store's blocking clients run here, one thread: chdb sessions and
    # clickhouse-driver connections are not shared across threads.
    store_executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="callguard-store")
    )
    counters: PipelineCounters = field(default_factory=PipelineCounters)
    # When this process started (Unix seconds): the counters cover this lifetime only.
    started_at: float = field(default_factory=time.time)
    caller_table: MutableMapping[str, bytes] | None = None
    feature_stage: BlockFeatureStage | None = None
    flag_table: MutableMapping[str, bytes] | None = None
    changelog_topics: list[str] = field(default_factory=list)
    checkpoints: Checkpointer | None = None
    intake: Intake | None = None
    changelog_writer: ChangelogWriter | None = None
    # The HTTP server's gate: users, sessions and failed sign-ins (streams.http.access).
    access: AccessGuard | None = None
    # The stop: when the process must have exited (time.monotonic), and what
    # it could not flush or commit (any of it makes the exit code 1).
    stop_deadline: float | None = None
    stop_problems: list[str] = field(default_factory=list)
    _store_closing: threading.Lock = field(default_factory=threading.Lock)
    _store_closed: bool = False

    @property
    def worker_name(self) -> str:
        """How this worker signs what it writes."""
        return f"worker:{self.settings.app_id}:{self.settings.web_port}"

    def begin_stop(self) -> float:
        """Start the stop's clock (the first call only); the deadline to have exited by."""
        if self.stop_deadline is None:
            self.stop_deadline = time.monotonic() + self.settings.shutdown_timeout_s
        return self.stop_deadline

    def stop_time_left(self, reserve_s: float = 0.0) -> float:
        """Seconds left until ``reserve_s`` before the stop's deadline (0 when past)."""
        return max(0.0, self.begin_stop() - reserve_s - time.monotonic())

    def stop_problem(self, message: str, *args: object) -> None:
        """Log something the stop could not do; the worker will exit with code 1."""
        logger.error("stop problem: " + message, *args)
        self.stop_problems.append(message % args)

    def close_store(self, timeout_s: float) -> None:
        """Write what the flag sink still holds, then close the store in its own thread.

        For after the worker's event loop has stopped, or for giving a stop
        up; the first call closes, later ones return at once. An embedded
        chdb engine left open when the interpreter exits crashes the process
        (SIGSEGV in its background threads) after a long stall. Decisions not
        written in ``timeout_s`` are logged as a stop problem: their offsets
        were never committed, so the next worker reads them again.
        """
        if not self._store_closing.acquire(timeout=timeout_s + 2.0):
            return  # closing in another thread
        try:
            if self._store_closed:
                return
            self._store_closed = True
            closing = self.store_executor.submit(self.writer.close, timeout_s)
            self.store_executor.shutdown(wait=False)
            report = closing.result(timeout_s + 2.0)
        except FutureTimeout:
            self.stop_problem("the store did not close within %.1f s", timeout_s + 2.0)
            return
        except Exception as error:
            self.stop_problem("the store did not close: %r", error)
            return
        finally:
            self._store_closing.release()
        if not report.complete:
            self.stop_problem(
                "%d decisions not stored; the next worker re-reads them", len(report.remaining)
            )


def create_app(settings: Settings) -> CallguardApp:
    """Build the Faust app, its topics, services, agents and views from ``settings``."""
    install_fetch_guard()  # else table recovery can make the worker skip records
    install_fetch_wait(settings.fetch_max_wait_ms)  # Faust fixes 1.5 s
    faust_app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        store="memory://",
        datadir=str(settings.data_dir),
        web_port=settings.web_port,
        web_host=settings.web_host,
        topic_partitions=settings.partitions,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_rebalance_timeout=settings.broker_rebalance_timeout_s,
        broker_heartbeat_interval=settings.broker_heartbeat_interval_s,
        producer_max_request_size=max(1_048_576, settings.deadletter_max_original_bytes * 2),
        stream_wait_empty=False,
    )
    password = settings.store_password.get_secret_value() if settings.store_password else None
    app = CallguardApp(
        faust_app,
        settings,
        declare_topics(faust_app, settings),
        ModelService(
            settings.model_dir,
            settings.allowlist_path,
            flag_ttl_s=settings.flag_ttl_s,
            appeal_hold_s=settings.appeal_hold_s,
            appeal_review_margin=settings.appeal_review_margin,
            category_switch_ratio=settings.category_switch_ratio,
            block_hold_margin=settings.block_hold_margin,
        ),
        BufferedStoreWriter(
            lambda: open_store(settings.store_url, password=password),
            actor=f"worker:{settings.app_id}:{settings.web_port}",
        ),
    )
    app.intake = Intake(app)
    register_agents(app)
    _nudge_changelogs(app)
    register_views(app)
    register_dashboard(app)
    register_metrics(app)
    app.access = register_access(app)  # after every view: it guards them all
    _register_services(app)
    _declare_written_topics(app)
    hold_events_until_streams_resume(app.faust_app)
    _finish_taken_events_at_stop(app)
    return app


def _finish_taken_events_at_stop(app: CallguardApp) -> None:
    """At stop, let agents finish the events they hold, so the final commit includes them.

    With ``stream_wait_empty`` off, Faust stops the agents mid-event and
    commits without what they held: the next worker reads it again. Faust's
    own wait (``stream_wait_empty``) has no bound, and the flag sink waits
    out a store outage; this one gives up after ``stop_drain_timeout_s``, or
    earlier where the stop's deadline (``shutdown_timeout_s``) needs it, so
    that the rest of the stop still fits.
    """
    faust_app, settings = app.faust_app, app.settings

    def time_left() -> float:  # a step that cannot end in time is given up by the watchdog
        return max(0.5, app.stop_time_left(GIVE_UP_RESERVE_S + FAUST_STOP_RESERVE_S))

    @faust_app.on_before_shutdown.connect
    async def finish_taken_events(sender: object, **_: object) -> None:
        """Runs after the fetcher stopped, before the agents and the producer stop.

        It must not raise: Faust would skip the rest of the app's stop (the
        producer flush, the consumer and its thread), and the process would
        never exit.
        """
        app.begin_stop()
        if app.intake is not None and not await _stop_quietly(
            "ingest", app.intake.stop(), time_left()  # its batch in hand is committed first
        ):
            app.stop_problem("ingest's last batch may not be committed; it is read again")
        drain_s = min(settings.stop_drain_timeout_s, time_left())
        try:  # wait_empty commits as events are acked
            await asyncio.wait_for(_drain(app), drain_s)
        except TimeoutError:
            held = app.checkpoints.held if app.checkpoints is not None else 0
            app.stop_problem(
                "events unfinished after %.1f s (%d applied, not acknowledged); "
                "the next worker reads them again", drain_s, held,
            )
        if app.checkpoints is not None and app.checkpoints.broken is not None:
            app.stop_problem("checkpoints broken (%s): what they held is not committed",
                             app.checkpoints.broken)
        if app.changelog_writer is not None and not await _stop_quietly(
            "the changelog writer", app.changelog_writer.stop(), time_left()
        ):
            app.stop_problem("changelog records may be undelivered; their input is not committed")


async def _stop_quietly(what: str, stopping: Awaitable[None], timeout_s: float) -> bool:
    """Await ``stopping`` for at most ``timeout_s``; log, rather than raise, what went wrong.

    True if it stopped cleanly, or stopped half-way in the way below.
    aiokafka 0.14's ``Fetcher.close`` awaits fetch tasks it has just
    cancelled, and one caught in its retry sleep (the broker is gone)
    re-raises that ``CancelledError`` out of ``AIOKafkaConsumer.stop``
    (aio-libs/aiokafka#983, #647), after the consumer left its group. Only
    a cancellation of our own task (``cancelling()``) is passed on.
    """
    try:
        await asyncio.wait_for(stopping, timeout_s)
    except TimeoutError:
        logger.error("%s did not stop within %.1f s", what, timeout_s)
        return False
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        logger.warning("%s: its Kafka client cancelled its own stop (broker gone?)", what)
    except Exception:
        logger.exception("%s failed to stop", what)
        return False
    return True


async def _drain(app: CallguardApp) -> None:
    """Until every event taken is acknowledged: checkpoint what the agents finished."""
    empty = asyncio.ensure_future(app.faust_app.consumer.wait_empty())
    try:
        while not empty.done():
            if app.checkpoints is not None:
                await app.checkpoints.run()
                if app.checkpoints.broken is not None:
                    return  # what is held can never be acknowledged: read again on restart
            await asyncio.wait([empty], timeout=0.2)
        await empty
    finally:
        empty.cancel()


def _declare_written_topics(app: CallguardApp) -> None:
    """Create every topic the worker writes before its streams first resume.

    Faust creates only the topics it reads; ``caller.features`` and
    ``cdr.deadletter`` are only written. aiokafka's producer asks for the
    metadata of all topics until it first sends to one its metadata lacks;
    from then on it asks for that topic alone, and the answer drops every
    other topic. Batches already queued for those topics lose their
    partition leader and wait, unsent, for ``producer_request_timeout``
    (20 minutes), and so does every producer flush: each offset commit and
    the flush in a worker's stop. The worker commits nothing and a SIGTERM
    hangs until SIGKILL. Created here, the topics are in the producer's
    metadata before the first send, and it keeps asking for all of them.
    """
    faust_app, topics = app.faust_app, app.topics
    written = [getattr(topics, topic.name) for topic in fields(topics)]
    declared: list[bool] = []

    @faust_app.on_rebalance_complete.connect
    async def declare_written_topics(sender: object, **_: object) -> None:
        """Runs before stream partitions resume (Faust awaits this signal).

        Ingest starts here too, once the topics it writes exist.
        """
        if declared:
            return
        for topic in written:
            await topic.maybe_declare()
        declared.append(True)
        if app.intake is not None:
            await app.intake.start()


def _nudge_changelogs(app: CallguardApp) -> None:
    """Keep every table's changelog high watermark honest (embedded broker only).

    See :mod:`streams.workarounds.hw_nudge`; ``changelog_nudge_s`` is 0 on
    Apache Kafka, which needs no nudge.
    """
    settings = app.settings
    if settings.changelog_nudge_s <= 0:
        return
    for name, table in app.faust_app.tables.items():
        schedule_nudges(app.faust_app, [table.changelog_topic], settings.partitions,
                        settings.changelog_nudge_s, name=f"callguard.changelog-nudge.{name}")


def _register_services(app: CallguardApp) -> None:
    settings = app.settings

    @app.faust_app.task
    async def prepare_store() -> None:
        """Apply the schema once at start (idempotent), off the event loop.

        A store that cannot be opened yet does not stop the worker: scoring
        and publishing go on, the flag sink holds its offsets, and this
        retries until the store answers.
        """
        if not (settings.store_enabled and settings.store_migrate_on_start):
            return
        loop = asyncio.get_running_loop()
        migrate_now = partial(migrate, retention_days=settings.store_retention_days)
        delay = 1.0
        while True:
            try:
                applied = await loop.run_in_executor(
                    app.store_executor, app.writer.run, migrate_now
                )
            except StoreError as error:
                logger.error("store not ready (retry in %.0f s): %s", delay, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
                continue
            logger.info("store schema: %s", ", ".join(applied) or "up to date")
            return

    last_status = [""]

    @app.faust_app.timer(settings.model_refresh_s, on_leader=False)
    async def refresh_models() -> None:
        """Pick up promoted models and allow-list changes without a restart."""
        status = await asyncio.get_running_loop().run_in_executor(None, app.models.refresh)
        if status not in ("unchanged", "loaded", last_status[0]):
            logger.warning("model: %s", status)  # once per change, not every poll
        last_status[0] = status

    @app.faust_app.task
    async def load_models_at_start() -> None:
        await refresh_models()


def run_worker(app: CallguardApp) -> int:
    """Run the Faust worker until it stops; the process's exit code.

    Any stop (a signal, a crash) ends within ``shutdown_timeout_s``: a
    watchdog gives up a stop that hangs (aiokafka retries commits and
    deliveries to a broker that is gone for as long as 20 minutes), and the
    process exits with code 1 when something could not be flushed or
    committed.
    """
    watchdog = _StopWatchdog(app)

    class Worker(faust.Worker):
        async def on_first_start(self) -> None:
            await super().on_first_start()  # logging and signal handlers first
            await _warm_kernels_before_joining()
            await _load_model_before_joining(app)

        async def on_stop(self) -> None:
            watchdog.start()  # first thing in any stop
            await super().on_stop()

    code: object = 1
    try:
        Worker(app.faust_app, loglevel=app.settings.log_level).execute_from_commandline()
    except SystemExit as exiting:
        code = exiting.code
    finally:  # the event loop has stopped: nothing else uses the store now
        watchdog.loop_stopped()
        app.close_store(min(app.settings.store_close_timeout_s,
                            max(0.1, app.stop_time_left(GIVE_UP_RESERVE_S))))
    code = code if isinstance(code, int) and code else int(bool(app.stop_problems))
    _leave_hung_threads(app, code)
    return code


async def _warm_kernels_before_joining() -> None:
    """Compile (or load from numba's disk cache) the state and routing kernels before joining."""
    from features.block.engine import warm_up_kernels
    from streams.pipeline.partitions import warm_up_routing

    def warm_up() -> float:
        return warm_up_kernels() + warm_up_routing()

    seconds = await asyncio.get_running_loop().run_in_executor(None, warm_up)
    logger.info("state kernels warmed in %.1f s, before joining the groups", seconds)


async def _load_model_before_joining(app: CallguardApp) -> None:
    """Load the serving model and warm its kernels before the worker joins its groups.

    A worker that joined first would take partitions and emit rows it cannot
    score yet; loaded here, its first rows are decided at once. The refresh
    timer keeps looking for newly promoted models from then on.
    """
    started = time.monotonic()
    status = await asyncio.get_running_loop().run_in_executor(None, app.models.refresh)
    current = app.models.current
    if current is None:
        logger.info("no model loaded before joining (%s): rows wait for one (callguard train "
                    "--promote)", status)
        return
    logger.info("model %s loaded and warmed in %.1f s, before joining the groups",
                current.version, time.monotonic() - started)


class _StopWatchdog:
    """Gives up a stop still running ``GIVE_UP_RESERVE_S`` before its deadline."""

    def __init__(self, app: CallguardApp) -> None:
        self._app = app
        self._loop_stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the stop's clock and watch it (the first call only)."""
        if self._thread is None:
            self._app.begin_stop()
            self._thread = threading.Thread(target=self._watch, name="callguard-stop",
                                            daemon=True)
            self._thread.start()

    def loop_stopped(self) -> None:
        """The event loop is closed: the main thread finishes the stop."""
        self._loop_stopped.set()

    def _watch(self) -> None:
        app = self._app
        if self._loop_stopped.wait(app.stop_time_left(GIVE_UP_RESERVE_S)):
            time.sleep(app.stop_time_left())  # a backstop only: the main thread exits first
            app.stop_problem("the stop passed its %.0f s deadline; threads still running: %s",
                             app.settings.shutdown_timeout_s,
                             _names(_holding_threads()))
            _exit_now(1, "exiting with code 1")
        unfinished = [
            what for what, service in (
                ("deliver what the producer holds", app.faust_app.producer),
                ("commit the consumer's offsets and leave its group", app.faust_app.consumer),
            ) if service.state in ("running", "stopping")
        ]
        app.stop_problem(
            "stop given up %.1f s before its deadline; could not %s. Offsets not committed "
            "are read again by the next worker", GIVE_UP_RESERVE_S,
            " or ".join(unfinished) or "finish stopping",
        )
        app.close_store(0.5)
        _exit_now(1, "exiting with code 1 after %d stop problems", len(app.stop_problems))


def _leave_hung_threads(app: CallguardApp, code: int) -> None:
    """Exit at once if threads that would hold the interpreter open do not end soon.

    A Kafka client's thread (mode's ``ServiceThread``) whose stop waits on
    a broker that is gone keeps the process alive long after the event loop
    closed: Python waits for every non-daemon thread before it exits.
    Threads with nothing left to do end within the grace given here.
    """
    until = time.monotonic() + min(1.0, app.stop_time_left(0.5))
    for thread in _holding_threads():
        thread.join(max(0.0, until - time.monotonic()))
    if hung := _holding_threads():
        app.stop_problem(
            "threads still waiting (on the broker?) after the event loop closed: %s",
            _names(hung),
        )
        _exit_now(code or 1, "exiting without them")


def _holding_threads() -> list[threading.Thread]:
    """Threads, other than this one, that Python waits for before it exits."""
    return [thread for thread in threading.enumerate()
            if thread is not threading.current_thread() and not thread.daemon]


def _names(threads: list[threading.Thread]) -> str:
    """Thread names, with the mode service each runs (a Kafka client's, often)."""
    return ", ".join(
        f"{thread.name} ({service.label})" if (service := getattr(thread, "service", None))
        else thread.name
        for thread in threads
    ) or "none"


def _exit_now(code: int, message: str, *args: object) -> NoReturn:
    """Log, flush the logs and leave the process, without waiting for any thread."""
    logger.error(message, *args)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
