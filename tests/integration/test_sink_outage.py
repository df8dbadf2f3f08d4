"""A real ClickHouse outage under BufferedStoreWriter: nothing lost, nothing doubled.

The server is a private instance (``clickhouse_private_server``): stopping it
cannot disturb other tests on the shared server. The figures (catch-up time,
inserts per second) are printed; run with ``-s`` to see them.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from contracts.flag import Action, Flag
from sinks.backoff import Backoff
from sinks.buffered import BufferedStoreWriter
from sinks.clickhouse import current_flags, flag_history, migrate, open_store
from tests.clickhouse_fixtures import PrivateServer

pytestmark = pytest.mark.integration

NUMBERS = [f"+861390000{index:04d}" for index in range(1000)]
BATCHES = 24
STOP_AFTER = 8  # batches written before the outage
DOWN_FOR = 8  # batches added while the server is down
MINUTE_MS = 60_000
# Event time: recent, so the decisions are current; whole hours keep the test repeatable.
BASE_MS = (int(time.time()) // 3600 - 2) * 3_600_000
ACTIONS = (Action.BLOCK, Action.WATCH, Action.CLEAR)


def batch(index: int) -> list[Flag]:
    """Batch ``index``: one decision per number, one minute after the previous batch."""
    at_ms = BASE_MS + index * MINUTE_MS
    flags = []
    for position, number in enumerate(NUMBERS):
        action = ACTIONS[(index + position) % 3]
        flags.append(
            Flag(
                number=number,
                action=action,
                category="fraud",
                score=0.5 + (position % 50) / 100,
                reasons=(f"batch {index}",),
                model_version="hgb-1",
                window_end_ms=at_ms,
                flagged_at_ms=at_ms,
                expires_at_ms=None if action is Action.CLEAR else at_ms + 86_400_000,
                source="model" if action is not Action.CLEAR else "expiry",
                features={"short_call_ratio": position / 1000},
            )
        )
    return flags


class Flusher(threading.Thread):
    """What the worker's timer does: flush whenever the backoff allows."""

    def __init__(self, writer: BufferedStoreWriter) -> None:
        super().__init__(daemon=True)
        self.writer = writer
        self.stopping = threading.Event()
        self.failures = 0

    def run(self) -> None:
        while not self.stopping.is_set():
            if self.writer.pending() and self.writer.retry_in() == 0:
                try:
                    self.writer.flush()
                except Exception:  # counted; the writer keeps the data
                    self.failures += 1
            self.stopping.wait(0.02)


def wait_until_empty(writer: BufferedStoreWriter, timeout_s: float) -> float:
    started = time.monotonic()
    while writer.pending():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{writer.pending()} still pending: {writer.metrics()}")
        time.sleep(0.01)
    return time.monotonic() - started


def test_decisions_written_through_an_outage_appear_exactly_once(
    clickhouse_private_server: PrivateServer,
) -> None:
    server = clickhouse_private_server
    url = server.database_url("callguard_outage")
    with open_store(url) as store:
        migrate(store)
    writer = BufferedStoreWriter.from_url(
        url,
        actor="worker-outage",
        max_buffered=BATCHES * len(NUMBERS),
        batch_size=5000,
        backoff=Backoff(initial_s=0.05, max_s=1.0),
    )
    flusher = Flusher(writer)
    flusher.start()
    all_flags: list[Flag] = []
    try:
        for index in range(STOP_AFTER):
            writer.add(batch(index))
            all_flags += batch(index)
        wait_until_empty(writer, 60)
        writer.add(batch(3))  # a replayed batch: already stored, must not double

        server.stop()
        for index in range(STOP_AFTER, STOP_AFTER + DOWN_FOR):
            writer.add(batch(index))
            all_flags += batch(index)
            time.sleep(0.1)
        time.sleep(1.5)  # let a few retries fail
        down = writer.metrics()
        assert down.buffered >= DOWN_FOR * len(NUMBERS)
        assert down.insert_failures >= 2 and down.last_error is not None
        assert "StoreUnavailable" in down.last_error

        server.ensure()
        catch_up_s = wait_until_empty(writer, 120)
    finally:
        server.ensure()  # never leave the server stopped, whatever failed above
        flusher.stopping.set()
        flusher.join(10)

    for index in range(STOP_AFTER + DOWN_FOR, BATCHES):  # after the outage, as usual
        writer.add(batch(index))
        all_flags += batch(index)
    started = time.monotonic()
    written_after = writer.flush()
    after_s = time.monotonic() - started
    report = writer.close(timeout=10)
    assert report.complete and written_after == (BATCHES - STOP_AFTER - DOWN_FOR) * len(NUMBERS)

    expected_ids = {flag.decision_id for flag in all_flags}
    assert len(expected_ids) == BATCHES * len(NUMBERS)
    latest = {flag.number: flag for flag in all_flags}  # batches are in time order
    with open_store(url) as store:
        ((deduplicated, distinct),) = store.query_rows(
            f"SELECT count(), uniqExact(decision_id) FROM {store.table('flags_history_dedup')}"  # noqa: S608
        )
        ((raw,),) = store.query_rows(
            f"SELECT count() FROM {store.table('flags_history')}"  # noqa: S608
        )
        assert deduplicated == distinct == len(expected_ids)
        assert raw == len(expected_ids)  # the writer skipped what was stored: not even raw copies
        stored_ids = {
            decision_id
            for (decision_id,) in store.query_rows(
                f"SELECT decision_id FROM {store.table('flags_history_dedup')}"  # noqa: S608
            )
        }
        assert stored_ids == expected_ids

        current_sql = (
            f"SELECT number, action, decision_id FROM {store.table('flags_current')} FINAL"  # noqa: S608
        )
        current = {
            number: (action, decision_id)
            for number, action, decision_id in store.query_rows(current_sql)
        }
        assert current == {
            number: (flag.action.value, flag.decision_id) for number, flag in latest.items()
        }
        now = datetime.fromtimestamp((BASE_MS + BATCHES * MINUTE_MS) / 1000, tz=UTC)
        active = {row["number"] for row in current_flags(store, now=now, limit=10_000)}
        assert active == {n for n, flag in latest.items() if flag.action is not Action.CLEAR}
        history = flag_history(store, NUMBERS[7])
        assert [row["decision_id"] for row in history] == [
            flag.decision_id for flag in reversed(all_flags) if flag.number == NUMBERS[7]
        ]

    buffered_at_restart = down.buffered
    print(  # noqa: T201 - the figures for the report
        f"\noutage: {buffered_at_restart} decisions buffered while down, "
        f"{down.insert_failures} failed flushes; caught up in {catch_up_s:.2f}s after restart "
        f"({buffered_at_restart / catch_up_s:,.0f} decisions/s incl. reconnect); "
        f"{written_after} more in {after_s:.2f}s ({written_after / after_s:,.0f} decisions/s)"
    )

