"""BlockFeatureStage keeps FeatureStage's contract: same scenarios, same results, restarts.

Also the complaint rule both states share: a complaint dated after the
caller's watermark bucket (or about a number with no calls) is held, not
crashed on, and the stream then agrees with the offline path.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import polars as pl
import pytest

from contracts.by_caller import ComplaintColumns, RoutedBatch, with_number_texts
from contracts.number_keys import as_keys, number_text
from features.batch import CallBatch
from features.block.engine import CallerBlock
from features.config import HELD_COMPLAINTS, FeatureConfig
from features.emission import EmissionPolicy
from features.fingerprints import RECENT_IDS
from features.offline import compute_features
from features.reference.caller_record import CallerRecord
from features.reference.state import CallerState
from features.vector import FEATURE_NAMES, WINDOW_FEATURE_NAMES
from streams.pipeline.ingest import partition_for_number
from streams.stages.block_stage import BlockFeatureStage, StateLost
from streams.stages.caller_features import Emission
from streams.stages.event_clock import OpenBuckets
from streams.stages.reference.feature_stage import FeatureStage
from streams.stages.stage_stats import StageStats
from streams.state.write_behind import WriteBehindTable
from tests.unit.test_block_support import Message, random_messages
from tests.unit.test_feature_stage import CALLER, CONFIG, T0, cdr, routed


def calls_of(records: list[dict]) -> RoutedBatch:
    """``records`` routed, without their callees' inbound notes.

    Every called number keeps state of its own (its inbound filter); the
    tests of callers' lifecycle leave those rows out to count callers only.
    """
    return RoutedBatch(calls=routed(records).calls)

STAGES = [FeatureStage, BlockFeatureStage]
Stage = FeatureStage | BlockFeatureStage


def features_of(stage: Stage, table: dict, number: str = CALLER) -> dict[str, float]:
    """A caller's features as the stage's table holds them."""
    if isinstance(stage, FeatureStage):
        return CallerRecord.from_bytes(table[number], stage.config).state.feature_dict()
    block = CallerBlock(stage.config)
    row = block.load_row(number, table[number])
    return dict(zip(WINDOW_FEATURE_NAMES, block.features(np.array([row]))[0].tolist(), strict=True))


# -- the scenarios of test_feature_stage, for both stages ------------------------


@pytest.mark.parametrize("stage_type", STAGES)
def test_calls_are_counted_once_despite_resends_and_replays(stage_type: type[Stage]) -> None:
    stage, table = stage_type(CONFIG), {}
    stats, _ = stage.apply(routed([cdr(i) for i in range(10)]), 0, table)
    assert stats.accepted == 10 and features_of(stage, table)["long_call_volume"] == 10
    stats, _ = stage.apply(routed([cdr(3), cdr(4), cdr(5), cdr(10), cdr(11)]), 1, table)
    assert (stats.duplicates, stats.accepted) == (3, 2)
    stats, _ = stage.apply(routed([cdr(3), cdr(4), cdr(5), cdr(10), cdr(11)]), 1, table)
    assert stats.replayed == 5 and features_of(stage, table)["long_call_volume"] == 12


@pytest.mark.parametrize("stage_type", STAGES)
def test_duplicates_inside_one_message(stage_type: type[Stage]) -> None:
    stats, _ = stage_type(CONFIG).apply(routed([cdr(1), cdr(1), cdr(2)]), 0, {})
    assert (stats.accepted, stats.duplicates) == (2, 1)


@pytest.mark.parametrize("stage_type", STAGES)
def test_late_calls_beyond_grace_are_dropped_and_counted(stage_type: type[Stage]) -> None:
    stage, table = stage_type(CONFIG), {}
    stage.apply(routed([cdr(0, at=T0 + 3_600_000)]), 0, table)
    late_in_grace = cdr(1, at=T0 + 3_600_000 - 60_000)
    too_late = cdr(2, at=T0 + 3_600_000 - 600_000)
    stats, _ = stage.apply(routed([late_in_grace, too_late]), 1, table)
    assert (stats.late_accepted, stats.late_dropped) == (1, 1)
    assert features_of(stage, table)["long_call_volume"] == 2


@pytest.mark.parametrize("stage_type", STAGES)
def test_a_long_call_written_after_later_short_ones_is_not_late(stage_type: type[Stage]) -> None:
    """A trunk's 10-minute call ends (and is written) after calls that started later."""
    stage, table = stage_type(CONFIG), {}
    start = T0 + 3_600_000
    shorter = [cdr(i, at=start + i * 60_000) for i in range(1, 10)]  # start 1-9 min later
    stage.apply(routed(shorter), 0, table)
    long_call = {**cdr(0, at=start), "duration_s": 600, "disposition": "ANSWERED"}
    short_call = cdr(10, at=start)  # a short call started then ended 9 min before the watermark
    stats, _ = stage.apply(routed([long_call, short_call]), 1, table)
    assert (stats.accepted, stats.late_accepted, stats.late_dropped) == (1, 1, 1)
    features = features_of(stage, table)
    assert features["long_call_volume"] == 10
    assert features["long_answer_rate"] == pytest.approx(0.1)


