"""Arrow IPC batches of CDRs: the same contract, rejections and routing as JSON."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import orjson
import polars as pl
import pytest

from contracts import cdr_arrow
from contracts.cdr import validate_message
from contracts.cdr_arrow import ARROW_STREAM_CONTENT_TYPE, validate_arrow_message
from simulator.kafka import kafka_messages
from simulator.run import simulate
from simulator.scenario import builtin_scenario, with_overrides
from streams.pipeline.deadletter import SourcePosition
from streams.pipeline.ingest import RawMessage, ingest_cdrs, is_arrow_stream
from tests.unit.test_cdr_contract import good

ARROW = [("content-type", ARROW_STREAM_CONTENT_TYPE.encode())]
OPTIONS = dict(partitions=4, default_region="CN", max_message_bytes=1 << 20,
               max_original_bytes=1 << 20, now_ms=1)
TEXT_TIMES = {"cdr_id": pl.String, "caller": pl.String, "callee": pl.String,
              "start_time": pl.String, "duration_s": pl.Float64, "disposition": pl.String,
              "ring_s": pl.Float64, "carrier": pl.String}
EPOCH_TIMES = TEXT_TIMES | {"start_time": pl.Int64}


def arrow(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_ipc_stream(buffer)
    return buffer.getvalue()


def frame_of(records: list[dict], schema: dict) -> pl.DataFrame:
    return pl.DataFrame(records, schema=schema)


def messages(values: list[bytes], headers: list | None) -> list[RawMessage]:
    return [RawMessage(value, SourcePosition("cdr.raw", 0, offset), headers)
            for offset, value in enumerate(values)]


def cdr_rows(result) -> list[dict]:
    """The JSON path's good CDRs as rows of the Arrow path's frame."""
    return [{"cdr_id": cdr.cdr_id, "caller": cdr.caller, "callee": cdr.callee,
             "start_ms": cdr.start_ms, "duration_s": cdr.duration_s,
             "disposition": cdr.disposition.value, "ring_s": cdr.ring_s, "carrier": cdr.carrier}
            for cdr in result.cdrs]


def assert_same_as_json(records: list[dict], schema: dict) -> None:
    expected = validate_message(orjson.dumps(records))
    got = validate_arrow_message(arrow(frame_of(records, schema)))
    assert [(r.reason, r.index) for r in got.rejections] == [
        (r.reason, r.index) for r in expected.rejections]
    assert [orjson.loads(r.original) for r in got.rejections] == [
        orjson.loads(r.original) for r in expected.rejections]
    assert got.cdrs.to_dicts() == cdr_rows(expected)


# --- parity on simulator output ---------------------------------------------------------

@pytest.fixture(scope="module")
def simulated() -> tuple[list, list]:
    scenario = with_overrides(builtin_scenario("tiny"), duration="1h")
    chunk = next(simulate(scenario))
    built = {
        encoding: [m for m in kafka_messages(chunk, scenario, topic="cdr.raw",
                                             complaints_topic="complaints", batch_size=100,
                                             encoding=encoding)
                   if m.topic == "cdr.raw"]
        for encoding in ("json", "arrow")
    }
    return built["json"], built["arrow"]


def test_simulated_arrow_batches_route_exactly_like_json(simulated) -> None:
    json_messages, arrow_messages = simulated
    from_json = ingest_cdrs(messages([m.value for m in json_messages], None), **OPTIONS)
    from_arrow = ingest_cdrs(messages([m.value for m in arrow_messages], ARROW), **OPTIONS)
    assert from_json.rejected == from_arrow.rejected == 0
    assert from_arrow.valid == from_json.valid == sum(m.cdrs for m in arrow_messages)
    assert from_arrow.by_partition == from_json.by_partition
    assert len(from_arrow.by_partition) == 4


def test_simulated_arrow_batches_hold_raw_numbers_and_both_time_types(simulated) -> None:
    _, arrow_messages = simulated
    frames = [pl.read_ipc_stream(m.value) for m in arrow_messages]
    assert {str(frame.schema["start_time"]) for frame in frames} == {"Int64", "String"}
    assert all(m.headers == tuple(ARROW) for m in arrow_messages)
    callers = pl.concat([frame["caller"] for frame in frames])
    assert callers.str.contains("-").any() and callers.str.starts_with("0086").any()
    assert (~callers.str.starts_with("+")).mean() > 0.1


def test_mixed_encodings_in_one_ingest_keep_message_order(simulated) -> None:
    json_messages, arrow_messages = simulated
    interleaved = [
        RawMessage(chosen.value, SourcePosition("cdr.raw", 0, index), list(chosen.headers) or None)
        for index, chosen in enumerate(
            json_messages[i] if i % 2 else arrow_messages[i] for i in range(len(json_messages)))
    ]
    all_json = ingest_cdrs(messages([m.value for m in json_messages], None), **OPTIONS)
    assert ingest_cdrs(interleaved, **OPTIONS).by_partition == all_json.by_partition


# --- every field wrong, missing or null: same reasons as JSON ----------------------------

EPOCH = 1714528800000


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cdr_id", ""), ("cdr_id", "x" * 129), ("cdr_id", None),
        ("caller", "not-a-number"), ("caller", ""), ("caller", None), ("caller", "+999 123"),
        ("caller", "１３８００１３８０００"), ("callee", "???"), ("callee", "(0755) 1234-5678"),
        ("start_time", 1714528800), ("start_time", 4102444800000), ("start_time", None),
        ("duration_s", -1.0), ("duration_s", 1e9), ("duration_s", None),
        ("disposition", "HUNG_UP"), ("disposition", "answered"), ("disposition", None),
        ("ring_s", -0.5), ("ring_s", 604801.0), ("ring_s", None), ("carrier", None),
    ],
)
def test_a_bad_field_rejects_its_row_as_json_does(field: str, value: object) -> None:
    records = [good(cdr_id=name, start_time=EPOCH) for name in "abc"]
    records[1][field] = value
    assert_same_as_json(records, EPOCH_TIMES)


@pytest.mark.parametrize(
    "text",
    ["yesterday", "2024-05-01T10:00:00", "2024-05-01T10:00:60+08:00",
     "2024-02-30T10:00:00+08:00", "1999-12-31T23:59:59Z", "2024-05-01T10:00:00+24:00",
     "2024-05-01 10:00:00+08:00", "2024-05-01T10:00:00.123456+08:00",
     "2024-05-01T02:00:00.5Z", "2024-05-01T10:00:00.250-03:30", None],
)
def test_text_times_parse_as_json_does(text: str | None) -> None:
    records = [good(cdr_id=name) for name in "abc"]
    records[1]["start_time"] = text
    assert_same_as_json(records, TEXT_TIMES)


def test_talk_time_without_answer_and_unknown_extras() -> None:
    records = [good(cdr_id="a", disposition="BUSY", duration_s=5.0, trunk="T7"),
               good(cdr_id="b", disposition="NO_ANSWER", duration_s=0.0, trunk="T8")]
    assert_same_as_json(records, TEXT_TIMES | {"trunk": pl.String})


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [("duration_s", float("nan"), "[0] duration_s: must be between 0 and 604800, got nan"),
     ("ring_s", float("inf"), "[0] ring_s: must be between 0 and 604800, got inf")],
)
def test_values_json_cannot_carry_are_rejected_too(field, value, expected) -> None:
    result = validate_arrow_message(arrow(frame_of([good(**{field: value})], TEXT_TIMES)))
    assert [r.reason for r in result.rejections] == [expected]
    assert result.cdrs.height == 0


def test_a_column_without_any_value_means_every_row_lacks_it() -> None:
    frame = frame_of([good(cdr_id="a"), good(cdr_id="b")], TEXT_TIMES)
    no_callers = validate_arrow_message(arrow(frame.with_columns(caller=pl.lit(None))))
    assert [r.reason for r in no_callers.rejections] == ["[0] caller: null", "[1] caller: null"]
    optional = frame.with_columns(ring_s=pl.lit(None), carrier=pl.lit(None))
    assert optional.schema["ring_s"] == pl.Null
    result = validate_arrow_message(arrow(optional))
    assert result.rejections == [] and result.cdrs["ring_s"].to_list() == [None, None]
    without = validate_arrow_message(arrow(frame.drop("ring_s", "carrier")))
    assert without.rejections == [] and without.cdrs["carrier"].to_list() == [None, None]


def test_other_arrow_types_the_contract_allows() -> None:
    records = [good(cdr_id="a", start_time=EPOCH, duration_s=42, ring_s=4),
               good(cdr_id="b", start_time=EPOCH + 1, disposition="BUSY", duration_s=0,
                    ring_s=None)]
    expected = cdr_rows(validate_message(orjson.dumps(records)))
    frame = frame_of(records, EPOCH_TIMES).with_columns(
        pl.col("cdr_id").cast(pl.Categorical),
        pl.col("disposition").cast(pl.Enum(["ANSWERED", "BUSY"])),
        pl.col("duration_s").cast(pl.Int32),
        pl.col("ring_s").cast(pl.Int16),
        pl.col("carrier").cast(pl.Categorical),
        pl.col("start_time").cast(pl.UInt64),
        blob=pl.lit(b"\x00\xff"),
        tags=pl.lit(["x", "y"]),
    )
    assert validate_arrow_message(arrow(frame)).cdrs.to_dicts() == expected
    as_timestamps = frame.with_columns(
        pl.col("start_time").cast(pl.Int64).mul(1000).cast(pl.Datetime("us", "UTC"))
        .dt.convert_time_zone("Asia/Shanghai"))
    assert validate_arrow_message(arrow(as_timestamps)).cdrs.to_dicts() == expected


def test_an_out_of_range_timestamp_is_explained_in_epoch_ms() -> None:
    moment = datetime(1990, 1, 1, tzinfo=UTC)
    frame = frame_of([good()], TEXT_TIMES).with_columns(
        start_time=pl.lit(moment).dt.cast_time_unit("ms"))
    (rejection,) = validate_arrow_message(arrow(frame)).rejections
    assert rejection.reason == (
        "[0] start_time: 631152000000 is outside 2000-2100; epoch values must be in milliseconds")
    assert orjson.loads(rejection.original)["start_time"] == 631152000000


def test_a_bad_row_keeps_its_extra_columns_in_the_dead_letter() -> None:
    frame = frame_of([good(cdr_id="a", caller="???")], TEXT_TIMES).with_columns(
        blob=pl.lit(b"\x01"))
    (rejection,) = validate_arrow_message(arrow(frame)).rejections
    assert rejection.index == 0
    assert orjson.loads(rejection.original) | {"blob": None} == (
        good(cdr_id="a", caller="???", ring_s=4.0) | {"blob": None})


# --- whole-message failures -------------------------------------------------------------

@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda f: f.drop("caller", "disposition"),
         "Arrow batch lacks required column(s): caller, disposition"),
        (lambda f: f.with_columns(pl.col("duration_s").cast(pl.String)),
         "Arrow column duration_s is String; expected integer or float"),
        (lambda f: f.with_columns(start_time=pl.lit(1.7e12)),
         "Arrow column start_time is Float64; expected epoch-ms integer, RFC 3339 text"),
        (lambda f: f.with_columns(start_time=pl.lit(datetime(2024, 5, 1))),  # noqa: DTZ001
         "Arrow column start_time is Datetime(time_unit='us', time_zone=None); expected"),
        (lambda f: f.with_columns(caller=pl.lit(13800138000)),
         "Arrow column caller is Int64; expected text"),
        (lambda f: f.with_columns(disposition=pl.lit(True)),
         "Arrow column disposition is Boolean; expected text"),
        (lambda f: f.with_columns(carrier=pl.lit(5)), "Arrow column carrier is Int32"),
        (lambda f: f.clear(), "empty batch: an Arrow stream with no row"),
    ],
)
def test_schema_problems_reject_the_whole_message(change, expected: str) -> None:
    payload = arrow(change(frame_of([good(cdr_id="a"), good(cdr_id="b")], TEXT_TIMES)))
    result = validate_arrow_message(payload)
    (rejection,) = result.rejections
    assert rejection.reason.startswith(expected)
    assert rejection.index is None and rejection.original == payload
    assert result.cdrs.height == 0


def test_garbage_with_the_arrow_header_is_dead_lettered_whole() -> None:
    payload = arrow(frame_of([good()], TEXT_TIMES))
    bad = [b"", b"\x00garbage", b'[{"cdr_id": "json sent as arrow"}]', payload[: len(payload) // 2],
           payload[:7] + b"\xff" * 20 + payload[27:]]
    outcome = ingest_cdrs(messages(bad, ARROW), **OPTIONS)
    assert outcome.valid == 0 and outcome.rejected == len(bad)
    letters = [orjson.loads(value) for _, value in outcome.deadletters]
    assert all(letter["reason"].startswith("not a valid Arrow IPC stream")
               for letter in letters), letters
    assert [letter["batch_index"] for letter in letters] == [None] * len(bad)
    assert validate_arrow_message(None).rejections[0].reason == "empty message (no value)"
    too_big = validate_arrow_message(payload, max_bytes=100).rejections[0].reason
    assert too_big == f"message of {len(payload)} bytes exceeds the limit of 100 bytes"


# --- the header, the dead letter, a disagreement ----------------------------------------

@pytest.mark.parametrize(
    ("headers", "is_arrow"),
    [
        (ARROW, True),
        ({"content-type": ARROW_STREAM_CONTENT_TYPE.encode()}, True),
        ([("Content-Type", b"Application/vnd.apache.arrow.stream; x=1")], True),
        ([("callguard-source-ms", b"1"), (b"content-type", ARROW_STREAM_CONTENT_TYPE)], True),
        ([("content-type", b"application/json")], False),
        ([("content-type", None)], False),
        ([("x-content-type", ARROW_STREAM_CONTENT_TYPE.encode())], False),
        ([], False),
        (None, False),
    ],
)
def test_the_content_type_header_chooses_the_decoder(headers, is_arrow: bool) -> None:
    assert is_arrow_stream(headers) is is_arrow


def test_json_with_a_json_header_or_none_stays_json() -> None:
    payload = orjson.dumps([good()])
    for headers in (None, [("content-type", b"application/json")]):
        assert ingest_cdrs(messages([payload], headers), **OPTIONS).valid == 1


def test_an_arrow_row_dead_letter_names_its_index_and_holds_the_row() -> None:
    frame = frame_of([good(cdr_id="a"), good(cdr_id="b", duration_s=-3.0)], TEXT_TIMES)
    outcome = ingest_cdrs(messages([arrow(frame)], ARROW), **OPTIONS)
    assert outcome.valid == 1 and outcome.rejected == 1
    ((key, value),) = outcome.deadletters
    letter = orjson.loads(value)
    assert key == b"cdr.raw:0:0" and letter["batch_index"] == 1
    assert letter["reason"] == "[1] duration_s: must be between 0 and 604800, got -3.0"


def test_a_row_the_json_rules_accept_is_kept_in_its_place(monkeypatch, caplog) -> None:
    monkeypatch.setattr(cdr_arrow, "_valid_rows", lambda _latest=None: pl.col("cdr_id") != "b")
    records = [good(cdr_id=name, caller="138-0013-8000") for name in "abcd"]
    result = validate_arrow_message(arrow(frame_of(records, TEXT_TIMES)))
    assert result.rejections == []
    assert result.cdrs.to_dicts() == cdr_rows(validate_message(orjson.dumps(records)))
    assert "refused rows the JSON rules accept" in caplog.text


def test_a_pyarrow_stream_of_several_compressed_record_batches() -> None:
    import pyarrow as pa
    import pyarrow.ipc

    records = [good(cdr_id=name, start_time=EPOCH) for name in "abcd"]
    records[3]["caller"] = "???"
    table = pa.Table.from_pylist(records).cast(pa.schema([
        ("cdr_id", pa.string()), ("caller", pa.large_string()), ("callee", pa.string()),
        ("start_time", pa.int64()), ("duration_s", pa.float64()),
        ("disposition", pa.dictionary(pa.int8(), pa.string())), ("ring_s", pa.int64()),
        ("carrier", pa.string()),
    ]))
    sink = pa.BufferOutputStream()
    options = pyarrow.ipc.IpcWriteOptions(compression="lz4")
    with pyarrow.ipc.new_stream(sink, table.schema, options=options) as writer:
        for batch in table.to_batches(max_chunksize=2):
            writer.write_batch(batch)
    result = validate_arrow_message(sink.getvalue().to_pybytes())
    expected = validate_message(orjson.dumps(records))
    assert result.cdrs.to_dicts() == cdr_rows(expected)
    assert [(r.reason, r.index) for r in result.rejections] == [
        (r.reason, r.index) for r in expected.rejections] == [(expected.rejections[0].reason, 3)]


def test_the_simulate_cli_passes_the_encoding_on(monkeypatch) -> None:
    from typer.testing import CliRunner

    from simulator import cli
    from simulator.kafka import ProduceStats

    seen = {}

    async def produce(scenario, bootstrap, **options) -> ProduceStats:
        seen.update(options, bootstrap=bootstrap)
        return ProduceStats(1, 0, 1, 0.1)

    monkeypatch.setattr(cli, "produce_to_kafka", produce)
    tiny = ["--scenario", "simulator/scenarios/tiny.yaml", "--kafka", "broker:9092", "-q"]
    result = CliRunner().invoke(cli.app, [*tiny, "--encoding", "arrow"])
    assert result.exit_code == 0, result.output
    assert seen["encoding"] == "arrow" and seen["bootstrap"] == "broker:9092"
    assert CliRunner().invoke(cli.app, tiny).exit_code == 0 and seen["encoding"] == "json"
    assert CliRunner().invoke(cli.app, [*tiny, "--encoding", "xml"]).exit_code == 2


# --- the edges: time bounds, a call to itself, invisible characters -----------------------

@pytest.mark.parametrize(
    ("field", "value"),
    [("callee", "+86 138-0013-8000"), ("callee", "13800138000"),
     ("caller", "\u202e13800138000"), ("callee", "010\u200d12345678"),
     ("caller", "\ufeff+44 20 7946 0958")],
)
def test_a_call_to_itself_or_an_invisible_character_rejects_its_row_as_json_does(
    field: str, value: str
) -> None:
    records = [good(cdr_id=name, start_time=EPOCH) for name in "abc"]
    records[1][field] = value
    assert_same_as_json(records, EPOCH_TIMES)
    (rejection,) = validate_arrow_message(arrow(frame_of(records, EPOCH_TIMES))).rejections
    assert rejection.reason.startswith(
        ("[1] callee: the same number as caller", f"[1] {field}: contains U+"))


INSTANTS_AT_THE_BOUNDS = [
    (datetime(1999, 12, 31, 23, 59, 59, 999_600, tzinfo=UTC), None),
    (datetime(2000, 1, 1, tzinfo=UTC), 946_684_800_000),
    (datetime(2099, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), 4_102_444_799_999),
    (datetime(2100, 1, 1, tzinfo=UTC), None),
]


@pytest.mark.parametrize(("moment", "start_ms"), INSTANTS_AT_THE_BOUNDS)
def test_an_instant_at_the_bounds_is_taken_alike_as_timestamp_text_or_json(
    moment: datetime, start_ms: int | None
) -> None:
    records = [good(cdr_id="a", start_time=moment.isoformat())]
    texts = validate_arrow_message(arrow(frame_of(records, TEXT_TIMES)))
    stamps = validate_arrow_message(arrow(frame_of(records, TEXT_TIMES).with_columns(
        pl.col("start_time").str.to_datetime(time_unit="us", time_zone="UTC"))))
    from_json = validate_message(orjson.dumps(records))
    assert texts.cdrs["start_ms"].to_list() == stamps.cdrs["start_ms"].to_list() == [
        cdr.start_ms for cdr in from_json.cdrs] == ([] if start_ms is None else [start_ms])
    refused = [[r.reason.endswith("is outside 2000-2100; epoch values must be in milliseconds")
                for r in result.rejections] for result in (texts, stamps, from_json)]
    assert refused == ([[True]] * 3 if start_ms is None else [[]] * 3)
