"""Ingest routing and dead-letter records (pure logic)."""

from __future__ import annotations

import base64

import orjson

from streams.deadletter import SourcePosition
from streams.ingest import RawMessage, ingest, partition_for_caller
from streams.wire import decode_columns, encode_columns
from tests.unit.test_cdr_contract import good


def run(messages: list[bytes], **options):
    raw = [RawMessage(value, SourcePosition("cdr.raw", 0, offset)) for offset, value in
           enumerate(messages)]
    settings = dict(partitions=4, default_region="CN", max_message_bytes=1 << 20,
                    max_original_bytes=64, now_ms=1)
    settings.update(options)
    return ingest(raw, **settings)


def test_every_caller_lands_on_its_stable_partition() -> None:
    callers = [f"1380013{n:04d}" for n in range(40)]
    batch = [good(cdr_id=str(i), caller=c) for i, c in enumerate(callers)]
    outcome = run([orjson.dumps(batch)])
    assert outcome.valid == 40 and outcome.rejected == 0
    seen = 0
    for partition, columns in outcome.by_partition.items():
        assert all(partition_for_caller(c, 4) == partition for c in columns.caller)
        seen += len(columns)
    assert seen == 40
    assert len(outcome.by_partition) > 1


def test_rejections_carry_reason_position_and_truncated_original() -> None:
    outcome = run([orjson.dumps(good()), b"x" * 100])
    assert outcome.valid == 1 and outcome.rejected == 1
    ((key, value),) = outcome.deadletters
    letter = orjson.loads(value)
    assert key == b"cdr.raw:0:1"
    assert letter["source_offset"] == 1 and letter["batch_index"] is None
    assert letter["truncated"] is True and letter["original_size"] == 100
    assert base64.b64decode(letter["original_b64"]) == b"x" * 64


def test_columns_round_trip() -> None:
    outcome = run([orjson.dumps([good(cdr_id="a"), good(cdr_id="b", disposition="BUSY",
                                                        duration_s=0)])])
    (columns,) = outcome.by_partition.values()
    assert decode_columns(encode_columns(columns)) == columns
    assert columns.disposition == ["ANSWERED", "BUSY"]
