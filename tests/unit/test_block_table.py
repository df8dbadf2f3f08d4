"""The table behind the block stage: the worker's as it is, a plain mapping written through."""

from __future__ import annotations

from streams.state.block_table import EveryRowTable, block_table
from streams.state.write_behind import WriteBehindTable


def test_the_workers_table_is_its_own_block_table() -> None:
    table = WriteBehindTable({}, lambda keys: [0] * len(keys))
    assert block_table(table) is table
    assert block_table(table).one_copy


def test_a_plain_mapping_keeps_every_row_and_is_written_at_once() -> None:
    rows = {"a": b"1", "b": b"2"}
    table = block_table(rows)
    assert isinstance(table, EveryRowTable) and not table.one_copy
    table.loaded(["a"])  # the mapping keeps its copy
    assert table.get("a") == b"1" and table.get("z") is None
    table.defer(["c", "a"], lambda keys: [key.encode() * 2 for key in keys])
    assert rows == {"a": b"aa", "b": b"2", "c": b"cc"}
    assert table.held_as_bytes() == ([b"a", b"b", b"c"], [b"aa", b"2", b"cc"])
    table.discard(["b", "missing"])
    assert rows == {"a": b"aa", "c": b"cc"}
    assert table.evicted(["a"], [b"aa"]) == [b"a"] and rows["a"] == b"aa"
