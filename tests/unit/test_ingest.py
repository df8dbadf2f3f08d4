"""Ingest routing and dead-letter records (pure logic)."""

from __future__ import annotations

import base64

import orjson

from contracts.by_caller import decode_routed, encode_routed
from streams.deadletter import SourcePosition
from streams.ingest import RawMessage, ingest_cdrs, ingest_complaints, partition_for_number
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
        assert all(partition_for_number(c, 4) == partition for c in routed.calls.caller)
        assert all(partition_for_number(n, 4) == partition for n in routed.inbound.number)
        calls += len(routed.calls)
        inbound += len(routed.inbound)
    assert calls == inbound == 40
    assert len(outcome.by_partition) > 1
    callee_partition = outcome.by_partition[partition_for_number("+8613900139000", 4)]
    assert sorted(callee_partition.inbound.from_number) == sorted(f"+86{c}" for c in callers)


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


def test_routed_batches_round_trip() -> None:
    messages = [orjson.dumps([good(cdr_id="a"), good(cdr_id="b", disposition="BUSY",
                                                     duration_s=0)])]
    for routed in ingest_cdrs(raw(messages), **OPTIONS).by_partition.values():
        assert decode_routed(encode_routed(routed)) == routed
