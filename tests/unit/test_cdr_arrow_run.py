"""Runs of Arrow messages validated together: each message's outcome as if validated alone."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import orjson
import polars as pl
import pytest

from contracts import cdr_arrow
from contracts.cdr import Rejection, validate_message
from contracts.cdr_arrow import (
    ARROW_STREAM_CONTENT_TYPE,
    CDR_FRAME_SCHEMA,
    ArrowCdrs,
    CdrFrame,
    validate_arrow_message,
    validate_arrow_messages,
)
from contracts.cdr_vector import normalise_numbers
from contracts.numbers import NumberError, normalise
from streams.pipeline.deadletter import SourcePosition
from streams.pipeline.ingest import RawMessage, ingest_cdrs
from tests.unit.test_cdr_arrow import EPOCH_TIMES, TEXT_TIMES, arrow, frame_of
from tests.unit.test_cdr_contract import good
from tests.unit.test_cdr_json import NUMBERS, TIMES

EPOCH = 1714528800000
MAX_BYTES = 20_000


def triples(rejections: list[Rejection]) -> list[tuple[str, int | None, bytes]]:
    return [(r.reason, r.index, r.original) for r in rejections]


def one_by_one(raws: list[bytes | None], **options: Any) -> list[CdrFrame]:
    """Each message validated alone (a run of one)."""
    return [validate_arrow_message(raw, **options) for raw in raws]


def assert_same_as_one_by_one(raws: list[bytes | None], **options: Any) -> ArrowCdrs:
    """The run's outcome is each message's own outcome, end to end."""
    run = validate_arrow_messages(raws, **options)
    alone = one_by_one(raws, **options)
    assert [triples(rejections) for rejections in run.rejections] == [
        triples(result.rejections) for result in alone]
    expected = pl.concat([result.cdrs for result in alone]) if alone else run.cdrs.clear()
    assert run.cdrs.schema == CDR_FRAME_SCHEMA
    assert run.cdrs.to_dicts() == expected.to_dicts()
    # -0.0 and 0.0 compare equal but encode differently
    assert orjson.dumps(run.cdrs.to_dicts()) == orjson.dumps(expected.to_dicts())
    return run


# --- a run by hand ----------------------------------------------------------------------

def test_a_run_of_mixed_messages() -> None:
    texts = frame_of([good(cdr_id="t0"), good(cdr_id="t1", caller="???"),
                      good(cdr_id="t2")], TEXT_TIMES)
    epochs = frame_of([good(cdr_id="e0", start_time=EPOCH, duration_s=-1.0),
                       good(cdr_id="e1", start_time=EPOCH + 1)], EPOCH_TIMES)
    stamps = epochs.with_columns(
        pl.col("start_time").cast(pl.Datetime("ms", "UTC")).dt.convert_time_zone("Asia/Shanghai"),
        pl.col("cdr_id").str.replace("e", "d").cast(pl.Categorical),
        pl.col("disposition").cast(pl.Enum(["ANSWERED", "BUSY"])),
        pl.col("duration_s").cast(pl.Int32),
    ).drop("ring_s", "carrier")
    unreadable = b"\x00garbage"
    no_caller = arrow(texts.drop("caller"))
    raws: list[bytes | None] = [arrow(texts), unreadable, arrow(epochs), None, no_caller,
                                arrow(stamps), arrow(texts.clear())]
    run = assert_same_as_one_by_one(raws)
    assert run.cdrs["cdr_id"].to_list() == ["t0", "t2", "e1", "d1"]
    assert run.cdrs["start_ms"].to_list()[2:] == [EPOCH + 1, EPOCH + 1]
    assert run.cdrs["ring_s"].to_list() == [4.0, 4.0, 4.0, None]
    reasons = [[(r.reason, r.index) for r in rejections] for rejections in run.rejections]
    assert [(reason[:12], index) for reason, index in reasons[0]] == [("[1] caller: ", 1)]
    assert reasons[1][0][0].startswith("not a valid Arrow IPC stream")
    assert reasons[2] == [("[0] duration_s: must be between 0 and 604800, got -1.0", 0)]
    assert reasons[3] == [("empty message (no value)", None)]
    assert reasons[4] == [("Arrow batch lacks required column(s): caller", None)]
    assert reasons[5] == [("[0] duration_s: must be between 0 and 604800, got -1", 0)]
    assert reasons[6] == [("empty batch: an Arrow stream with no row", None)]
    assert [r.original for r in run.rejections[1] + run.rejections[4]] == [unreadable, no_caller]
    (stamp_row,) = run.rejections[5]
    assert orjson.loads(stamp_row.original) == {
        "cdr_id": "d0", "caller": "13800138000", "callee": "010-12345678", "start_time": EPOCH,
        "duration_s": -1, "disposition": "ANSWERED", "ring_s": None, "carrier": None}


def test_bad_rows_in_several_messages_keep_their_own_indices() -> None:
    def message(bad: set[int]) -> bytes:
        return arrow(frame_of([good(cdr_id=f"r{i}", callee="nope" if i in bad else "10086")
                               for i in range(6)], TEXT_TIMES))

    raws: list[bytes | None] = [message({0, 5}), message(set()), message({3}), message({1, 2})]
    run = assert_same_as_one_by_one(raws)
    assert [[r.index for r in rejections] for rejections in run.rejections] == [
        [0, 5], [], [3], [1, 2]]
    assert [r.reason[:4] for r in run.rejections[3]] == ["[1] ", "[2] "]
    assert orjson.loads(run.rejections[2][0].original)["cdr_id"] == "r3"
    assert run.cdrs.height == 24 - 5


def test_an_empty_run_and_a_run_with_nothing_readable() -> None:
    empty = validate_arrow_messages([])
    assert empty.rejections == [] and empty.cdrs.height == 0
    assert empty.cdrs.schema == CDR_FRAME_SCHEMA
    nothing = validate_arrow_messages([None, b"", b"x" * 10], max_bytes=5)
    assert [[r.reason for r in rs] for rs in nothing.rejections] == [
        ["empty message (no value)"], [nothing.rejections[1][0].reason],
        ["message of 10 bytes exceeds the limit of 5 bytes"]]
    assert nothing.rejections[1][0].reason.startswith("not a valid Arrow IPC stream")
    assert nothing.cdrs.schema == CDR_FRAME_SCHEMA and nothing.cdrs.height == 0


def test_instants_of_every_type_in_one_run() -> None:
    records = [good(cdr_id=str(i), start_time=EPOCH + i) for i in range(3)]
    base = frame_of(records, EPOCH_TIMES)
    variants = [
        base,
        base.with_columns(pl.col("start_time").cast(pl.UInt64)),
        base.with_columns(pl.col("start_time").cast(pl.Datetime("ms", "UTC"))),
        base.with_columns(pl.col("start_time").cast(pl.Datetime("ms", "UTC"))
                          .dt.cast_time_unit("ns").dt.convert_time_zone("America/New_York")),
        base.with_columns(pl.col("start_time").cast(pl.Datetime("ms", "UTC"))
                          .dt.convert_time_zone("Asia/Shanghai").dt.strftime("%+")),
        base.with_columns(pl.col("start_time").cast(pl.Datetime("ms", "UTC"))
                          .dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").cast(pl.Categorical)),
        base.with_columns(start_time=pl.lit(None)),
        base.with_columns(start_time=pl.lit(2**64 - 1, dtype=pl.UInt64)),
    ]
    run = assert_same_as_one_by_one([arrow(variant) for variant in variants])
    assert run.cdrs["start_ms"].to_list() == [EPOCH, EPOCH + 1, EPOCH + 2] * 6
    assert [len(rejections) for rejections in run.rejections] == [0] * 6 + [3, 3]
    assert run.rejections[7][0].reason == (
        "[0] start_time: 18446744073709551615 is outside 2000-2100; "
        "epoch values must be in milliseconds")


def test_an_out_of_range_timestamp_beside_text_times() -> None:
    moment = datetime(1990, 1, 1, tzinfo=UTC)
    stamps = frame_of([good(), good(cdr_id="c-2")], TEXT_TIMES).with_columns(
        start_time=pl.lit(moment).dt.cast_time_unit("ms"))
    texts = frame_of([good(cdr_id="t", start_time="yesterday")], TEXT_TIMES)
    run = assert_same_as_one_by_one([arrow(texts), arrow(stamps)])
    assert [[r.reason for r in rs] for rs in run.rejections] == [
        ["[0] start_time: not RFC 3339 ('yesterday')"],
        ["[0] start_time: 631152000000 is outside 2000-2100; epoch values must be in milliseconds",
         "[1] start_time: 631152000000 is outside 2000-2100; epoch values must be in milliseconds"]]


def test_a_row_the_json_rules_accept_is_kept_in_its_place_in_the_run(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(cdr_arrow, "_valid_rows", lambda _latest=None: pl.col("cdr_id") != "b")
    first = [good(cdr_id=name, caller="138-0013-8000") for name in "ab"]
    second = [good(cdr_id=name, start_time=EPOCH) for name in "cbd"]
    run = validate_arrow_messages([arrow(frame_of(first, TEXT_TIMES)),
                                   arrow(frame_of(second, EPOCH_TIMES))])
    assert run.rejections == [[], []]
    assert run.cdrs["cdr_id"].to_list() == ["a", "b", "c", "b", "d"]
    assert run.cdrs["caller"].to_list() == ["+8613800138000"] * 5
    assert run.cdrs.schema == CDR_FRAME_SCHEMA
    assert "refused rows the JSON rules accept" in caplog.text


def test_ingest_dead_letters_each_rejection_with_its_own_message_position() -> None:
    arrow_header = [("content-type", ARROW_STREAM_CONTENT_TYPE.encode())]
    good_rows = frame_of([good(cdr_id="a"), good(cdr_id="b")], TEXT_TIMES)
    bad_row = frame_of([good(cdr_id="c"), good(cdr_id="d", duration_s=-3.0)], TEXT_TIMES)
    values = [arrow(good_rows), arrow(bad_row), b"\x00garbage", arrow(good_rows), arrow(bad_row)]
    raws = [RawMessage(value, SourcePosition("cdr.raw", 2, 40 + offset), arrow_header)
            for offset, value in enumerate(values)]
    options = dict(partitions=4, default_region="CN", max_message_bytes=1 << 20,
                   max_original_bytes=1 << 20, now_ms=1)
    together = ingest_cdrs(raws, **options)  # type: ignore[arg-type]
    assert (together.valid, together.rejected) == (6, 3)
    letters = [(key, orjson.loads(value)) for key, value in together.deadletters]
    assert [(key, letter["batch_index"]) for key, letter in letters] == [
        (b"cdr.raw:2:41", 1), (b"cdr.raw:2:42", None), (b"cdr.raw:2:44", 1)]
    one_at_a_time = [ingest_cdrs([raw], **options) for raw in raws]  # type: ignore[arg-type]
    assert together.deadletters == [letter for outcome in one_at_a_time
                                    for letter in outcome.deadletters]
    for partition, routed in together.by_partition.items():
        alone = [outcome.by_partition[partition] for outcome in one_at_a_time
                 if partition in outcome.by_partition]
        assert routed.calls.cdr_id == [cdr_id for part in alone for cdr_id in part.calls.cdr_id]
        assert list(routed.inbound.number) == [n for part in alone for n in part.inbound.number]


# --- fuzzed runs: the run gives what each message alone gives, and what JSON gives ------

TEXT_POOL = ["", "x" * 128, "x" * 129, "é" * 128, "ANSWERED", "answered", "BUSY", "NO_ANSWER",
             "HUNG_UP", "CMCC"]
SECONDS = [0.0, -0.0, 1.0, 42.5, 604800.0, 604800.5, -0.5, 1e300, float("nan"), float("inf")]
INSTANT_TEXTS = [t for t in TIMES if isinstance(t, str)]
INSTANT_INTS = [t for t in TIMES if isinstance(t, int) and not isinstance(t, bool)
                and -(2**63) <= t < 2**63]
STAMP_MS = [EPOCH, EPOCH + 999, 946_684_799_999, 946_684_800_000, 4_102_444_799_999,
            4_102_444_800_000, 0, -1]
TIME_TYPES: list[pl.DataType] = [
    pl.String(), pl.Int64(), pl.UInt64(), pl.Int32(), pl.Categorical(),
    pl.Datetime("ms", "UTC"), pl.Datetime("us", "Asia/Shanghai"), pl.Datetime("ns", "UTC"),
    pl.Null(),
]


def fuzzed_record(rng: random.Random, number: int, time_type: pl.DataType) -> dict[str, Any]:
    """A row: mostly good, often with a field wrong or null (of the column's own type)."""
    if time_type == pl.String or time_type == pl.Categorical:
        times: list[Any] = INSTANT_TEXTS[:4]
        wrong_times: list[Any] = INSTANT_TEXTS
    elif isinstance(time_type, pl.Datetime):
        times, wrong_times = [EPOCH, EPOCH + 7], STAMP_MS
    else:
        times = [EPOCH, 1714528800123]
        wrong_times = [t for t in INSTANT_INTS if t >= 0] if time_type == pl.UInt64 else (
            INSTANT_INTS)
    record = good(cdr_id=f"c-{number}", caller=rng.choice(NUMBERS[:26]),
                  callee=rng.choice(NUMBERS[:26]), start_time=rng.choice(times),
                  duration_s=rng.choice([0.0, 12.0, 42.5]),
                  disposition=rng.choice(["ANSWERED", "NO_ANSWER", "BUSY", "REJECTED"]),
                  ring_s=rng.choice([None, 3.0, 4.5]))
    if record["disposition"] != "ANSWERED" and rng.random() < 0.9:
        record["duration_s"] = 0.0
    pools = {"cdr_id": TEXT_POOL, "caller": NUMBERS, "callee": NUMBERS,
             "start_time": wrong_times, "duration_s": SECONDS, "ring_s": SECONDS,
             "disposition": TEXT_POOL, "carrier": TEXT_POOL}
    for _ in range(rng.choice([0, 0, 0, 0, 1, 1, 2])):
        field = rng.choice(list(pools))
        record[field] = None if rng.random() < 0.2 else rng.choice(pools[field])
    return record


def fuzzed_frame(rng: random.Random, first: int) -> pl.DataFrame:
    """A message's frame: fuzzed rows under one of the column types the contract allows."""
    time_type = rng.choice(TIME_TYPES)
    rows = [fuzzed_record(rng, first + i, time_type) for i in range(rng.choice([1, 2, 7, 60]))]
    texts = time_type == pl.String or time_type == pl.Categorical
    frame = frame_of(rows, TEXT_TIMES if texts else EPOCH_TIMES)
    if isinstance(time_type, pl.Datetime):
        frame = frame.with_columns(pl.col("start_time").cast(pl.Datetime("ms", "UTC"))
                                   .dt.cast_time_unit(time_type.time_unit)
                                   .dt.convert_time_zone(time_type.time_zone or "UTC"))
    else:
        frame = frame.with_columns(pl.col("start_time").cast(time_type, strict=False))
    changes = []
    for name in ("cdr_id", "caller", "callee", "disposition", "carrier"):
        if rng.random() < 0.2:
            changes.append(pl.col(name).cast(pl.Categorical))
    if rng.random() < 0.2 and frame["duration_s"].is_in([0.0, 12.0]).all():
        changes.append(pl.col("duration_s").cast(pl.Int32))
    frame = frame.with_columns(changes)
    for name in ("ring_s", "carrier", "callee"):
        roll = rng.random()
        if roll < 0.1:
            frame = frame.drop(name)  # callee: a schema problem
        elif roll < 0.2:
            frame = frame.with_columns(pl.lit(None).alias(name))
    if rng.random() < 0.1:
        frame = frame.with_columns(trunk=pl.lit("T7"), blob=pl.lit(b"\x01"))
    return frame


def fuzzed_message(rng: random.Random, first: int) -> bytes | None:
    roll = rng.random()
    if roll < 0.05:
        return rng.choice([None, b"", b"\x00garbage", b"x" * (MAX_BYTES + 1)])
    frame = fuzzed_frame(rng, first)
    if roll < 0.08:
        frame = frame.with_columns(pl.col("duration_s").cast(pl.String))
    elif roll < 0.1:
        frame = frame.clear()
    return arrow(frame)


def json_records(raw: bytes) -> list[dict[str, Any]] | None:
    """The message's rows as JSON would carry them, or None if JSON cannot (NaN, infinity)."""
    frame = pl.read_ipc_stream(raw)
    if isinstance(frame.schema["start_time"], pl.Datetime):
        frame = frame.with_columns(pl.col("start_time").dt.epoch("ms"))
    frame = frame.drop("blob", strict=False)
    floats = [name for name in ("duration_s", "ring_s")
              if name in frame.columns and frame.schema[name].is_float()]
    if floats and not frame.select(pl.all_horizontal(
            pl.col(floats).is_finite() | pl.col(floats).is_null()).all()).item():
        return None
    return frame.to_dicts()


@pytest.mark.parametrize("seed", range(40))
def test_a_fuzzed_run_gives_what_each_message_alone_gives(seed: int) -> None:
    rng = random.Random(seed)
    raws = [fuzzed_message(rng, 1000 * n) for n in range(rng.choice([1, 3, 20, 40]))]
    run = assert_same_as_one_by_one(raws, max_bytes=MAX_BYTES)
    assert len(run.rejections) == len(raws)


@pytest.mark.parametrize("seed", range(20))
def test_fuzzed_messages_alone_give_what_json_gives(seed: int) -> None:
    rng = random.Random(500 + seed)
    for n in range(10):
        frame = fuzzed_frame(rng, 1000 * n)
        if "callee" not in frame.columns:
            continue
        raw = arrow(frame)
        records = json_records(raw)
        if records is None:
            continue
        got = validate_arrow_message(raw)
        expected = validate_message(orjson.dumps(records))
        assert [(r.reason, r.index) for r in got.rejections] == [
            (r.reason, r.index) for r in expected.rejections]
        rows = [{"cdr_id": cdr.cdr_id, "caller": cdr.caller, "callee": cdr.callee,
                 "start_ms": cdr.start_ms, "duration_s": cdr.duration_s,
                 "disposition": cdr.disposition.value, "ring_s": cdr.ring_s,
                 "carrier": cdr.carrier} for cdr in expected.cdrs]
        assert got.cdrs.to_dicts() == rows


# --- numbers by column: what normalise() gives, for every common shape and its neighbours --

PREFIXES = ["", "+86", "0086", "86", "0", "+8686", "00860", "860", "+860", "00", "086", "+0"]


def generated_number(rng: random.Random) -> str:
    """A prefix and a national number of a CN shape or close to one, maybe with separators."""
    def digits(count: int) -> str:
        return "".join(rng.choice("0123456789") for _ in range(count))

    national = rng.choice([
        "1" + rng.choice("0123456789") + digits(9), "10" + digits(rng.choice([7, 8, 9])),
        "2" + digits(9), rng.choice("3456789") + digits(rng.choice([8, 9, 10, 11])),
        rng.choice(["400", "800", "401", "860", "086"]) + digits(7),
        "9" + rng.choice("56") + digits(rng.choice([2, 3, 4, 5])), "1" + digits(4),
        "100" + digits(rng.choice([2, 3])), "1" + rng.choice("0123") + digits(1),
        digits(rng.randint(1, 14)),
    ])
    text = rng.choice(PREFIXES[:5] if rng.random() < 0.8 else PREFIXES) + national
    separators = [" ", "-", "(", ")", ".", " ", "-", "(", ")", ".", "\u00a0"]
    return "".join(rng.choice(separators) + char if rng.random() < 0.1 else char
                   for char in text)


@pytest.mark.parametrize(("seed", "region"), [(0, "CN"), (1, "CN"), (2, "CN"), (3, "US")])
def test_numbers_by_column_are_what_normalise_gives(seed: int, region: str) -> None:
    rng = random.Random(seed)
    raws = [*NUMBERS, *(generated_number(rng) for _ in range(3000)), None]
    expected = []
    for raw in raws:
        try:
            expected.append(None if raw is None else normalise(raw, region))
        except NumberError:
            expected.append(None)
    assert normalise_numbers(pl.Series(raws, dtype=pl.String), region).to_list() == expected
    assert sum(value is not None for value in expected) > len(raws) // 4
