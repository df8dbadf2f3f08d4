"""BufferedStoreWriter against an in-memory store: retries keep data, order holds, back-pressure."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from contracts.flag import Action, Flag
from sinks.backoff import Backoff
from sinks.buffered import BackPressure, BufferedStoreWriter, FlushFailed
from sinks.clickhouse.errors import QueryError, StoreUnavailable
from sinks.clickhouse.store import Params, Store

T0 = 1_795_000_000_000


class FakeStore(Store):
    """Enough of a store for insert_decisions: rows per table, scripted failures."""

    kind = "fake"

    def __init__(self, world: World) -> None:
        super().__init__("fake")
        self.world = world
        self.closed = False

    def ensure_database(self) -> None:
        pass

    def execute(self, sql: str, params: Params | None = None) -> None:
        raise NotImplementedError

    def query_rows(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        self.world.check("query")
        assert params is not None and "decision_id IN" in sql
        stored = {row["decision_id"] for row in self.world.tables.get("flags_history", [])}
        return [(decision_id,) for decision_id in params["ids"] if decision_id in stored]

    def insert_columns(
        self, table: str, column_names: Sequence[str], columns: Sequence[Sequence[Any]]
    ) -> int:
        self.world.check(table)
        rows = [
            dict(zip(column_names, values, strict=True))
            for values in zip(*columns, strict=True)
        ]
        self.world.tables.setdefault(table, []).extend(rows)
        return len(rows)

    def server_version(self) -> tuple[int, ...]:
        return (26, 9)

    def close(self) -> None:
        self.closed = True


class World:
    """The server behind the fake stores: its tables, whether it is up, what fails next."""

    def __init__(self) -> None:
        self.tables: dict[str, list[dict[str, Any]]] = {}
        self.down = False
        self.fail_on: dict[str, int] = {}  # table (or "query") -> failures left
        self.stores: list[FakeStore] = []

    def connect(self) -> FakeStore:
        store = FakeStore(self)
        self.stores.append(store)
        return store

    def check(self, what: str) -> None:
        if self.down:
            raise StoreUnavailable("connection refused")
        if self.fail_on.get(what, 0) > 0:
            self.fail_on[what] -= 1
            raise QueryError("Too many parts", 252)

    def history_numbers(self) -> list[str]:
        return [row["number"] for row in self.tables.get("flags_history", [])]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def flag(index: int, action: Action = Action.BLOCK) -> Flag:
    return Flag(
        number=f"+86138{index:08d}",
        action=action,
        category="fraud",
        score=0.95,
        reasons=("short-call ratio 0.9",),
        model_version="hgb-1",
        window_end_ms=T0 + index * 1000,
        flagged_at_ms=T0 + index * 1000,
        expires_at_ms=T0 + index * 1000 + 86_400_000,
        features={"short_call_ratio": 0.9},
    )


def flags(start: int, count: int) -> list[Flag]:
    return [flag(index) for index in range(start, start + count)]


def numbers(batch: Sequence[Flag]) -> list[str]:
    return [item.number for item in batch]


def make_writer(
    world: World, clock: FakeClock | None = None, **options: Any
) -> BufferedStoreWriter:
    clock = clock or FakeClock()
    options.setdefault("backoff", Backoff(initial_s=1, max_s=8, jitter=0))
    return BufferedStoreWriter(
        world.connect,
        actor="worker-1",
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(7),
        **options,
    )


def test_flush_writes_in_the_order_added_and_empties_the_buffer() -> None:
    world = World()
    writer = make_writer(world, batch_size=3)
    writer.add(flags(0, 4))
    writer.add(flags(4, 3))

    assert writer.pending() == 7
    assert writer.flush() == 7

    assert world.history_numbers() == numbers(flags(0, 7))
    assert writer.pending() == 0 and writer.flush() == 0
    row = world.tables["flags_history"][0]
    assert row["decision_id"] == flag(0).decision_id and row["actor"] == "worker-1"
    metrics = writer.metrics()
    assert (metrics.written, metrics.insert_failures, metrics.buffered) == (7, 0, 0)
    assert metrics.last_success_at is not None


def test_a_failed_flush_keeps_every_decision_and_the_retry_writes_each_once() -> None:
    world = World()
    writer = make_writer(world)
    writer.add(flags(0, 5))
    world.down = True

    with pytest.raises(FlushFailed, match="5 decisions not written"):
        writer.flush()

    assert writer.pending() == 5 and "flags_history" not in world.tables
    metrics = writer.metrics()
    assert metrics.insert_failures == 1 and metrics.consecutive_failures == 1
    assert metrics.last_error is not None and "connection refused" in metrics.last_error
    assert metrics.last_success_at is None and metrics.retry_in_s == 1.0
    world.down = False
    assert writer.flush() == 5
    assert world.history_numbers() == numbers(flags(0, 5))
    assert writer.metrics().consecutive_failures == 0 and writer.retry_in() == 0


def test_a_flush_that_fails_half_way_resumes_where_it_stopped() -> None:
    world = World()
    writer = make_writer(world, batch_size=2)
    writer.add(flags(0, 6))
    world.fail_on["flags_history"] = 1
    world.fail_on["query"] = 0

    # First chunk: features and current written, history fails -> nothing counts as stored.
    with pytest.raises(FlushFailed):
        writer.flush()
    assert writer.pending() == 6
    writer.flush()

    assert world.history_numbers() == numbers(flags(0, 6))
    # Half-written rows were written again by the retry; history (the record) once each.
    assert len(world.tables["flags_current"]) == 8


def test_a_failure_on_a_later_chunk_keeps_only_the_unwritten_tail() -> None:
    world = World()
    writer = make_writer(world, batch_size=2)
    writer.add(flags(0, 6))
    calls = {"n": 0}
    original = world.check

    def fail_on_second_chunk(what: str) -> None:
        if what == "query":
            calls["n"] += 1
            if calls["n"] == 2:
                raise StoreUnavailable("reset by peer")
        original(what)

    world.check = fail_on_second_chunk  # type: ignore[method-assign]
    with pytest.raises(FlushFailed):
        writer.flush()

    assert world.history_numbers() == numbers(flags(0, 2))
    assert writer.pending() == 4
    writer.add(flags(6, 1))
    writer.flush()
    assert world.history_numbers() == numbers(flags(0, 7))


def test_a_full_buffer_refuses_a_whole_batch_and_takes_it_after_a_flush() -> None:
    world = World()
    writer = make_writer(world, max_buffered=5)
    writer.add(flags(0, 3))

    with pytest.raises(BackPressure, match="3 decisions do not fit: 3 of 5"):
        writer.add(flags(3, 3))
    assert writer.pending() == 3  # all or nothing: no part of the refused batch

    writer.flush()
    writer.add(flags(3, 3))
    writer.flush()
    assert world.history_numbers() == numbers(flags(0, 6))


def test_the_backoff_grows_is_capped_and_resets_on_success() -> None:
    world = World()
    clock = FakeClock()
    writer = make_writer(world, clock)
    writer.add(flags(0, 1))
    world.down = True
    delays = []
    for _ in range(6):
        with pytest.raises(FlushFailed):
            writer.flush()
        delays.append(writer.retry_in())

    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    world.down = False
    writer.flush()
    assert writer.retry_in() == 0 and writer.metrics().insert_failures == 6


def test_jitter_stays_within_its_share_of_the_delay() -> None:
    policy = Backoff(initial_s=1, max_s=30, jitter=0.25)
    rng = random.Random(1)
    samples = [policy.delay(3, rng) for _ in range(200)]

    assert all(3.0 <= delay <= 4.0 for delay in samples)
    assert len(set(samples)) > 100
    assert policy.delay(10_000, rng) <= 30


def test_an_unreachable_server_means_a_new_connection_next_time() -> None:
    world = World()
    writer = make_writer(world)
    writer.add(flags(0, 2))
    writer.flush()
    writer.add(flags(2, 2))
    world.down = True
    with pytest.raises(FlushFailed):
        writer.flush()
    world.down = False
    writer.flush()

    assert len(world.stores) == 2 and world.stores[0].closed
    assert writer.metrics().reconnects == 1
    world.fail_on["flags_history"] = 1  # a refused query keeps the connection
    writer.add(flags(4, 1))
    with pytest.raises(FlushFailed):
        writer.flush()
    writer.flush()
    assert len(world.stores) == 2


def test_close_flushes_what_it_can_and_reports_the_rest() -> None:
    world = World()
    clock = FakeClock()
    writer = make_writer(world, clock)
    writer.add(flags(0, 3))
    world.down = True

    report = writer.close(timeout=10)

    assert not report.complete
    assert [decision.number for decision in report.remaining] == numbers(flags(0, 3))
    # Attempts at 0, 1, 3 and 7 s; the next would be at 15 s, past the timeout.
    assert writer.metrics().insert_failures == 4
    assert clock.now == 1007.0

    world.down = False
    healthy = make_writer(world)
    healthy.add(flags(0, 3))
    report = healthy.close(timeout=10)
    assert report.complete and report.written == 3
    assert world.stores[-1].closed


def test_add_async_waits_for_room_and_flush_async_for_the_store() -> None:
    world = World()
    writer = BufferedStoreWriter(
        world.connect,
        actor="worker-1",
        max_buffered=4,
        batch_size=3,
        backoff=Backoff(initial_s=0.01, max_s=0.02),
    )
    world.fail_on["query"] = 3

    async def run() -> None:
        for start in range(0, 12, 3):
            await writer.add_async(flags(start, 3))
        await writer.flush_async()

    asyncio.run(run())

    assert world.history_numbers() == numbers(flags(0, 12))
    assert writer.pending() == 0 and writer.metrics().insert_failures == 3


def test_add_async_refuses_a_batch_larger_than_the_buffer() -> None:
    writer = make_writer(World(), max_buffered=2)

    with pytest.raises(ValueError, match="never fit"):
        asyncio.run(writer.add_async(flags(0, 3)))


def test_adds_from_threads_during_flushes_lose_nothing() -> None:
    world = World()
    writer = make_writer(world, max_buffered=100_000, batch_size=7)
    stop = threading.Event()

    def flusher() -> None:
        while not stop.is_set():
            writer.flush()

    def producer(offset: int) -> None:
        for start in range(offset, offset + 500, 5):
            writer.add(flags(start, 5))

    flushing = threading.Thread(target=flusher)
    producers = [threading.Thread(target=producer, args=(n * 1000,)) for n in range(4)]
    flushing.start()
    for thread in producers:
        thread.start()
    for thread in producers:
        thread.join()
    stop.set()
    flushing.join()
    writer.flush()

    written = world.history_numbers()
    assert len(written) == len(set(written)) == 2000
    for n in range(4):  # each producer's decisions stay in its order
        own = [number for number in written if int(number[6:]) // 1000 == n]
        assert len(own) == 500 and own == sorted(own)
