"""CallerBlock equals the per-caller path (FeatureStage + CallerState) message for message."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from contracts.by_caller import CdrColumns, RoutedBatch
from features.block import rows as block_rows
from features.block.engine import CallerBlock
from features.block.layout import NO_BUCKET
from features.config import FeatureConfig
from features.fingerprints import fingerprints
from features.vector import WINDOW_FEATURE_NAMES
from streams.stages.event_clock import OpenBuckets
from streams.stages.reference.feature_stage import FeatureStage
from tests.unit.test_block_support import (
    Message,
    apply_to_block,
    call_batch,
    random_messages,
    reference_record,
)
from tests.unit.test_features_support import T0

CONFIGS = {
    "default": FeatureConfig(),
    "tiny buffer": FeatureConfig(reorder_capacity=2, kmv_k=4, segment_bins=4),
    "long grace": FeatureConfig(grace_s=400, reorder_capacity=3, inbound_generation_s=3600),
    # Rows whose length is not a whole number of 4-byte words (5 sketch counts a slot).
    "odd sketch": FeatureConfig(kmv_k=5, segment_bins=3, reorder_capacity=5),
}


def assert_same_features(
    block: CallerBlock, table: dict[str, bytes], config: FeatureConfig
) -> None:
    assert set(table) == {
        block.number(row)
        for row in range(block.callers.capacity)
        if block._numbers[row] is not None
    }
    numbers = sorted(table)
    rows = np.array([block.row(number) for number in numbers])
    got = block.features(rows)
    for index, number in enumerate(numbers):
        record = reference_record(table, number, config)
        assert block.column("last_offset")[rows[index]] == record.last_offset, number
        assert block.column("watermark")[rows[index]] == record.state.watermark_ms, number
        np.testing.assert_array_equal(got[index], record.state.features(), err_msg=number)
    # A window one short hop earlier, where the ring still holds it.
    hop = config.short_hop_s * 1000
    ends = block.default_end_ms(rows) - hop
    for index, number in enumerate(numbers):
        state = reference_record(table, number, config).state
        try:
            expected = state.features(int(ends[index]))
        except ValueError:
            with pytest.raises(ValueError):
                block.features(rows[index : index + 1], ends[index : index + 1])
            continue
        np.testing.assert_array_equal(
            block.features(rows[index : index + 1], ends[index : index + 1])[0],
            expected,
            err_msg=number,
        )


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize(
    ("seed", "callers"),
    # Two callers: dozens of one caller's calls a message, resent ids among them
    # (the kernels' sorted paths for repeats and the reorder buffer).
    [(1, 25), (2, 25), (3, 25), (4, 2), (5, 2)],
)
def test_block_equals_the_per_caller_stage(name: str, seed: int, callers: int) -> None:
    config = CONFIGS[name]
    stage, table = FeatureStage(config), {}
    block = CallerBlock(config, capacity=4)  # grows while the test runs
    clock = OpenBuckets(config.short_hop_s * 1000, config.grace_s * 1000)
    for step, message in enumerate(random_messages(seed, n_callers=callers)):
        stats, _ = stage.apply(message.batch, message.offset, table)
        counts = apply_to_block(block, message, clock)
        for key in ("accepted", "duplicates", "replayed", "late_accepted", "late_dropped"):
            assert counts.get(key, 0) == getattr(stats, key), (step, key)
        assert counts.get("complaints", 0) == stats.complaints, step
        assert counts.get("inbound", 0) == stats.inbound, step
        if step % 7 == 6:
            assert_same_features(block, table, config)
    assert_same_features(block, table, config)


def fed_block(config: FeatureConfig, seed: int) -> tuple[CallerBlock, list]:
    block = CallerBlock(config, capacity=4)
    messages = random_messages(seed)
    for message in messages:
        apply_to_block(block, message)
    return block, messages


def live_rows(block: CallerBlock) -> np.ndarray:
    return np.array([block.row(number) for number in sorted(block.numbers())])


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_row_bytes_round_trip(name: str) -> None:
    config = CONFIGS[name]
    block, messages = fed_block(config, 5)
    copy = CallerBlock(config, capacity=2)
    for number in sorted(block.numbers()):
        row = block.row(number)
        assert row is not None
        restored = copy.load_row(number, block.row_bytes(row))
        assert copy.row_bytes(restored) == block.row_bytes(row)
    rows, copied = live_rows(block), live_rows(copy)
    np.testing.assert_array_equal(copy.features(copied), block.features(rows))
    # Both go on alike, replays of old offsets included.
    for message in random_messages(6)[:10]:
        message.offset += 100
        assert apply_to_block(copy, message) == apply_to_block(block, message)
    np.testing.assert_array_equal(copy.features(live_rows(copy)), block.features(live_rows(block)))


def test_row_bytes_refuse_another_config() -> None:
    block, _ = fed_block(FeatureConfig(), 1)
    data = block.row_bytes(int(live_rows(block)[0]))
    with pytest.raises(ValueError, match="another FeatureConfig"):
        CallerBlock(FeatureConfig(kmv_k=32)).load_row("+8613900000000", data)
    with pytest.raises(ValueError):
        CallerBlock(FeatureConfig()).load_row("+8613900000000", data + b"\0")


def unpacked_row_bytes(block: CallerBlock, row: int) -> bytes:
    """A row as version 2 wrote it: the body as is (the layout of features.block.rows)."""
    columns, slots = block.callers.columns, block.slots.columns
    held = columns["bucket"][row]
    used = held != NO_BUCKET
    counts = {n: int(columns[n][row]) for n in ("pending_n", "recent_n", "held_n")}
    inbound = columns["inbound"][row]
    header = struct.pack(
        "<BIqqqqBBBBHB", 2, block.fingerprint,
        *(int(columns[n][row]) for n in ("watermark", "last_offset", "last_emitted",
                                         "inbound_generation")),
        counts["pending_n"], counts["recent_n"], int(columns["recent_next"][row]),
        bool(inbound.any()), int((used.astype(np.int64) << np.arange(len(used))).sum()),
        counts["held_n"],
    )
    records = columns["slot"][row][used]
    parts = [
        header,
        held[used].tobytes(),
        columns["pending_ms"][row, : counts["pending_n"]].tobytes(),
        columns["pending_key"][row, : counts["pending_n"]].tobytes(),
        columns["recent"][row, : counts["recent_n"]].tobytes(),
        columns["held_bucket"][row, : counts["held_n"]].tobytes(),
        columns["held_count"][row, : counts["held_n"]].tobytes(),
        *(slots[n][records].tobytes() for n in ("counters", "kmv_hash", "kmv_count",
                                                 "segment_hist")),
    ]
    if inbound.any():
        parts.append(inbound.tobytes())
    return b"".join(parts)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_rows_are_packed_by_words_and_version_2_rows_still_load(name: str) -> None:
    config = CONFIGS[name]
    block, _ = fed_block(config, 5)
    rows = live_rows(block)
    assert block.column("inbox_n")[rows].any()  # version 4 rows hold an inbox
    block.column("inbox_n")[rows] = 0  # as versions 2 and 3 had none
    packed = block.rows_bytes(rows)
    unpacked = [unpacked_row_bytes(block, int(row)) for row in rows]
    assert packed[0][0] == 4 and unpacked[0][0] == 2
    assert sum(map(len, packed)) < 0.6 * sum(map(len, unpacked))  # mostly zero words
    for number, row, old in zip(block.numbers_of(rows), rows.tolist(), unpacked, strict=True):
        copy = CallerBlock(config)
        restored = copy.load_row(number, old)
        assert copy.row_bytes(restored) == block.row_bytes(row), number
    # Version 3 rows: version 4's layout without an inbox.
    version_3 = [bytes([3]) + data[1:] for data in packed]
    copy = CallerBlock(config)
    assert copy.rows_bytes(copy.load_rows(block.numbers_of(rows), version_3)) == packed


def test_rows_bytes_do_not_depend_on_what_the_buffer_held(monkeypatch: pytest.MonkeyPatch) -> None:
    block, _ = fed_block(CONFIGS["odd sketch"], 5)
    rows = live_rows(block)
    expected = [block.row_bytes(int(row)) for row in rows]
    monkeypatch.setattr(block_rows, "_buffer", lambda size: np.full(size, 0xAB, np.uint8))
    assert block.rows_bytes(rows) == expected


def test_rows_bytes_in_passes_keep_the_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    block, _ = fed_block(FeatureConfig(), 5)
    rows = live_rows(block)[::-1]
    expected = [block.row_bytes(int(row)) for row in rows]
    monkeypatch.setattr(block_rows, "_ROWS_AT_ONCE", 7)
    assert len(rows) > 3 * 7 and len({len(data) for data in expected}) > 3
    assert block.rows_bytes(rows) == expected


def test_a_packed_row_cut_short_or_padded_is_refused() -> None:
    block, _ = fed_block(FeatureConfig(), 2)
    data = block.row_bytes(int(live_rows(block)[0]))
    for broken in (data[:-4], data + bytes(4), data[:50]):
        with pytest.raises(ValueError):
            CallerBlock(FeatureConfig()).load_row("+8613900000000", broken)


@pytest.mark.parametrize("hours", [0.5, 2, 30, 80])
def test_expire_equals_caller_state_expire(hours: float) -> None:
    config = FeatureConfig()
    stage, table = FeatureStage(config), {}
    block = CallerBlock(config, capacity=4)
    clock = OpenBuckets(config.short_hop_s * 1000, config.grace_s * 1000)  # as the stage's
    for message in random_messages(4):
        stage.apply(message.batch, message.offset, table)
        apply_to_block(block, message, clock)
    now = max(int(block.column("watermark")[row]) for row in live_rows(block))
    now += int(hours * 3600_000)
    states = {number: reference_record(table, number, config).state for number in table}
    empty = {number for number, state in states.items() if state.expire(now)}
    slots_before = block.slots.used
    assert set(block.expire(now)) == empty
    assert block.slots.used <= slots_before
    assert set(block.numbers()) == set(table) - empty
    for number in block.numbers():
        row = block.row(number)
        assert row is not None
        np.testing.assert_array_equal(block.features(np.array([row]))[0], states[number].features())


def test_recent_ids_remember_the_last_32() -> None:
    from features.batch import CallBatch

    config = FeatureConfig()
    block = CallerBlock(config)

    def send(ids: list[int], offset: int) -> dict[str, int]:
        n = len(ids)
        calls = CallBatch.from_arrays(
            config,
            start_ms=np.full(n, 1_709_251_200_000) + np.arange(n),
            callee=np.full(n, 8613800000000, np.uint64),
            duration_s=np.zeros(n),
            answered=np.zeros(n, bool),
            ring_s=np.full(n, np.nan),
        )
        return block.update(["+8613900000001"] * n, calls, np.array(ids, np.uint32), offset).counts

    assert send(list(range(40)), 0)["accepted"] == 40
    counts = send([0, 7, 8, 39, 39], 1)  # 0..7 fell out of the ring; 39 twice in one message
    assert (counts["accepted"], counts["duplicates"]) == (2, 3)
    assert send([1], 1)["replayed"] == 1


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("seed", [4, 5])
def test_rows_loaded_at_once_equal_rows_loaded_one_by_one(name: str, seed: int) -> None:
    config = CONFIGS[name]
    block, _ = fed_block(config, seed)
    numbers = sorted(block.numbers())
    datas = block.rows_bytes(live_rows(block))
    one, many = CallerBlock(config, capacity=2), CallerBlock(config, capacity=2)
    for number, data in zip(numbers, datas, strict=True):
        one.load_row(number, data)
    rows = many.load_rows(numbers, datas)
    assert [many.row(number) for number in numbers] == rows.tolist()
    assert many.rows_bytes(rows) == datas == one.rows_bytes(live_rows(one))
    np.testing.assert_array_equal(many.features(rows), one.features(live_rows(one)))
    assert many.slots.used == one.slots.used == block.slots.used
    with pytest.raises(ValueError, match="distinct numbers"):
        many.load_rows(numbers[:1], datas[:1])
    # Version 2 rows among them (no inbox then): loaded one by one, to the same state.
    live = live_rows(block)
    block.column("inbox_n")[live[:2]] = 0
    datas = block.rows_bytes(live)
    old = [unpacked_row_bytes(block, row) for row in live.tolist()]
    mixed = CallerBlock(config, capacity=2)
    rows = mixed.load_rows(numbers, [*old[:2], *datas[2:]])
    assert mixed.rows_bytes(rows) == datas


def test_a_bad_row_among_many_is_named_by_the_one_by_one_load() -> None:
    config = FeatureConfig()
    block, _ = fed_block(config, 4)
    numbers = sorted(block.numbers())
    datas = block.rows_bytes(live_rows(block))
    datas[3] = datas[3][:-4]  # one word short
    fresh = CallerBlock(config)
    with pytest.raises(ValueError, match="its header says"):
        fresh.load_rows(numbers, datas)
    assert len(fresh) == 3  # the rows before it loaded; nothing after it
    one_by_one = CallerBlock(config)
    for number, data in zip(numbers[:3], datas[:3], strict=True):
        one_by_one.load_row(number, data)
    assert fresh.slots.used == one_by_one.slots.used  # the failed batch kept no record
    held_n = block_rows._HEADER_FIELDS.fields["held_n"][1]  # type: ignore[index]
    datas[3] = datas[4][:held_n] + b"\xff" + datas[4][held_n + 1 :]  # 255 held complaints
    with pytest.raises(ValueError):
        CallerBlock(config).load_rows(numbers, datas)


def test_pools_grow_and_reuse_freed_records() -> None:
    config = FeatureConfig()
    block, _ = fed_block(config, 2)
    assert block.callers.capacity >= len(block) > 4
    used = block.slots.used
    assert used > 0
    removed = block.expire(10**15)
    assert len(block) == 0 and block.slots.used == 0 and len(removed) > 0
    block2, _ = fed_block(config, 2)
    for message in random_messages(2):
        apply_to_block(block, message)
    assert block.slots.used == block2.slots.used
    np.testing.assert_array_equal(
        block.features(live_rows(block)), block2.features(live_rows(block2))
    )


@pytest.mark.parametrize("seed", [2, 3])
def test_compacting_after_callers_leave_changes_no_caller(seed: int) -> None:
    config = FeatureConfig()
    messages = random_messages(seed, 60)
    compacted, kept = CallerBlock(config, capacity=4), CallerBlock(config, capacity=4)
    for step, message in enumerate(messages):
        apply_to_block(compacted, message)
        apply_to_block(kept, message)
        if step % 10 == 9:  # most callers leave, the rest move to the front
            leaving = sorted(compacted.numbers())[::3] + sorted(compacted.numbers())[1::3]
            for block in (compacted, kept):
                block.remove(np.array([block.row(number) for number in leaving]))
            before = (compacted.callers.capacity, compacted.slots.capacity)
            assert compacted.compact(slack=0.0, floor=0)
            assert (compacted.callers.capacity, compacted.slots.capacity) < before
            assert compacted.slots.used == kept.slots.used
        numbers = sorted(kept.numbers())
        assert sorted(compacted.numbers()) == numbers
        rows = compacted.rows_of(numbers, create=False)
        expected = kept.rows_of(numbers, create=False)
        assert compacted.rows_bytes(rows) == kept.rows_bytes(expected), step
        np.testing.assert_array_equal(compacted.features(rows), kept.features(expected))
    assert not compacted.compact()  # nothing to give back: left as it is


def test_one_cdr_messages_coalesced_equal_one_update_each() -> None:
    config = FeatureConfig(reorder_capacity=255)  # no early chaining: batching cannot matter
    messages = [m for m in random_messages(8) if len(m.batch.calls)]
    calls = CdrColumns()
    for message in messages:
        for column in CdrColumns.__slots__:
            getattr(calls, column).extend(getattr(message.batch.calls, column))
    singles = []
    for index in range(len(calls)):
        single = CdrColumns()
        for column in CdrColumns.__slots__:
            getattr(single, column).append(getattr(calls, column)[index])
        singles.append(Message(RoutedBatch(calls=single), index))
    one_by_one, coalesced = CallerBlock(config), CallerBlock(config)
    for single in singles:
        apply_to_block(one_by_one, single)
    for start in range(0, len(singles), 50):
        chunk = singles[start : start + 50]
        merged = calls_of(chunk)
        counts = coalesced.update(
            merged.caller,
            call_batch(merged, config),
            fingerprints(merged.cdr_id),
            np.array([message.offset for message in chunk]),
        )
        assert counts.counts["replayed"] == 0
    # A restarted worker reads the last 120 messages again, in both shapes.
    for single in singles[-120:]:
        assert apply_to_block(one_by_one, single)["replayed"] == 1
    merged = calls_of(singles[-120:])
    again = coalesced.update(
        merged.caller,
        call_batch(merged, config),
        fingerprints(merged.cdr_id),
        np.array([message.offset for message in singles[-120:]]),
    )
    assert again.counts["replayed"] == 120
    np.testing.assert_array_equal(
        coalesced.features(live_rows(coalesced)), one_by_one.features(live_rows(one_by_one))
    )
    for number in coalesced.numbers():
        a, b = coalesced.row(number), one_by_one.row(number)
        assert coalesced.column("last_offset")[a] == one_by_one.column("last_offset")[b]


def calls_of(messages: list[Message]) -> CdrColumns:
    merged = CdrColumns()
    for message in messages:
        for column in CdrColumns.__slots__:
            getattr(merged, column).extend(getattr(message.batch.calls, column))
    return merged


def test_rows_again_gives_what_rows_of_gives() -> None:
    block = CallerBlock(FeatureConfig())
    block.rows_of(["+8613800000001", "+8613800000002"], create=True)
    numbers = ["+8613800000002", "+8613800000009", "+8613800000001", "+8613800000009"]
    looked_up = block.rows_of(numbers, create=False)
    assert looked_up.tolist()[1::2] == [-1, -1]
    block.rows_of(["+8613800000007"], create=True)  # made in between: found again, not made twice
    numbers[3] = "+8613800000007"
    made = block.rows_again(numbers, np.where(np.arange(4) == 3, -1, looked_up), create=True)
    assert made.tolist() == block.rows_of(numbers, create=False).tolist()
    assert len(block) == 4 and len(set(made.tolist())) == 4


def test_calls_at_the_same_time_chain_in_callee_order_as_the_per_caller_stage() -> None:
    # A dialler starting several calls in the same millisecond: the chain (and with
    # it the sequential score and the gaps) takes them by callee, however they
    # arrive, over messages and through the reorder buffer.
    config = CONFIGS["tiny buffer"]
    stage, table, block = FeatureStage(config), {}, CallerBlock(config)
    caller, sent = "+8613900000001", 0
    for offset in range(12):
        calls = CdrColumns()
        at = T0 + offset * 40_000
        for callee in (500, 2, 1000, 501, 3, 1001, 4)[offset % 3 :]:
            for column, value in zip(
                ("cdr_id", "caller", "callee", "start_ms", "duration_s", "disposition",
                 "ring_s"),
                (f"id{sent}", caller, f"+86138000{callee:05d}", at + (offset % 2) * 30_000,
                 5.0, "ANSWERED", None),
                strict=True,
            ):
                getattr(calls, column).append(value)
            sent += 1
        message = Message(RoutedBatch(calls=calls), offset)
        stage.apply(message.batch, message.offset, table)
        apply_to_block(block, message)
    assert_same_features(block, table, config)
    features = block.features(np.array([block.row(caller)]))[0]
    assert features[WINDOW_FEATURE_NAMES.index("long_sequential_score")] > 0
