"""Input partitions kept together in time (streams.pipeline.alignment), as pure logic."""

from __future__ import annotations

import io
from types import SimpleNamespace

import polars as pl
import pytest

from streams.pipeline.alignment import BEHIND_WAIT_S, PartitionAligner, message_event_ms


def records(*timestamps: int, first_offset: int = 0) -> list[SimpleNamespace]:
    return [SimpleNamespace(timestamp=t, offset=first_offset + i) for i, t in enumerate(timestamps)]


def test_records_go_on_in_timestamp_order_across_partitions() -> None:
    aligner = PartitionAligner(idle_s=5.0)
    aligner.assign(["a", "b", "c"], now=0.0)
    # A sticky producer: each partition got one run of the day, read as a backlog.
    aligner.add({"a": records(10, 11, 40, 41), "b": records(20, 21), "c": records(30, 31)}, now=1)
    out = aligner.release(now=1.0)
    assert [r.timestamp for r in out.records] == [10, 11, 20, 21]  # up to b's last
    assert out.last_offsets == {"a": 1, "b": 1}
    assert out.to_pause == {"a", "c"}  # ahead of b, which must be read further first
    aligner.add({"b": records(35, first_offset=2)}, now=1.5)
    out = aligner.release(now=1.5)
    assert [r.timestamp for r in out.records] == [30, 31]  # up to c's last
    assert out.to_resume == {"c"} and out.to_pause == {"b"}


def test_an_empty_partition_behind_holds_the_others_until_the_idle_timeout() -> None:
    aligner = PartitionAligner(idle_s=2.0)
    aligner.assign(["a", "b"], now=0.0)
    aligner.add({"a": records(5, 6)}, now=0.5)
    assert aligner.release(now=0.5).records == []
    late = aligner.release(now=2.5)
    assert [r.timestamp for r in late.records] == [5, 6]


def test_a_partition_with_records_not_fetched_yet_holds_the_others_beyond_the_idle_timeout(
    caplog,
) -> None:
    # A backlog read with large fetches: b's broker holds records the consumer has not
    # handed out yet; going on without it after idle_s would make its calls late.
    aligner = PartitionAligner(idle_s=1.0)
    aligner.assign(["a", "b"], now=0.0)
    aligner.add({"a": records(5, 6)}, now=0.5)
    assert aligner.release(now=8.0, behind={"b"}).records == []
    assert aligner.release(now=BEHIND_WAIT_S - 0.1, behind={"b"}).records == []
    assert "b" not in caplog.text
    out = aligner.release(now=BEHIND_WAIT_S, behind={"b"})  # a fetch that never comes
    assert [r.timestamp for r in out.records] == [5, 6]
    assert "input partition b has records not fetched" in caplog.text
    # Caught up (not behind), the same wait is idle_s.
    caught_up = PartitionAligner(idle_s=1.0)
    caught_up.assign(["a", "b"], now=0.0)
    caught_up.add({"a": records(5, 6)}, now=0.5)
    assert [r.timestamp for r in caught_up.release(now=8.0).records] == [5, 6]


def test_a_partition_read_to_its_end_still_holds_the_others_while_it_may_get_more() -> None:
    # A producer still writing: b was read to its high watermark, but what comes next
    # to it may be older than a's records; it holds them back until it is silent for
    # idle_s.
    aligner = PartitionAligner(idle_s=1.0)
    aligner.assign(["a", "b"], now=0.0)
    aligner.add({"a": records(5, 60), "b": records(4)}, now=0.1)
    assert [r.timestamp for r in aligner.release(now=0.1).records] == [4]
    aligner.add({"b": records(50, first_offset=1)}, now=0.6)
    assert [r.timestamp for r in aligner.release(now=0.6).records] == [5, 50]
    assert aligner.release(now=1.2).records == []  # b gave records 0.6 s ago
    assert [r.timestamp for r in aligner.release(now=1.7).records] == [60]


