"""The feature stage against a plain dict: dedup, replays, emission, records."""

from __future__ import annotations

import numpy as np
import orjson

from features.config import FeatureConfig
from features.emission import EmissionPolicy
from features.fingerprints import RECENT_IDS
from features.reference.caller_record import CallerRecord
from features.vector import FEATURE_NAMES
from streams.pipeline.deadletter import SourcePosition
from streams.pipeline.ingest import RawMessage, ingest_cdrs, ingest_complaints
from streams.stages.reference.feature_stage import FeatureStage

T0 = 1_530_489_600_000  # 2018-07-02 00:00 UTC, 08:00 in Beijing
CONFIG = FeatureConfig()
CALLER = "+8613800138000"


def cdr(i: int, caller: str = CALLER, callee: str | None = None, at: int | None = None) -> dict:
    return {"cdr_id": f"c{i}", "caller": caller, "callee": callee or f"+86139001{i:05d}",
            "start_time": T0 + i * 10_000 if at is None else at, "duration_s": 0,
            "disposition": "NO_ANSWER", "ring_s": 1.5}


def routed(records: list[dict], complaints: bool = False):
    """All records routed with one partition, as the ingest agent would."""
    ingest = ingest_complaints if complaints else ingest_cdrs
    outcome = ingest([RawMessage(orjson.dumps(records), SourcePosition("t", 0, 0))],
                     partitions=1, default_region="CN", max_message_bytes=1 << 20,
                     max_original_bytes=1024, now_ms=0)
    return outcome.by_partition[0]


def volume(table: dict, number: str = CALLER) -> float:
    record = CallerRecord.from_bytes(table[number], CONFIG)
    return record.state.feature_dict()["long_call_volume"]


def test_calls_are_counted_once_despite_resends_and_replays() -> None:
    stage, table = FeatureStage(CONFIG), {}
    stats, _ = stage.apply(routed([cdr(i) for i in range(10)]), 0, table)
    assert stats.accepted == 10 and volume(table) == 10
    # a carrier resends three of them, mixed with two new calls
    stats, _ = stage.apply(routed([cdr(3), cdr(4), cdr(5), cdr(10), cdr(11)]), 1, table)
    assert (stats.duplicates, stats.accepted) == (3, 2) and volume(table) == 12
    # a restarted worker reads message 1 again: nothing changes
    stats, _ = stage.apply(routed([cdr(3), cdr(4), cdr(5), cdr(10), cdr(11)]), 1, table)
    assert stats.replayed == 5 and volume(table) == 12


def test_duplicates_inside_one_message() -> None:
    stage, table = FeatureStage(CONFIG), {}
    stats, _ = stage.apply(routed([cdr(1), cdr(1), cdr(2)]), 0, table)
    assert (stats.accepted, stats.duplicates) == (2, 1)


def test_late_calls_beyond_grace_are_dropped_and_counted() -> None:
    stage, table = FeatureStage(CONFIG), {}
    stage.apply(routed([cdr(0, at=T0 + 3_600_000)]), 0, table)
    late_in_grace = cdr(1, at=T0 + 3_600_000 - 60_000)
    too_late = cdr(2, at=T0 + 3_600_000 - 600_000)
    stats, _ = stage.apply(routed([late_in_grace, too_late]), 1, table)
    assert (stats.late_accepted, stats.late_dropped) == (1, 1)
    assert volume(table) == 2


def test_a_burst_is_emitted_once_at_its_bucket_end_when_the_watermark_passes_it() -> None:
    stage = FeatureStage(CONFIG, EmissionPolicy(min_calls=5))
    table: dict = {}
    hop_ms, grace_ms = CONFIG.short_hop_s * 1000, CONFIG.grace_s * 1000
    _, emission = stage.apply(routed([cdr(i) for i in range(5)]), 0, table)  # T0 + 0..40 s
    assert len(emission) == 0  # its bucket is still open
    other = "+8613900000001"
    _, emission = stage.apply(routed([cdr(50, caller=other, at=T0 + hop_ms + grace_ms - 1)]), 1,
                              table)
    assert len(emission) == 0  # the watermark has not passed the end by the grace
    _, emission = stage.apply(routed([cdr(51, caller=other, at=T0 + hop_ms + grace_ms)]), 2, table)
    assert emission.numbers == [CALLER] and emission.window_end_ms == [T0 + hop_ms]
    assert emission.matrix()[0, FEATURE_NAMES.index("short_call_volume")] == 5
    _, emission = stage.apply(routed([cdr(52, caller=other, at=T0 + 5 * hop_ms)]), 3, table)
    assert CALLER not in emission.numbers  # no calls since: not scored again


def test_reciprocity_and_complaints_reach_the_callers_state() -> None:
    stage, table = FeatureStage(CONFIG), {}
    callees = [f"+86139001{i:05d}" for i in range(10)]
    stage.apply(routed([cdr(i, callee=c) for i, c in enumerate(callees)]), 0, table)
    backs = [cdr(100 + i, caller=c, callee=CALLER, at=T0 + 200_000) for i, c in
             enumerate(callees[:5])]
    stats, _ = stage.apply(routed(backs), 1, table)
    assert stats.inbound == 5
    complaint = {"complaint_id": "k1", "reporter": callees[0], "reported": CALLER,
                 "time_ms": T0 + 50_000}
    stats, _ = stage.apply(routed([complaint], complaints=True), 2, table)
    assert stats.complaints == 1
    features = CallerRecord.from_bytes(table[CALLER], CONFIG).state.feature_dict()
    assert features["long_complaints"] == 1
    assert 0.3 <= features["long_reciprocity"] <= 0.7


def test_record_bytes_round_trip_and_recent_ids_are_bounded() -> None:
    stage, table = FeatureStage(CONFIG), {}
    stage.apply(routed([cdr(i) for i in range(3 * RECENT_IDS)]), 7, table)
    record = CallerRecord.from_bytes(table[CALLER], CONFIG)
    assert record.last_offset == 7 and len(record.recent) == RECENT_IDS
    assert CallerRecord.from_bytes(record.to_bytes(), CONFIG).to_bytes() == record.to_bytes()
    assert len(table[CALLER]) <= 1280  # the reference engine stores every ring slot whole
    assert np.isfinite(record.state.features()).all()


def test_a_resent_backlog_does_not_push_out_the_latest_ids() -> None:
    # 100 calls 10 s apart; the grace (120 s) covers the last 12. A worker dies
    # and its successor re-ingests the whole backlog in two new messages: the
    # older 60, dropped as late, must not evict the ids of the latest calls,
    # or the resends of those within the grace would be counted twice.
    stage, table = FeatureStage(CONFIG), {}
    stage.apply(routed([cdr(i) for i in range(100)]), 0, table)
    stage.apply(routed([cdr(i) for i in range(60)]), 1, table)
    stats, _ = stage.apply(routed([cdr(i) for i in range(60, 100)]), 2, table)
    assert stats.accepted == 0 and stats.late_accepted == 0
    assert volume(table) == 100
