"""The write-behind caller table and the checkpoint rules (pure logic; the broker side
is tested in tests/integration/test_checkpoints_broker.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from streams.state.checkpoint import Checkpointer
from streams.state.write_behind import ChangelogRecord, WriteBehindTable, store_dict


def partition_of(keys: list[str]) -> list[int]:
    return [int(key[-1]) % 2 for key in keys]


def test_reads_see_the_overlay_first_and_take_folds_it_into_the_data() -> None:
    data = {b"a1": b"old", b"b2": b"kept", b"c3": b"gone"}
    table = WriteBehindTable(data, partition_of)
    table["a1"] = b"new"
    table.update({"d4": b"fresh"})
    del table["c3"]
    assert table["a1"] == b"new" and table.get("d4") == b"fresh"
    assert table.get("c3") is None and "c3" not in table and "b2" in table
    with pytest.raises(KeyError):
        table["c3"]
    with pytest.raises(KeyError):
        del table["zz9"]
    assert sorted(table) == ["a1", "b2", "d4"] and len(table) == 3
    assert data == {b"a1": b"old", b"b2": b"kept", b"c3": b"gone"}  # untouched until taken
    assert table.pending == 3

    records = table.take()

    assert sorted(records, key=lambda r: r[1]) == [
        (1, b"a1", b"new"), (1, b"c3", None), (0, b"d4", b"fresh"),
    ]
    assert data == {b"a1": b"new", b"b2": b"kept", b"d4": b"fresh"}
    assert table.pending == 0 and table.take() == []


def test_restore_puts_a_failed_checkpoint_back_without_undoing_newer_writes() -> None:
    table = WriteBehindTable({}, partition_of)
    table["a1"], table["b2"] = b"v1", b"v1"
    records = table.take()
    table["a1"] = b"v2"  # written while the failed checkpoint was in flight
    table.restore(records)
    assert sorted(table.take(), key=lambda r: r[1]) == [(1, b"a1", b"v2"), (0, b"b2", b"v1")]


@dataclass
class Message:
    partition: int
    offset: int


@dataclass
class Event:
    message: Message


@dataclass
class Writer:
    """Records what it was asked to write; fails while ``down``."""

    down: bool = False
    written: list[list[ChangelogRecord]] = field(default_factory=list)

    async def write(self, topic: str, records: list[ChangelogRecord]) -> int:
        if self.down:
            raise ConnectionError("broker unreachable")
        self.written.append(list(records))
        return len(records)


def checkpointer(table: WriteBehindTable, writer: Writer, acked: list[Event],
                 interval_s: float = 60.0, max_rows: int = 100) -> Checkpointer:
    async def ack(event: Event) -> None:
        acked.append(event)

    return Checkpointer([(table, "changelog")], writer, ack,  # type: ignore[arg-type]
                        interval_s=interval_s, max_rows=max_rows)


def test_messages_are_acknowledged_only_after_their_state_is_written() -> None:
    table, writer, acked = WriteBehindTable({}, partition_of), Writer(), []
    points = checkpointer(table, writer, acked)
    first, second = Event(Message(0, 10)), Event(Message(1, 11))
    table["a1"] = b"x"
    points.hold(first)
    table["b2"] = b"y"
    points.hold(second)
    assert acked == [] and points.held == 2

    writer.down = True
    assert asyncio.run(points.run()) is False
    assert acked == [] and points.held == 2 and table.pending == 2
    assert points.stats.failures == 1

    writer.down = False
    assert asyncio.run(points.run()) is True
    assert acked == [first, second] and points.held == 0
    assert [sorted(batch) for batch in writer.written] == [[(0, b"b2", b"y"), (1, b"a1", b"x")]]
    assert (points.stats.checkpoints, points.stats.rows, points.stats.messages) == (1, 2, 2)


def test_a_checkpoint_is_due_by_age_of_the_oldest_message_or_by_rows_waiting() -> None:
    table = WriteBehindTable({}, partition_of)
    by_rows = checkpointer(table, Writer(), [], interval_s=3600, max_rows=2)
    assert not by_rows.due()
    by_rows.hold(Event(Message(0, 1)))
    table["a1"] = b"x"
    assert not by_rows.due()
    table["b2"] = b"y"
    assert by_rows.due()

    by_age = checkpointer(WriteBehindTable({}, partition_of), Writer(), [], interval_s=0.01)
    assert not by_age.due()  # nothing held: nothing to acknowledge
    by_age.hold(Event(Message(0, 1)))
    asyncio.run(asyncio.sleep(0.02))
    assert by_age.due()


def test_revocation_writes_everything_and_leaves_revoked_messages_unacknowledged() -> None:
    table, writer, acked = WriteBehindTable({}, partition_of), Writer(), []
    points = checkpointer(table, writer, acked)
    kept, revoked = Event(Message(0, 5)), Event(Message(1, 7))
    table["a1"], table["b2"] = b"x", b"y"
    points.hold(kept)
    points.hold(revoked)

    dropped = asyncio.run(points.revoke(lambda partition: partition != 1))

    assert dropped == 1 and acked == [kept] and points.held == 0
    assert sorted(writer.written[0]) == [(0, b"b2", b"y"), (1, b"a1", b"x")]


def test_step_checkpoints_in_the_background_and_waits_only_when_a_second_one_is_due() -> None:
    release = asyncio.Event()

    @dataclass
    class SlowWriter(Writer):
        async def write(self, topic: str, records: list[ChangelogRecord]) -> int:
            await release.wait()
            return await Writer.write(self, topic, records)

    async def run() -> tuple[list[Event], bool, list[Event]]:
        table, writer, acked = WriteBehindTable({}, partition_of), SlowWriter(), []
        points = checkpointer(table, writer, acked, interval_s=3600, max_rows=2)
        first = Event(Message(0, 1))
        table["a1"], table["b2"] = b"x", b"y"
        points.hold(first)
        await points.step()  # due by rows: starts, does not wait for the broker
        await asyncio.sleep(0)
        acked_while_writing = list(acked)
        table["c3"] = b"z"  # applied while the first checkpoint is in flight
        points.hold(Event(Message(0, 2)))
        await points.step()  # one row waiting: goes on
        table["d4"] = b"w"
        second_step = asyncio.ensure_future(points.step())  # two waiting: back-pressure
        await asyncio.sleep(0.01)
        blocked = not second_step.done()
        release.set()
        await second_step
        return acked_while_writing, blocked, acked

    acked_while_writing, blocked, acked = asyncio.run(run())
    assert acked_while_writing == [] and blocked
    assert acked == [Event(Message(0, 1))]  # the second message waits for the next checkpoint


# -- deferred writes -------------------------------------------------------------


@dataclass
class Source:
    """Rows by key, counting the calls; fails for keys it has let go of."""

    rows: dict[str, bytes]
    calls: list[list[str]] = field(default_factory=list)

    def __call__(self, keys: list[str]) -> list[bytes]:
        self.calls.append(list(keys))
        return [self.rows[key] for key in keys]


def test_deferred_keys_are_read_from_the_source_and_serialised_once_per_take() -> None:
    data = {b"a1": b"old", b"c3": b"gone"}
    source = Source({"a1": b"A", "b2": b"B"})
    table = WriteBehindTable(data, partition_of)
    table.defer(["a1", "b2"], source)
    table.defer(["a1"], source)  # touched again before the checkpoint
    table["d4"] = b"plain"
    assert "b2" in table and table.deferred and table.pending == 3
    assert table["a1"] == b"A" and table.get("b2") == b"B" and source.calls == [["a1"], ["b2"]]
    source.rows["a1"] = b"A2"  # the caller changed again: the take sees its newest bytes
    source.calls.clear()

    records = table.take()

    assert source.calls == [["a1", "b2"]]  # all deferred keys in one call
    assert sorted(records, key=lambda r: r[1]) == [
        (1, b"a1", b"A2"), (0, b"b2", b"B"), (0, b"d4", b"plain"),
    ]
    # the source keeps what it gave; the data keeps the bytes written as such
    assert data == {b"a1": b"old", b"c3": b"gone", b"d4": b"plain"}
    assert not table.deferred and table.take() == []


def test_keys_the_source_loads_leave_the_data_and_come_back_when_it_lets_go() -> None:
    data = {b"a1": b"A", b"b2": b"B"}
    source = Source({})
    table = WriteBehindTable(data, partition_of)
    table.loaded(["a1", "zz9"])
    assert data == {b"b2": b"B"}
    table.defer(["a1"], source)
    table.evicted(["a1"], [b"A2"])  # its bytes now: in the data and for the checkpoint
    assert data == {b"a1": b"A2", b"b2": b"B"} and source.calls == []
    assert table.take() == [(1, b"a1", b"A2")]


def test_a_source_that_fails_leaves_the_overlay_as_it_was() -> None:
    source = Source({"a1": b"A"})
    table = WriteBehindTable({}, partition_of)
    table.defer(["a1", "b2"], source)  # b2: the source cannot give it
    with pytest.raises(KeyError):
        table.take()
    assert table.pending == 2 and table.deferred
    source.rows["b2"] = b"B"
    assert sorted(table.take(), key=lambda r: r[1]) == [(1, b"a1", b"A"), (0, b"b2", b"B")]


def test_discard_deletes_without_reading() -> None:
    source = Source({"a1": b"A", "b2": b"B"})
    data = {b"c3": b"kept"}
    table = WriteBehindTable(data, partition_of)
    table.defer(["a1", "b2"], source)
    table.discard(["a1", "c3", "e5"])  # e5: held by the source only (loaded, checkpointed)
    assert source.calls == [] and "a1" not in table and "c3" not in table and data == {}
    assert sorted(table.take(), key=lambda r: r[1]) == [
        (1, b"a1", None), (0, b"b2", b"B"), (1, b"c3", None), (1, b"e5", None),
    ]
    with pytest.raises(ValueError, match="one row source"):
        table.defer(["a1"], Source({}))


def test_a_table_that_cannot_give_its_rows_stops_checkpoints_and_acknowledges_nothing() -> None:
    table, writer, acked = WriteBehindTable({}, partition_of), Writer(), []
    points = checkpointer(table, writer, acked)
    table.defer(["a1"], Source({}))
    points.hold(Event(Message(1, 3)))

    assert asyncio.run(points.run()) is False
    assert isinstance(points.broken, KeyError)
    assert acked == [] and writer.written == [] and points.held == 1
    assert asyncio.run(points.run()) is False and writer.written == []  # for good


def test_store_dict_is_the_memory_store_s_own_dict() -> None:
    class Store(dict):  # a mapping wrapper around a dict, as Faust's memory store is
        def __init__(self) -> None:
            super().__init__()
            self.data: dict[bytes, bytes] = {}

    @dataclass
    class Table:
        data: object

    store = Store()
    assert store_dict(Table(store)) is store.data
    plain: dict[bytes, bytes] = {}
    assert store_dict(Table(plain)) is plain