def test_revoked_partitions_lose_their_held_records_and_late_fetches() -> None:
    aligner = PartitionAligner(idle_s=0.0)
    aligner.assign(["a", "b"], now=0.0)
    aligner.add({"a": records(1, 2), "b": records(9)}, now=0.0)
    aligner.revoke(["b"])
    aligner.add({"b": records(10, first_offset=1)}, now=0.1)  # a fetch still in flight
    out = aligner.release(now=0.1)
    assert [r.timestamp for r in out.records] == [1, 2]
    assert aligner.buffered() == 0 and aligner.fetched_to("b") is None


def test_a_record_out_of_order_or_without_time_goes_on_with_its_neighbours() -> None:
    aligner = PartitionAligner(idle_s=5.0, key=lambda r: r.timestamp)
    aligner.assign(["a", "b"], now=0.0)
    aligner.add({"a": records(10, None, 9, 12)}, now=0.0)  # unreadable, then an older one
    aligner.add({"b": records(11)}, now=0.0)
    out = aligner.release(now=0.0)
    assert [r.timestamp for r in out.records] == [10, None, 9, 11]
    assert out.last_offsets == {"a": 2, "b": 0} and out.to_pause == {"a"}
    assert aligner.positions() == {"a": 12, "b": 11}


def test_message_times_come_from_the_payload() -> None:
    def message(value: bytes, headers=()) -> SimpleNamespace:
        return SimpleNamespace(value=value, headers=headers, timestamp=1)

    day = 1_530_489_600_000
    assert message_event_ms(message(b'[{"start_time": 1530489600000}, {}]')) == day
    assert message_event_ms(message(b'{"time_ms": 1530489600000}')) == day
    assert message_event_ms(message(b'{"start_time": 4102444700000}'), now_ms=day) is None
    assert message_event_ms(message(b"\\xff")) is None
    # An array's first object is read alone; a brace inside its strings or a nested
    # object sends it to the whole decode, with the same answer.
    assert message_event_ms(message(b' [{"x": "}", "start_time": 1530489600000}, 7]')) == day
    assert message_event_ms(message(b'[{"n": {"time": 1}}, {"start_time": 1}]')) is None
    assert message_event_ms(message(b'[7, {"start_time": 1530489600000}]')) is None
    arrow = (("content-type", b"application/vnd.apache.arrow.stream"),)
    assert message_event_ms(message(b"", arrow)) is None
    # Arrow: the first row's start_time, whatever type the exporter gave the column.
    for column in (
        pl.Series("start_time", [day, day + 5], pl.Int64),
        pl.Series("start_time", [day, day + 5]).cast(pl.Datetime("ms", "UTC")),
        pl.Series("start_time", ["2018-07-02T08:00:00+08:00", "x"]),
    ):
        stream = io.BytesIO()
        pl.DataFrame([column, pl.Series("caller", ["a", "b"])]).write_ipc_stream(stream)
        assert message_event_ms(message(stream.getvalue(), arrow)) == day, column.dtype
    stream = io.BytesIO()
    pl.DataFrame({"caller": ["a"]}).write_ipc_stream(stream)
    assert message_event_ms(message(stream.getvalue(), arrow)) is None  # no start_time


def sized(*timestamps: int, size: int, first_offset: int = 0) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(timestamp=t, offset=first_offset + i, value=b"x" * size)
        for i, t in enumerate(timestamps)
    ]


