"""The table behind the block stage: the worker's defers to the block, a mapping is written."""

from __future__ import annotations

from streams.state.block_table import EveryRowTable, OneCopyTable, block_table
from streams.state.write_behind import WriteBehindTable


def _source(keys: list[str]) -> list[bytes]:
    return [key.encode() * 3 for key in keys]


def test_the_workers_table_defers_its_writes_to_the_source() -> None:
    data = {b"a": b"1"}
    table = WriteBehindTable(data, lambda keys: [0] * len(keys))
    seen = block_table(table, _source)
    assert isinstance(seen, OneCopyTable) and seen.one_copy
    seen.loaded(["a"])  # one copy: the block's
    assert data == {} and seen.get("a") is None
    seen.write(["a"], lambda: [b"never asked"])
    assert table["a"] == b"aaa"  # asked of the source when read
    assert seen.evicted(["a"], [b"aaa"]) == [b"a"] and seen.held_as_bytes() == ([b"a"], [b"aaa"])
    seen.discard(["a"])
    assert "a" not in table and [(key, value) for _, key, value in table.take()] == [(b"a", None)]


def test_a_plain_mapping_keeps_every_row_and_is_written_at_once() -> None:
    rows = {"a": b"1", "b": b"2"}
    table = block_table(rows, _source)
    assert isinstance(table, EveryRowTable) and not table.one_copy
    table.loaded(["a"])  # the mapping keeps its copy
    assert table.get("a") == b"1" and table.get("z") is None
    table.write(["c", "a"], lambda: [b"cc", b"aa"])
    assert rows == {"a": b"aa", "b": b"2", "c": b"cc"}
    assert table.held_as_bytes() == ([b"a", b"b", b"c"], [b"aa", b"2", b"cc"])
    table.discard(["b", "missing"])
    assert rows == {"a": b"aa", "c": b"cc"}
    assert table.evicted(["a"], [b"aa"]) == [b"a"] and rows["a"] == b"aa"
