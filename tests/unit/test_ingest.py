"""Ingest routing and dead-letter records (pure logic)."""

from __future__ import annotations

import base64
import io
from dataclasses import fields

import numpy as np
import orjson
import polars as pl
import pytest

from contracts.by_caller import RoutedBatch, decode_routed, encode_routed
from contracts.number_keys import SERVICE_TAG, number_texts
from streams.pipeline.deadletter import SourcePosition
from streams.pipeline.ingest import RawMessage, ingest_cdrs, ingest_complaints, partition_for_number
from tests.unit.test_cdr_arrow import ARROW, EPOCH_TIMES
from tests.unit.test_cdr_contract import good

OPTIONS = dict(partitions=4, default_region="CN", max_message_bytes=1 << 20,
               max_original_bytes=64, now_ms=1)


def raw(messages: list[bytes]) -> list[RawMessage]:
    return [RawMessage(value, SourcePosition("cdr.raw", 0, offset))
            for offset, value in enumerate(messages)]


def test_calls_go_to_the_caller_partition_and_inbound_notes_to_the_callee_partition() -> None:
    callers = [f"1380013{n:04d}" for n in range(40)]
    batch = [good(cdr_id=str(i), caller=c, callee="13900139000") for i, c in enumerate(callers)]
    outcome = ingest_cdrs(raw([orjson.dumps(batch)]), **OPTIONS)
    assert outcome.valid == 40 and outcome.rejected == 0
    calls = inbound = 0
    for partition, routed in outcome.by_partition.items():
        # Numbers travel as their keys; the partition is the one of their text.
        callers_here = number_texts(routed.calls.caller)
        assert all(partition_for_number(c, 4) == partition for c in callers_here)
        assert all(partition_for_number(n, 4) == partition
                   for n in number_texts(routed.inbound.number))
        calls += len(routed.calls)
        inbound += len(routed.inbound)
    assert calls == inbound == 40
    assert len(outcome.by_partition) > 1
    callee_partition = outcome.by_partition[partition_for_number("+8613900139000", 4)]
    assert sorted(number_texts(callee_partition.inbound.from_number)) == sorted(
        f"+86{c}" for c in callers
    )


def test_rejections_carry_reason_position_and_truncated_original() -> None:
    outcome = ingest_cdrs(raw([orjson.dumps(good()), b"x" * 100]), **OPTIONS)
    assert outcome.valid == 1 and outcome.rejected == 1
    ((key, value),) = outcome.deadletters
    letter = orjson.loads(value)
    assert key == b"cdr.raw:0:1"
    assert letter["source_offset"] == 1 and letter["batch_index"] is None
    assert letter["truncated"] is True and letter["original_size"] == 100
    assert base64.b64decode(letter["original_b64"]) == b"x" * 64


def test_complaints_go_to_the_reported_number_partition() -> None:
    complaint = {"complaint_id": "k", "reporter": "13800138000", "reported": "95588",
                 "time_ms": 1530491066814}
    outcome = ingest_complaints(raw([orjson.dumps([complaint, {"bad": 1}])]), **OPTIONS)
    assert outcome.valid == 1 and outcome.rejected == 1
    ((partition, routed),) = outcome.by_partition.items()
    assert partition == partition_for_number("95588", 4)
    assert routed.complaints.number == ["95588"] and len(routed.calls) == 0


def columns_of(batch: RoutedBatch) -> dict[str, dict[str, list]]:
    """Every column of ``batch`` as a list (number keys may be lists or int64 arrays)."""
    return {
        part: {column: list(np.asarray(values).tolist()) if isinstance(values, np.ndarray)
               else list(values) for column, values in vars_of(getattr(batch, part)).items()}
        for part in ("calls", "inbound", "complaints", "appeals")
    }


def vars_of(part: object) -> dict[str, object]:
    return {field.name: getattr(part, field.name) for field in fields(part)}  # type: ignore[arg-type]


@pytest.mark.parametrize("copies", [1, 200])  # one CDR at a time, and by columns
def test_routed_batches_round_trip(copies: int) -> None:
    messages = [orjson.dumps([good(cdr_id=f"a{i}") for i in range(copies)]
                             + [good(cdr_id="b", disposition="BUSY", duration_s=0)])]
    for routed in ingest_cdrs(raw(messages), **OPTIONS).by_partition.values():
        encoded = encode_routed(routed)
        decoded = decode_routed(encoded)
        assert columns_of(decoded) == columns_of(routed)
        # Number keys travel as int64 buffers, and come back as arrays of them.
        message = orjson.loads(encoded)
        for part, column in (("calls", "caller"), ("calls", "callee"),
                             ("inbound", "number"), ("inbound", "from_number")):
            if part in message:
                assert isinstance(message[part][column], str)
                assert getattr(getattr(decoded, part), column).dtype == np.int64