def test_an_empty_partition_holds_back_only_what_is_newer_than_its_clock() -> None:
    # b gave records up to 30 and is read to its end: what it gives next counts from
    # 30 on, so a's records up to 30 go on now; the newer ones wait for b (idle_s).
    aligner = PartitionAligner(idle_s=1.0)
    aligner.assign(["a", "b"], now=0.0)
    aligner.add({"b": records(20, 30)}, now=0.1)
    aligner.add({"a": records(25, 29, 31)}, now=0.1)
    assert [r.timestamp for r in aligner.release(now=0.1).records] == [20, 25, 29, 30]
    assert aligner.release(now=0.5).records == []  # b may still give records from 30 on
    aligner.add({"b": records(40, first_offset=2)}, now=0.6)
    assert [r.timestamp for r in aligner.release(now=0.6).records] == [31]
    # A partition that has given nothing yet holds every other back (its first
    # records may be the oldest), until its wait is over.
    fresh = PartitionAligner(idle_s=1.0)
    fresh.assign(["a", "b"], now=0.0)
    fresh.add({"a": records(1)}, now=0.1)
    assert fresh.release(now=0.5).records == []
    assert [r.timestamp for r in fresh.release(now=1.0).records] == [1]


def test_partitions_ahead_go_on_within_the_lead() -> None:
    aligner = PartitionAligner(idle_s=5.0, lead_ms=10)
    aligner.assign(["a", "b"], now=0.0)
    aligner.add({"a": records(100, 105, 110, 112), "b": records(101)}, now=0.0)
    out = aligner.release(now=0.0)
    assert [r.timestamp for r in out.records] == [100, 101, 105, 110]  # up to b's 101 + 10
    assert out.last_offsets == {"a": 2, "b": 0}


def test_a_partition_ahead_is_paused_only_once_it_holds_hold_bytes() -> None:
    aligner = PartitionAligner(idle_s=5.0, hold_bytes=300)
    aligner.assign(["a", "b"], now=0.0)
    aligner.add({"a": sized(10, 20, 30, size=100), "b": sized(5, size=100)}, now=0.0)
    out = aligner.release(now=0.0)
    assert [r.timestamp for r in out.records] == [5]
    assert out.to_pause == {"a"}  # 300 bytes held beyond b's 5
    aligner.add({"b": sized(20, size=100, first_offset=1)}, now=0.1)
    out = aligner.release(now=0.1)
    assert [r.timestamp for r in out.records] == [10, 20, 20]
    assert out.to_resume == {"a"} and out.to_pause == set()  # 100 bytes held: read on
    aligner.add({"a": sized(40, size=100, first_offset=3)}, now=0.2)
    assert aligner.release(now=0.2).to_pause == set()  # 200 bytes
    aligner.add({"a": sized(50, size=100, first_offset=4)}, now=0.3)
    assert aligner.release(now=0.3).to_pause == {"a"}  # 300 bytes


def test_the_lead_must_stay_below_the_grace() -> None:
    from streams.settings import ConfigurationError, load_settings

    with pytest.raises(ConfigurationError, match="CALLGUARD_INGEST_LEAD_S.*below grace_s"):
        load_settings(ingest_lead_s=120, grace_s=120)
    assert load_settings(ingest_lead_s=119, grace_s=120).ingest_lead_ms == 119_000
    # By default a twelfth of the grace, so any grace works, even none.
    assert load_settings(grace_s=120).ingest_lead_ms == 10_000
    assert load_settings(grace_s=30).ingest_lead_ms == 2_500
    assert load_settings(grace_s=0).ingest_lead_ms == 0
    assert load_settings(grace_s=0, ingest_lead_s=0).ingest_lead_ms == 0


def test_partitions_that_fall_silent_release_the_rest_in_one_read() -> None:
    # The end of a stream: each partition holds its last record, and none gives more.
    # Once a partition's record has gone and it has been silent for idle_s, it holds
    # the others back no longer: the rest go on in the same release, in time order.
    aligner = PartitionAligner(idle_s=1.0)
    aligner.assign(["a", "b", "c"], now=0.0)
    aligner.add({"a": records(10), "b": records(20), "c": records(30)}, now=0.0)
    assert [r.timestamp for r in aligner.release(now=0.5).records] == [10]
    out = aligner.release(now=1.5)
    assert [r.timestamp for r in out.records] == [20, 30]
    assert out.last_offsets == {"b": 0, "c": 0}
