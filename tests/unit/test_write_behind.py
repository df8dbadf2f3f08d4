"""WriteBehind: reads see held writes, a flush hands the latest value of each key on once."""

from __future__ import annotations

from collections import UserDict

from streams.write_behind import WriteBehind


class CountingTable(UserDict):
    """A dict that counts the writes and deletes it receives (each would be a changelog record)."""

    def __init__(self, *args):
        self.records = 0
        super().__init__(*args)
        self.records = 0

    def __setitem__(self, key, value):
        self.records += 1
        super().__setitem__(key, value)

    def __delitem__(self, key):
        self.records += 1
        super().__delitem__(key)


def test_writes_are_held_read_back_and_coalesced_on_flush():
    table = CountingTable({"a": b"0"})
    held = WriteBehind(table)
    for version in range(5):
        held["a"] = b"%d" % version
        held["b"] = b"x%d" % version
    assert held["a"] == b"4" and held.get("b") == b"x4"
    assert table == {"a": b"0"} and table.records == 0
    assert held.pending == 2
    assert held.flush() == 2
    assert table == {"a": b"4", "b": b"x4"} and table.records == 2
    assert held.pending == 0


def test_deletes_hide_the_key_until_flushed_then_delete_it():
    table = CountingTable({"a": b"1", "b": b"2"})
    held = WriteBehind(table)
    assert held.pop("a", None) == b"1"
    assert "a" not in held and held.get("a") is None
    assert sorted(held) == ["b"] and len(held) == 1
    held["c"] = b"3"
    del held["c"]
    assert held.pop("missing", None) is None
    held.flush()
    assert table == {"b": b"2"}


def test_flush_can_be_limited_to_some_keys():
    table = CountingTable()
    held = WriteBehind(table)
    held.update({"p0-a": b"1", "p1-b": b"2", "p0-c": b"3"})
    assert held.flush(only=lambda key: key.startswith("p0")) == 2
    assert table == {"p0-a": b"1", "p0-c": b"3"}
    assert held["p1-b"] == b"2" and held.pending == 1