def test_a_message_with_number_texts_is_read_as_it_was_written() -> None:
    # cdr.by_caller messages written before the numbers travelled as keys.
    old = orjson.dumps({
        "calls": {"cdr_id": ["a"], "caller": ["+8613800138000"], "callee": ["95588"],
                  "start_ms": [1], "duration_s": [0.0], "disposition": ["BUSY"],
                  "ring_s": [None]},
        "inbound": {"number": ["+8613900139000"], "from_number": ["+8613800138000"],
                    "time_ms": [1]},
    })
    batch = decode_routed(old)
    assert batch.calls.caller.tolist() == [8613800138000]
    assert batch.calls.callee.tolist() == [SERVICE_TAG + 95588]
    assert batch.inbound.number.tolist() == [8613900139000]
    assert batch.inbound.from_number.tolist() == [8613800138000]
    assert columns_of(decode_routed(encode_routed(batch))) == columns_of(batch)


def test_a_call_starting_past_the_allowed_lead_is_dead_lettered_on_every_path() -> None:
    """Beijing time sent as UTC is 8 h ahead: refused with the reason, the rest routed."""
    now_ms = 1_714_528_800_000  # 2024-05-01T02:00:00Z
    options = {**OPTIONS, "now_ms": now_ms, "max_future_s": 900}
    hours = 3_600_000

    def records(prefix: str, count: int) -> list[dict]:
        batch = [good(cdr_id=f"{prefix}{i}", start_time=now_ms - i * 1000) for i in range(count)]
        batch[1]["start_time"] = now_ms + 8 * hours  # ahead: refused
        batch[2]["start_time"] = now_ms + 899_000  # within the lead: kept
        return batch

    single = [orjson.dumps(records("s", 3)[1]), orjson.dumps(records("s", 3)[2])]
    columnar = orjson.dumps(records("c", 200))  # over the columnar path's size
    frame = pl.DataFrame(records("a", 3), schema=EPOCH_TIMES)
    buffer = io.BytesIO()
    frame.write_ipc_stream(buffer)
    messages = [*raw([*single, columnar]),
                RawMessage(buffer.getvalue(), SourcePosition("cdr.raw", 0, 3), ARROW)]
    outcome = ingest_cdrs(messages, **options)
    assert (outcome.valid, outcome.rejected) == (1 + 199 + 2, 3)
    reasons = [orjson.loads(letter)["reason"] for _, letter in outcome.deadletters]
    assert [reason.partition("start_time")[0] for reason in reasons] == ["", "[1] ", "[1] "]
    assert all("2024-05-01T10:00:00.000+00:00 is 27,900 s past the latest start accepted "
               "(2024-05-01T02:15:00.000+00:00" in reason for reason in reasons), reasons
    assert all("CALLGUARD_MAX_FUTURE_S" in reason for reason in reasons)
    routed = {cdr_id for batch in outcome.by_partition.values() for cdr_id in batch.calls.cdr_id}
    assert "s2" in routed and "c2" in routed and "a2" in routed
    assert not {"s1", "c1", "a1"} & routed
    # Without a lead (the contract alone), the same calls go through.
    assert ingest_cdrs(messages, **OPTIONS).rejected == 0


def test_a_reads_calls_are_routed_in_start_time_order_whatever_the_arrays() -> None:
    """Two arrays spanning the same minutes: their calls interleave by start, stably."""
    t0 = 1_714_528_800_000
    first = [good(cdr_id=f"a{i}", caller="13800138000", start_time=t0 + i * 60_000)
             for i in range(5)]
    second = [good(cdr_id=f"b{i}", caller="13800138000", start_time=t0 + i * 60_000 + 30_000)
              for i in range(5)]
    second.append(good(cdr_id="b-tie", caller="13800138000", start_time=t0 + 60_000))
    for messages in ([orjson.dumps(first), orjson.dumps(second)],  # one record at a time
                     [orjson.dumps(first * 40), orjson.dumps(second * 40)]):  # by columns
        outcome = ingest_cdrs(raw(messages), **OPTIONS)
        routed = outcome.by_partition[partition_for_number("+8613800138000", 4)]
        assert routed.calls.start_ms == sorted(routed.calls.start_ms)
        ids = list(dict.fromkeys(routed.calls.cdr_id))
        assert ids == ["a0", "b0", "a1", "b-tie", "b1", "a2", "b2", "a3", "b3", "a4", "b4"]
        position = routed.calls.cdr_id.index("b-tie")
        assert routed.calls.start_ms[position] == t0 + 60_000
        inbound = outcome.by_partition[partition_for_number("+861012345678", 4)].inbound
        assert inbound.time_ms == sorted(inbound.time_ms)