def _steady_calls(n: int = 60) -> list[dict]:
    """20 calls an hour to numbers all over the population, mostly unanswered."""
    return [
        cdr(i, callee=f"+86{130 + i % 60}{i * 7919 % 10_000_000:08d}", at=T0 + i * 180_000)
        for i in range(n)
    ]


def _emitted(stage: Stage, messages: list[list[dict]]) -> Emission:
    table: dict = {}
    out = Emission()
    for offset, records in enumerate(messages):
        _, emission = stage.apply(routed(records), offset, table)
        out.numbers += emission.numbers
        out.window_end_ms += emission.window_end_ms
        out.rows += emission.rows
    return out


@pytest.mark.parametrize("stage_type", STAGES)
def test_a_burst_is_emitted_at_its_bucket_end_once_the_watermark_passes_it(
    stage_type: type[Stage],
) -> None:
    hop_ms, grace_ms = CONFIG.short_hop_s * 1000, CONFIG.grace_s * 1000
    stage, table = stage_type(CONFIG, EmissionPolicy(min_calls=5)), {}
    _, emission = stage.apply(routed([cdr(i) for i in range(4)]), 0, table)
    assert len(emission) == 0
    _, emission = stage.apply(routed([cdr(4)]), 1, table)  # 5 calls: its bucket still open
    assert len(emission) == 0
    other = "+8613900000001"
    _, emission = stage.apply(routed([cdr(9, caller=other, at=T0 + hop_ms + grace_ms)]), 2, table)
    assert emission.numbers == [CALLER] and emission.window_end_ms == [T0 + hop_ms]
    assert emission.matrix()[0, FEATURE_NAMES.index("short_call_volume")] == 5


@pytest.mark.parametrize("stage_type", STAGES)
def test_a_steady_caller_that_never_bursts_is_scored_at_each_bucket_it_calls_in(
    stage_type: type[Stage],
) -> None:
    # Never 5 calls in 10 minutes, so only the long-window rule can reach it.
    policy = EmissionPolicy(min_calls=5, min_long_calls=10)
    calls = _steady_calls()
    got = _emitted(stage_type(CONFIG, policy), [[record] for record in calls])
    assert set(got.numbers) == {CALLER}
    assert all(row[FEATURE_NAMES.index("short_call_volume")] < 5 for row in got.rows)
    hop_ms = CONFIG.short_hop_s * 1000
    buckets = [record["start_time"] // hop_ms for record in calls]
    # Once it has 10 calls in the long window, every bucket it called in, once, at its
    # end (the long window's last, six-hour bucket also holds the calls that arrived
    # before the bucket closed); the last bucket is still open: nothing passed it.
    assert got.window_end_ms[0] <= (buckets[9] + 1) * hop_ms
    expected = sorted(
        {(b + 1) * hop_ms for b in buckets if (b + 1) * hop_ms >= got.window_end_ms[0]}
        - {(buckets[-1] + 1) * hop_ms}
    )
    assert got.window_end_ms == expected
    long_volume = [row[FEATURE_NAMES.index("long_call_volume")] for row in got.rows]
    assert long_volume[0] >= 10 and long_volume == sorted(long_volume)


@pytest.mark.parametrize("stage_type", STAGES)
def test_emission_is_the_same_whatever_the_batching(stage_type: type[Stage]) -> None:
    calls = _steady_calls() + [
        cdr(100 + i, caller="+8613700000007", at=T0 + 2_000_000 + i * 20_000) for i in range(40)
    ]
    calls.sort(key=lambda record: record["start_time"])
    one_by_one = _emitted(stage_type(CONFIG), [[record] for record in calls])
    in_sevens = _emitted(stage_type(CONFIG), [calls[i : i + 7] for i in range(0, len(calls), 7)])
    assert len(one_by_one) > 0
    assert_same_emission(one_by_one, in_sevens, step=0)


@pytest.mark.parametrize("stage_type", STAGES)
def test_a_silent_partition_has_its_open_buckets_scored_as_they_stand(
    stage_type: type[Stage],
) -> None:
    stage, table = stage_type(CONFIG, EmissionPolicy(min_calls=5)), {}
    _, emission = stage.apply(routed([cdr(i) for i in range(6)]), 0, table)
    assert len(emission) == 0
    assert stage.clock.idle(idle_s=30.0, now=time.monotonic() + 10) == {}
    idle = stage.clock.idle(idle_s=30.0, now=time.monotonic() + 31)
    # The clock holds callers as the stage keeps them: texts, or number keys (the block).
    assert {
        partition: [(end, [n if isinstance(n, str) else number_text(n) for n in names])
                    for end, names in buckets]
        for partition, buckets in idle.items()
    } == {0: [(T0 + CONFIG.short_hop_s * 1000, [CALLER])]}
    emission = stage.emit_idle(0, idle[0], table)
    assert emission.numbers == [CALLER]
    assert stage.clock.idle(idle_s=30.0, now=time.monotonic() + 62) == {}  # once per silence
    # The bucket stays open: when the watermark passes it, it is scored with what came since.
    _, emission = stage.apply(routed([cdr(6, at=T0 + 100_000)]), 1, table)
    other = "+8613900000001"
    _, emission = stage.apply(routed([cdr(9, caller=other, at=T0 + 3_600_000)]), 2, table)
    assert emission.numbers == [CALLER]
    assert emission.matrix()[0, FEATURE_NAMES.index("short_call_volume")] == 7


@pytest.mark.parametrize("stage_type", STAGES)
def test_an_occasional_caller_is_never_scored(stage_type: type[Stage]) -> None:
    stage, table = stage_type(CONFIG), {}
    for offset in range(9):
        _, emission = stage.apply(routed([cdr(offset, at=T0 + offset * 3_600_000)]), offset, table)
        assert len(emission) == 0


@pytest.mark.parametrize("stage_type", STAGES)
def test_reciprocity_and_complaints_reach_the_callers_state(stage_type: type[Stage]) -> None:
    stage, table = stage_type(CONFIG), {}
    callees = [f"+86139001{i:05d}" for i in range(10)]
    stage.apply(routed([cdr(i, callee=c) for i, c in enumerate(callees)]), 0, table)
    backs = [
        cdr(100 + i, caller=c, callee=CALLER, at=T0 + 200_000) for i, c in enumerate(callees[:5])
    ]
    stats, _ = stage.apply(routed(backs), 1, table)
    assert stats.inbound == 5
    complaint = {
        "complaint_id": "k1",
        "reporter": callees[0],
        "reported": CALLER,
        "time_ms": T0 + 50_000,
    }
    stats, _ = stage.apply(routed([complaint], complaints=True), 2, table)
    assert stats.complaints == 1
    features = features_of(stage, table)
    assert features["long_complaints"] == 1
    assert 0.3 <= features["long_reciprocity"] <= 0.7


def test_block_row_bytes_round_trip_and_recent_ids_are_bounded() -> None:
    stage, table = BlockFeatureStage(CONFIG), {}
    stage.apply(routed([cdr(i) for i in range(3 * RECENT_IDS)]), 7, table)
    block = CallerBlock(CONFIG)
    row = block.load_row(CALLER, table[CALLER])
    assert block.column("last_offset")[row] == 7 and block.column("recent_n")[row] == RECENT_IDS
    assert block.row_bytes(row) == table[CALLER]
    # Fixed-width slot records: larger than CallerRecord's packed bytes (<= 1 KB here).
    assert len(table[CALLER]) <= 2048
    assert np.isfinite(block.features(np.array([row]))).all()


# -- random streams: both stages agree ---------------------------------------------


def messages_with_any_complaints(seed: int, n_messages: int = 40) -> list[Message]:
    """``random_messages`` plus complaints ahead of the watermark and about non-callers."""
    rng = np.random.default_rng(seed + 1000)
    messages = random_messages(seed, n_messages)
    strangers = [f"+861360000{i:04d}" for i in range(3)]  # complained about, never call
    seen: set[int] = set()
    for message in messages:
        batch = message.batch
        if not len(batch.calls) or id(batch) in seen:
            continue  # a replay shares its batch
        seen.add(id(batch))
        complaints = copy.deepcopy(batch.complaints)
        latest = max(batch.calls.start_ms)
        for index in range(int(rng.integers(0, 5))):
            ahead = rng.random() < 0.6
            number = (
                strangers[int(rng.integers(len(strangers)))]
                if rng.random() < 0.3
                else batch.calls.caller[int(rng.integers(len(batch.calls)))]
            )
            lead = int(rng.integers(0, 3 * 3600_000)) if ahead else -int(rng.integers(0, 600_000))
            complaints.complaint_id.append(f"x{message.offset}-{index}")
            complaints.number.append(number)
            complaints.time_ms.append(latest + lead)
        batch.complaints = complaints
    return messages


def assert_same_stats(expected: StageStats, got: StageStats, step: int) -> None:
    for name in StageStats.__slots__:  # type: ignore[attr-defined]
        if name != "loaded":  # where state lives between messages: the engines differ
            assert getattr(got, name) == getattr(expected, name), (step, name)


def assert_same_emission(expected: Emission, got: Emission, step: int) -> None:
    assert got.numbers == expected.numbers, step
    assert got.window_end_ms == expected.window_end_ms, step
    np.testing.assert_array_equal(got.matrix(), expected.matrix(), err_msg=str(step))


def assert_same_state(reference: dict, stage: BlockFeatureStage, table: dict) -> None:
    """Same callers; each caller's features equal to the bit."""
    assert set(table) == set(reference)
    for number in sorted(reference):
        expected = CallerRecord.from_bytes(reference[number], stage.config)
        got = features_of(stage, table, number)
        np.testing.assert_array_equal(
            np.array(list(got.values())), expected.state.features(), err_msg=number
        )


CONFIGS = {
    "default": FeatureConfig(),
    "tiny buffer": FeatureConfig(reorder_capacity=2, kmv_k=4, segment_bins=4),
    "long grace": FeatureConfig(grace_s=400, reorder_capacity=3, inbound_generation_s=3600),
}
POLICY = EmissionPolicy(min_calls=2)


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_block_stage_equals_feature_stage_on_random_streams(name: str, seed: int) -> None:
    config = CONFIGS[name]
    reference, reference_table = FeatureStage(config, POLICY), {}
    stage, table = BlockFeatureStage(config, POLICY, capacity=4), {}
    emitted = 0
    for step, message in enumerate(messages_with_any_complaints(seed)):
        expected = reference.apply(message.batch, message.offset, reference_table)
        got = stage.apply(message.batch, message.offset, table)
        assert_same_stats(expected[0], got[0], step)
        assert_same_emission(expected[1], got[1], step)
        emitted += len(got[1])
    assert emitted > 0
    assert_same_state(reference_table, stage, table)


@pytest.mark.parametrize("seed", [1, 2])
def test_messages_with_number_texts_apply_as_messages_with_keys(seed: int) -> None:
    # cdr.by_caller messages written before numbers travelled as keys hold texts.
    by_key, key_table = BlockFeatureStage(FeatureConfig(), POLICY, capacity=4), {}
    by_text, text_table = BlockFeatureStage(FeatureConfig(), POLICY, capacity=4), {}
    emitted = 0
    for step, message in enumerate(messages_with_any_complaints(seed)):
        texts = with_number_texts(message.batch)
        keys = copy.deepcopy(texts)
        for part, name in ((keys.calls, "caller"), (keys.calls, "callee"),
                           (keys.inbound, "number"), (keys.inbound, "from_number")):
            setattr(part, name, as_keys(getattr(part, name)).tolist())
        assert all(isinstance(n, str) for n in texts.calls.caller + texts.inbound.number)
        assert all(isinstance(n, int) for n in keys.calls.caller + keys.inbound.number)
        expected = by_key.apply(keys, message.offset, key_table)
        got = by_text.apply(texts, message.offset, text_table)
        assert_same_stats(expected[0], got[0], step)
        assert_same_emission(expected[1], got[1], step)
        emitted += len(got[1])
    assert emitted > 0
    assert key_table == text_table


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_rows_bytes_equal_row_bytes_and_features_past_the_watermark_agree(name: str) -> None:
    config = CONFIGS[name]
    reference, reference_table = FeatureStage(config, POLICY), {}
    stage, table = BlockFeatureStage(config, POLICY, capacity=4), {}
    for message in messages_with_any_complaints(9):
        reference.apply(message.batch, message.offset, reference_table)
        stage.apply(message.batch, message.offset, table)
    block = stage.block
    numbers = block.numbers()
    rows = np.array([block.row(number) for number in numbers])
    assert (block.column("held_n")[rows] > 0).any()
    assert block.rows_bytes(rows) == [block.row_bytes(int(row)) for row in rows]
    # Windows ending after the watermark hold the complaints held for them.
    hop = config.short_hop_s * 1000
    for later in (hop, 4 * hop, 30 * hop):
        ends = block.default_end_ms(rows) + later
        got = block.features(rows, ends)
        for index, number in enumerate(numbers):
            state = CallerRecord.from_bytes(reference_table[number], config).state
            np.testing.assert_array_equal(
                got[index], state.features(int(ends[index])), err_msg=number
            )


@pytest.mark.parametrize("seed", [5, 6])
def test_a_new_stage_over_the_same_table_goes_on_as_if_uninterrupted(seed: int) -> None:
    messages = messages_with_any_complaints(seed, 60)
    steady, steady_table = BlockFeatureStage(CONFIG, POLICY), {}
    restarted, table = BlockFeatureStage(CONFIG, POLICY), {}
    for step, message in enumerate(messages):
        if step in (20, 41):  # the worker restarts: its table is recovered, its block is empty
            restarted = BlockFeatureStage(CONFIG, POLICY)
        expected = steady.apply(message.batch, message.offset, steady_table)
        got = restarted.apply(message.batch, message.offset, table)
        assert_same_stats(expected[0], got[0], step)
        assert_same_emission(expected[1], got[1], step)
    assert table == steady_table


def test_a_revoked_partition_reloads_from_the_table() -> None:
    messages = messages_with_any_complaints(7)
    steady, steady_table = BlockFeatureStage(CONFIG, POLICY), {}
    stage, table = BlockFeatureStage(CONFIG, POLICY), {}
    for step, message in enumerate(messages):
        if step % 10 == 9:
            held = set(stage.block.numbers())
            forgotten = stage.forget_partition(1, 4)
            assert forgotten == sum(partition_for_number(n, 4) == 1 for n in held) > 0
            assert all(partition_for_number(n, 4) != 1 for n in stage.block.numbers())
        expected = steady.apply(message.batch, message.offset, steady_table)
        got = stage.apply(message.batch, message.offset, table)
        assert_same_stats(expected[0], got[0], step)
        assert_same_emission(expected[1], got[1], step)
    assert table == steady_table
    assert stage.forget(["+8613000000000", *stage.block.numbers()[:2]]) == 2


@pytest.mark.parametrize("hours", [0.5, 2, 30, 80])
def test_expire_deletes_empty_callers_and_rewrites_the_rest(hours: float) -> None:
    messages = messages_with_any_complaints(8)
    stage, table = BlockFeatureStage(CONFIG, POLICY), {}
    reference, reference_table = FeatureStage(CONFIG, POLICY), {}
    for message in messages[:30]:
        stage.apply(message.batch, message.offset, table)
        reference.apply(message.batch, message.offset, reference_table)
    now = int(stage.block.column("watermark")[[stage.block.row(n) for n in table]].max())
    now += int(hours * 3600_000)
    states = {n: CallerRecord.from_bytes(v, CONFIG).state for n, v in reference_table.items()}
    empty = {number for number, state in states.items() if state.expire(now)}
    assert set(stage.expire(now, table)) == empty
    assert set(table) == set(states) - empty
    for number in table:  # what the table holds is what the block holds
        row = stage.block.row(number)
        assert row is not None and table[number] == stage.block.row_bytes(row)
        np.testing.assert_array_equal(
            np.array(list(features_of(stage, table, number).values())), states[number].features()
        )
    # A worker that recovers this table and preloads it goes on like this one. (Expiring
    # ahead of the stream's time drops buckets that were still open: this one, too,
    # rebuilds its clock from the state, as after a restart.)
    stage.clock = OpenBuckets(CONFIG.short_hop_s * 1000, CONFIG.grace_s * 1000)
    recovered = BlockFeatureStage(CONFIG, POLICY)
    recovered_table = dict(table)
    assert recovered.preload(recovered_table, list(recovered_table)) == len(table)
    for step, message in enumerate(messages[30:]):
        expected = stage.apply(message.batch, message.offset + 100, table)
        got = recovered.apply(message.batch, message.offset + 100, recovered_table)
        assert_same_stats(expected[0], got[0], step)
        assert_same_emission(expected[1], got[1], step)
        if step == 5:
            assert sorted(stage.expire(now + 3600_000, table)) == sorted(recovered.expire(
                now + 3600_000, recovered_table
            ))
    assert recovered_table == table


def test_a_failed_message_leaves_no_half_applied_state() -> None:
    stage, table = BlockFeatureStage(CONFIG), {}
    stage.apply(routed([cdr(i) for i in range(5)]), 0, table)
    bad = routed([cdr(10)])
    bad.calls.start_ms[0] = "not a time"  # type: ignore[call-overload]
    with pytest.raises((TypeError, ValueError)):
        stage.apply(bad, 1, table)
    assert len(stage.block) == 0  # dropped: callers reload from the table
    stats, _ = stage.apply(routed([cdr(5)]), 1, table)
    assert stats.accepted == 1 and features_of(stage, table)["long_call_volume"] == 6


# -- deferred writes (the worker's write-behind table) ------------------------------


def partitions_by_hash(keys: list[str]) -> list[int]:
    return [partition_for_number(key, 4) for key in keys]


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_deferred_rows_reach_the_table_as_written_through_rows_would(seed: int) -> None:
    """Checkpoints at random points, a revoked partition and expiry in between."""
    rng = np.random.default_rng(seed)
    messages = messages_with_any_complaints(seed, 60)
    through, through_table = BlockFeatureStage(CONFIG, POLICY), {}
    deferred, data = BlockFeatureStage(CONFIG, POLICY), {}
    table = WriteBehindTable(data, partitions_by_hash)
    checkpointed: dict[str, bytes | None] = {}
    for step, message in enumerate(messages):
        if step % 15 == 14:  # partition 1 revoked and assigned again: reloads from the table
            assert deferred.forget_partition(1, 4, table) == through.forget_partition(1, 4)
        if step == 40:
            now = int(max(through.block.column("watermark"))) + 30 * 3600_000
            assert sorted(deferred.expire(now, table)) == sorted(through.expire(now, through_table))
        expected = through.apply(message.batch, message.offset, through_table)
        got = deferred.apply(message.batch, message.offset, table)
        assert_same_stats(expected[0], got[0], step)
        assert_same_emission(expected[1], got[1], step)
        if rng.random() < 0.3:
            checkpointed.update((key.decode(), value) for _, key, value in table.take())
        assert_one_copy(deferred, data)
    held = deferred.block.numbers()
    rows = deferred.block.rows_of(held, create=False)
    in_block = dict(zip(held, deferred.block.rows_bytes(rows), strict=True))
    assert {**dict(table), **in_block} == through_table
    checkpointed.update((key.decode(), value) for _, key, value in table.take())
    assert {k: v for k, v in checkpointed.items() if v is not None} == through_table
    cold = {key.decode(): value for key, value in data.items()}
    assert cold == {key: through_table[key] for key in through_table if key not in held}


def assert_one_copy(stage: BlockFeatureStage, data: dict[bytes, bytes]) -> None:
    """The table's data holds no caller the block holds."""
    both = [number for number in stage.block.numbers() if number.encode() in data]
    assert not both, f"{len(both)} callers held twice, e.g. {both[0]}"


def test_a_failed_message_stops_a_stage_over_a_one_copy_table_for_good() -> None:
    stage = BlockFeatureStage(CONFIG)
    table = WriteBehindTable({}, partitions_by_hash)
    stage.apply(routed([cdr(i) for i in range(5)]), 0, table)
    table.take()  # checkpointed, but the block holds the caller's only copy in memory
    bad = routed([cdr(10)])
    bad.calls.start_ms[0] = "not a time"  # type: ignore[call-overload]
    with pytest.raises((TypeError, ValueError)):
        stage.apply(bad, 1, table)
    with pytest.raises(StateLost, match="offset 1"):
        stage.apply(routed([cdr(5)]), 1, table)
    table.defer([CALLER], stage.rows_bytes_of)
    with pytest.raises(StateLost):
        table.take()
    assert table.pending == 1  # nothing taken: no checkpoint can acknowledge offset 1


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_evicting_idle_callers_changes_no_result(seed: int) -> None:
    """Idle callers moved to the table's bytes and loaded back on their next call.

    Stats, emissions and the changelog agree with a block that keeps every
    caller; at the end, expiry far in the future deletes the same callers
    from both, the evicted ones too.
    """
    rng = np.random.default_rng(seed)
    messages = messages_with_any_complaints(seed, 90)
    kept, kept_table = BlockFeatureStage(CONFIG, POLICY), {}
    moving, data = BlockFeatureStage(CONFIG, POLICY), {}
    table = WriteBehindTable(data, partitions_by_hash)
    checkpointed: dict[str, bytes | None] = {}
    evicted = loaded = 0
    for step, message in enumerate(messages):
        expected = kept.apply(message.batch, message.offset, kept_table)
        got = moving.apply(message.batch, message.offset, table)
        assert_same_stats(expected[0], got[0], step)
        assert_same_emission(expected[1], got[1], step)
        loaded += got[0].loaded
        if step % 4 == 3:  # nothing past the long window yet: only eviction differs
            latest = int(kept.block.column("watermark").max())
            for partition in range(4):
                idle = moving.expire_idle(T0, table, partition, 4, evict_before_ms=latest - 600_000)
                assert idle.removed == []
                evicted += idle.evicted
            assert_one_copy(moving, data)
        if rng.random() < 0.3:
            checkpointed.update((key.decode(), value) for _, key, value in table.take())
    assert evicted > 20 and loaded > 10
    checkpointed.update((key.decode(), value) for _, key, value in table.take())
    assert {k: v for k, v in checkpointed.items() if v is not None} == kept_table

    far = int(kept.block.column("watermark").max()) + 3 * CONFIG.long_window_s * 1000
    removed = [moving.expire_idle(far, table, partition, 4).removed for partition in range(4)]
    expected_removed = [kept.expire_idle(far, kept_table, p, 4).removed for p in range(4)]
    assert [sorted(r) for r in removed] == [sorted(r) for r in expected_removed]
    assert len(moving.block) == len(kept.block) == 0 and data == {} and kept_table == {}
    assert dict(table) == {}


def test_callers_recovered_as_bytes_expire_once_tracked() -> None:
    """A restarted worker holds its callers as bytes until they call: tracking finds the idle."""
    numbers = [f"+86139000000{i:02d}" for i in range(12)]
    first, data = BlockFeatureStage(CONFIG), {}
    table = WriteBehindTable(data, partitions_by_hash)
    first.apply(calls_of([cdr(i, caller=n) for i, n in enumerate(numbers)]), 0, table)
    late = T0 + 2 * CONFIG.long_window_s * 1000
    first.apply(calls_of([cdr(50, caller=numbers[0], at=late)]), 1, table)
    recovered = {key: value for _, key, value in table.take() if value is not None}
    assert len(recovered) == 12
    # The successor: everything as bytes (recovered), nothing in its block.
    successor, data = BlockFeatureStage(CONFIG), dict(recovered)
    table = WriteBehindTable(data, partitions_by_hash)
    now = late - CONFIG.grace_s * 1000
    untracked = [successor.expire_idle(now, table, p, 4).removed for p in range(4)]
    assert untracked == [[], [], [], []] and len(data) == 12  # never looked at

    assert successor.track_table(table, 4) == 12
    removed = sorted(n for p in range(4) for n in successor.expire_idle(now, table, p, 4).removed)
    # Tracked in batches, due once the newest of a batch is past the long window:
    # numbers[0] called late, so its partition's batch waits (a long window at most).
    busy = partition_for_number(numbers[0], 4)
    waiting = {n for n in numbers if partition_for_number(n, 4) == busy}
    assert removed == sorted(set(numbers) - waiting) and len(waiting) < len(numbers) - 1
    assert set(data) == {n.encode() for n in waiting} and len(successor.block) == 0
    records = table.take()
    assert sorted(key.decode() for _, key, value in records if value is None) == removed
    later = late + 2 * CONFIG.long_window_s * 1000
    removed = [n for p in range(4) for n in successor.expire_idle(later, table, p, 4).removed]
    assert sorted(removed) == sorted(waiting) and data == {}


def test_callers_move_between_the_block_and_a_one_copy_table() -> None:
    stage, data = BlockFeatureStage(CONFIG), {}
    table = WriteBehindTable(data, partitions_by_hash)
    stage.apply(calls_of([cdr(i) for i in range(5)]), 0, table)
    table.take()
    assert data == {} and len(stage.block) == 1  # checkpointed: the block's copy only
    assert stage.forget([CALLER], table) == 1
    assert list(data) == [CALLER.encode()] and len(stage.block) == 0
    stats, _ = stage.apply(calls_of([cdr(5)]), 1, table)  # loaded back: the data lets go
    assert stats.accepted == 1 and data == {}
    assert stage.snapshot(CALLER, table)["features"]["long_call_volume"] == 6


# -- complaints ahead of the watermark ---------------------------------------------


def complaint_batch(number: str, *times_ms: int) -> RoutedBatch:
    complaints = ComplaintColumns()
    for index, time_ms in enumerate(times_ms):
        complaints.complaint_id.append(f"k{index}")
        complaints.number.append(number)
        complaints.time_ms.append(time_ms)
    return RoutedBatch(complaints=complaints)


@pytest.mark.parametrize("stage_type", STAGES)
def test_complaints_about_a_number_without_calls_wait_for_its_calls(
    stage_type: type[Stage],
) -> None:
    stage, table = stage_type(CONFIG), {}
    stats, _ = stage.apply(complaint_batch(CALLER, T0 + 30_000, T0 - 3600_000), 0, table)
    assert stats.complaints == 2 and CALLER in table  # held, and stored
    stage.apply(routed([cdr(i) for i in range(6)]), 1, table)  # T0 .. T0 + 50 s
    features = features_of(stage, table)
    assert (features["short_complaints"], features["long_complaints"]) == (1, 2)


@pytest.mark.parametrize("stage_type", STAGES)
def test_a_complaint_from_the_future_does_not_break_the_window(stage_type: type[Stage]) -> None:
    stage, table = stage_type(CONFIG), {}
    stage.apply(routed([cdr(i) for i in range(6)]), 0, table)
    stats, _ = stage.apply(complaint_batch(CALLER, T0 + 3 * 3600_000), 1, table)
    assert stats.complaints == 1
    _, emission = stage.apply(routed([cdr(i) for i in range(6, 12)]), 2, table)
    assert features_of(stage, table)["long_complaints"] == 0  # not yet: it is 3 h ahead
    stage.apply(routed([cdr(99, at=T0 + 3 * 3600_000 + 1000)]), 3, table)
    assert features_of(stage, table)["short_complaints"] == 1


def test_held_complaints_are_bounded_and_order_does_not_matter() -> None:
    config = FeatureConfig()
    hop = config.short_hop_s * 1000
    times = T0 + hop * np.array([9, 2, 7, 2, 5, 3, 11, 5])
    states = []
    for order in (np.arange(len(times)), np.arange(len(times))[::-1]):
        state = CallerState(config)
        for time_ms in times[order]:
            state.note_complaints(np.array([time_ms]))
        states.append(state)
    assert states[0].to_bytes() == states[1].to_bytes()
    state = CallerState.from_bytes(states[0].to_bytes(), config)
    assert len(state._held_bucket) == HELD_COMPLAINTS
    assert int(state._held_count.sum()) == len(times)
    assert state.expire(T0 + 3 * 86_400_000)


def offline_and_stream(seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One caller's calls and complaints, streamed in time order and computed offline.

    As in test_features_parity: everything before a window end is fed, in
    time order (each complaint after the calls that precede it), then the
    window is evaluated.
    """
    config = FeatureConfig()
    rng = np.random.default_rng(seed)
    starts = np.sort(T0 + 3600_000 + rng.integers(0, 6 * 3600_000, 300))
    callees = (8613800000000 + rng.integers(0, 50, len(starts))).astype(np.uint64)
    # One complaint before the first call (no watermark yet), the rest among the calls.
    complaint_times = np.sort(np.r_[T0, T0 + 3600_000 + rng.integers(0, 7 * 3600_000, 25)])
    events = sorted(
        [(int(t), 0, i) for i, t in enumerate(starts)] + [(int(t), 1, -1) for t in complaint_times]
    )
    state = CallerState(config)

    def feed(calls: list[int]) -> None:
        if calls:
            index = np.array(calls)
            state.update(
                CallBatch.from_arrays(
                    config,
                    start_ms=starts[index],
                    callee=callees[index],
                    duration_s=np.zeros(len(index)),
                    answered=np.zeros(len(index), bool),
                    ring_s=np.full(len(index), 4.0),
                )
            )
            calls.clear()

    rows, pending = [], []
    position = 0
    for end in range(T0 + 1800_000, T0 + 8 * 3600_000 + 1, 1800_000):
        while position < len(events) and events[position][0] < end:
            time_ms, kind, call = events[position]
            position += 1
            if kind == 0:
                pending.append(call)
            else:
                feed(pending)
                state.note_complaints(np.array([time_ms]))
        feed(pending)
        if state.watermark_ms > end - config.long_window_s * 1000:
            rows.append({"end_ms": end} | state.feature_dict(end))
    streamed = pl.DataFrame(rows)
    cdrs = pl.DataFrame(
        {
            "caller": [CALLER] * len(starts),
            "callee": ["+" + str(c) for c in callees],
            "start_ms": starts,
            "duration_s": np.zeros(len(starts)),
            "disposition": ["NO_ANSWER"] * len(starts),
            "ring_s": np.full(len(starts), 4.0),
        }
    )
    complaints = pl.DataFrame(
        {"reported": [CALLER] * len(complaint_times), "time_ms": complaint_times}
    )
    offline = compute_features(cdrs, config, at=streamed["end_ms"].to_list(), complaints=complaints)
    return offline, streamed


@pytest.mark.parametrize("seed", [1, 2])
def test_complaints_streamed_in_time_order_agree_with_the_offline_path(seed: int) -> None:
    offline, streamed = offline_and_stream(seed)
    joined = offline.join(streamed, on="end_ms", suffix="_stream")
    assert joined.height == streamed.height > 10
    assert joined["long_complaints"].max() > 0
    for name in WINDOW_FEATURE_NAMES:
        np.testing.assert_array_equal(
            joined[f"{name}_stream"].to_numpy(), joined[name].to_numpy(), err_msg=name
        )


def test_expire_idle_deletes_only_callers_past_the_long_window() -> None:
    stage, table = BlockFeatureStage(CONFIG), {}
    quiet, busy = "+8613900000001", "+8613900000002"
    day_ms = CONFIG.long_window_s * 1000
    stage.apply(routed([cdr(i, caller=quiet) for i in range(5)]
                       + [cdr(100 + i, caller=busy) for i in range(5)]), 0, table)
    late = [cdr(200 + i, caller=busy, at=T0 + day_ms + 3_600_000 + i) for i in range(5)]
    stage.apply(routed(late), 1, table)
    before = features_of(stage, table, busy)
    now = T0 + day_ms + 3_600_000 - CONFIG.grace_s * 1000

    removed = stage.expire_idle(now, table, partition=0, partitions=1).removed

    assert removed == [quiet]
    assert quiet not in table and quiet not in stage.block
    assert features_of(stage, table, busy) == before
    # A worker recovering the table holds the same.
    successor = BlockFeatureStage(CONFIG)
    assert successor.snapshot(quiet, table) is None
    assert features_of(successor, table, busy) == before


def test_expire_idle_keeps_callers_of_other_partitions() -> None:
    stage, table = BlockFeatureStage(CONFIG), {}
    numbers = [f"+86139000000{i:02d}" for i in range(20)]
    stage.apply(calls_of([cdr(i, caller=n) for i, n in enumerate(numbers)]), 0, table)
    far = T0 + 3 * CONFIG.long_window_s * 1000
    removed = stage.expire_idle(far, table, partition=1, partitions=2).removed
    assert removed and all(partition_for_number(n, 2) == 1 for n in removed)
    assert sorted(table) == sorted(n for n in numbers if partition_for_number(n, 2) == 0)


# -- call-backs ------------------------------------------------------------------------


@pytest.mark.parametrize("engine", [FeatureStage, BlockFeatureStage])
@pytest.mark.parametrize(
    "order",
    ["call first", "call-back first", "one message", "only later"],
)
def test_a_call_back_counts_whatever_order_it_arrives_in(engine: type, order: str) -> None:
    x, y = "+8613900000101", "+8613900000102"
    call = cdr(1, caller=x, callee=y, at=T0 + 10_000)
    back = cdr(2, caller=y, callee=x, at=T0 + 20_000)
    after = cdr(3, caller=y, callee=x, at=T0 + 400_000)  # after the first row's end
    closer = cdr(4, caller="+8613900000199", callee="+8613900000198", at=T0 + 900_000)
    messages = {
        "call first": [[call], [back], [after, closer]],
        "call-back first": [[back], [call], [closer]],  # x has no state when y calls
        "one message": [[call, back, after, closer]],
        "only later": [[call], [after, closer]],
    }[order]
    stage, table = engine(CONFIG, EmissionPolicy(min_calls=1, min_long_calls=1)), {}
    rows = {}
    for offset, records in enumerate(messages):
        _, emission = stage.apply(routed(records), offset, table)
        for number, end, row in zip(emission.numbers, emission.window_end_ms, emission.rows,
                                    strict=True):
            rows[(number, end)] = dict(zip(WINDOW_FEATURE_NAMES, row.tolist(), strict=True))
    first = rows[(x, T0 + 300_000)]
    # y called back before the row's end: counted; its later call is not, although
    # the message that closes the row brings it before the row is emitted.
    expected = 0.0 if order == "only later" else 1.0
    assert first["short_reciprocity"] == first["long_reciprocity"] == expected
