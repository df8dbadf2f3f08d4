"""JSON batches validated by column: the same outcome as the per-record contract, always."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import orjson
import pytest

from contracts import cdr_json
from contracts.by_caller import CdrColumns
from contracts.cdr import validate_message
from contracts.cdr_json import validate_json_messages
from contracts.number_keys import number_texts
from contracts.numbers import NumberError, normalise
from streams.pipeline import ingest
from streams.pipeline.deadletter import SourcePosition
from streams.pipeline.ingest import RawMessage, ingest_cdrs
from tests.unit.test_cdr_contract import good
from tests.unit.test_numbers import NORMALISATIONS

NUMBERS = [raw for raw, _ in NORMALISATIONS] + [
    "", "   ", "abc", "+86", "1380013800012345678", "--", "+8613800138000", "+861012345678",
    "+862161234567", "+8675586013388", "+864008123123", "+8612345678901", "+86101234567",
    "+8610123456789", "86 138 0013 8000", "0013800138000", "+86１３８００１３８０００",
    "+86138٠٠١٣٨٠٠٠", "١٢٣٤٥", "+8613800138000\n", "13800138000 ", "+44 20 7946 0958",
    "010", "0", "95588a", "(010)12345678", "+86-400-812-3123", "1" * 20,
    "\u202e13800138000", "138\u200b0013\u200b8000", "\ufeff010-12345678", "95588\u200f",
]
TIMES: list[Any] = [
    "2024-05-01T10:00:00+08:00", "2024-05-01T02:00:00Z", "2024-05-01T02:00:00.123Z",
    "2024-05-01T02:00:00.123456-05:30", "2024-05-01T02:00:00", "2024-05-01 02:00:00+00:00",
    "2024-05-01T02:00:60Z", "2024-13-01T02:00:00Z", "1999-12-31T23:59:59.999Z",
    "2000-01-01T00:00:00Z", "2099-12-31T23:59:59.999+00:00", "2100-01-01T00:00:00Z",
    "2024-05-01T02:00:00+14:00", "2024-05-01T02:00:00-23:59", "2024-05-01T02:00:00+0800",
    "20240501T020000Z", "yesterday", "", "0001-01-01T00:00:00+01:00",
    1714528800000, 1714528800, 946_684_800_000, 946_684_799_999, 4_102_444_800_000,
    4_102_444_799_999, -1, 0, 2**63 - 1, 2**64 - 1, 1714528800000.0, True, False,
    "1999-12-31T23:59:59.999600Z", "2099-12-31T23:59:59.999999Z", "2099-12-31T23:59:59.9995Z",
    "2024-05-01T02:00:00.999999+08:00",
]
SECONDS: list[Any] = [0, 0.0, -0.0, 1, 42.5, 604800, 604800.0, 604800.5, 604801, -1, -0.5,
                      1e300, 2**64 - 1, "12", True, False, [], {}]
DISPOSITIONS: list[Any] = ["ANSWERED", "NO_ANSWER", "BUSY", "REJECTED", "FAILED", "answered",
                           "HUNG_UP", "", 1, True]
OTHERS: list[Any] = [None, 17, 1.5, True, [], {}, ["138"], {"a": 1}]


def mutated(rng: random.Random, number: int) -> Any:
    """A record: mostly good, often with one or more fields wrong, missing or null."""
    if rng.random() < 0.03:
        return rng.choice(["junk", 17, None, [good()], 1.5])
    record = good(cdr_id=f"c-{number}", caller=rng.choice(NUMBERS[:26]),
                  callee=rng.choice(NUMBERS[:26]), start_time=rng.choice(TIMES[:4] + TIMES[19:20]),
                  duration_s=rng.choice([0, 0.0, 12, 42.5]),
                  disposition=rng.choice(DISPOSITIONS[:5]), ring_s=rng.choice([None, 3, 4.5]))
    if record["disposition"] != "ANSWERED" and rng.random() < 0.9:
        record["duration_s"] = 0
    for _ in range(rng.choice([0, 0, 0, 1, 1, 2])):
        field = rng.choice(list(record) + ["ring_s", "carrier"])
        pool = {"cdr_id": ["", "x" * 128, "x" * 129, "é" * 128, 5],
                "caller": NUMBERS, "callee": NUMBERS, "start_time": TIMES,
                "duration_s": SECONDS, "ring_s": SECONDS, "disposition": DISPOSITIONS,
                "carrier": ["CMCC", "", None, 5, ["x"]]}[field]
        roll = rng.random()
        if roll < 0.1:
            record.pop(field, None)
        elif roll < 0.2:
            record[field] = None
        elif roll < 0.3:
            record[field] = rng.choice(OTHERS)
        else:
            record[field] = rng.choice(pool)
    if rng.random() < 0.05:
        record["extra"] = [1, 2]
    return record


def message(rng: random.Random, first: int) -> bytes | None:
    roll = rng.random()
    if roll < 0.03:
        return rng.choice([None, b"", b"x" * 100, b"[]", b"42", b'"a"', b"null", b'{"a":',
                           b"\xff\xfe", orjson.dumps([good()] * 40)])  # the last: too large
    if roll < 0.2:
        return orjson.dumps(mutated(rng, first))
    return orjson.dumps([mutated(rng, first + i) for i in range(rng.choice([1, 2, 7, 60]))])


def reference(raws: list[bytes | None]) -> tuple[CdrColumns, list[list[tuple]]]:
    columns, rejections = CdrColumns(), []
    for raw in raws:
        result = validate_message(raw, max_bytes=MAX_BYTES)  # type: ignore[arg-type]
        for cdr in result.cdrs:
            columns.append(cdr)
        rejections.append([(r.reason, r.index, r.original) for r in result.rejections])
    return columns, rejections


MAX_BYTES = 4000


@pytest.mark.parametrize("seed", range(40))
def test_columns_give_what_the_record_path_gives(seed: int) -> None:
    rng = random.Random(seed)
    raws = [message(rng, 1000 * n) for n in range(rng.choice([1, 3, 20]))]
    expected_cdrs, expected_rejections = reference(raws)
    got = validate_json_messages(raws, max_bytes=MAX_BYTES)
    assert [[(r.reason, r.index, r.original) for r in rejections]
            for rejections in got.rejections] == expected_rejections
    for name in ("cdr_id", "caller", "callee", "start_ms", "duration_s", "disposition",
                 "ring_s"):
        values = getattr(got.cdrs, name).tolist()
        expected = getattr(expected_cdrs, name)
        if name in ("caller", "callee"):  # routed columns hold numbers as keys
            expected = number_texts(expected)
        assert values == expected, name
        assert [type(v) for v in values] == [type(v) for v in expected], name
        # -0.0 and 0.0 compare equal but encode differently
        assert orjson.dumps(values) == orjson.dumps(expected), name


def test_a_clean_simulator_like_batch_is_accepted_whole() -> None:
    records = [good(cdr_id=str(i), caller=f"+86138{i:08d}", callee=f"010-{i:08d}",
                    start_time=1714528800000 + i) for i in range(500)]
    got = validate_json_messages([orjson.dumps(records)])
    assert got.rejections == [[]] and len(got.cdrs) == 500


def test_no_message_and_no_record() -> None:
    got = validate_json_messages([])
    assert got.rejections == [] and len(got.cdrs) == 0
    got = validate_json_messages([b"[]", None])
    assert [[r.reason for r in rs] for rs in got.rejections] == [
        ["empty batch: a JSON array with no record"], ["empty message (no value)"]]


@pytest.mark.parametrize("polars_from", [0, 10**9])  # every column through polars, or none
@pytest.mark.parametrize("region", ["CN", "US", "GB"])
def test_the_number_column_is_normalise(
    region: str, polars_from: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cdr_json, "_POLARS_NUMBERS", polars_from)
    rng = random.Random(7)
    generated = [rng.choice(["+86", "0086", "86", "0", "", "+1", "+44"])
                 + "".join(rng.choice("0123456789") for _ in range(rng.randint(3, 13)))
                 for _ in range(3000)]
    raws = NUMBERS + generated
    expected = []
    for raw in raws:
        try:
            expected.append(normalise(raw, region))
        except NumberError:
            expected.append(None)
    assert cdr_json._normalised(raws, region) == expected


def ingest_both(raws: list[bytes | None], monkeypatch: pytest.MonkeyPatch,
                partitions: int = 4) -> tuple[ingest.IngestOutcome, ingest.IngestOutcome]:
    messages = [RawMessage(raw, SourcePosition("cdr.raw", 0, offset))  # type: ignore[arg-type]
                for offset, raw in enumerate(raws)]
    options = dict(partitions=partitions, default_region="CN", max_message_bytes=MAX_BYTES,
                   max_original_bytes=64, now_ms=1)
    monkeypatch.setattr(ingest, "_COLUMNAR_MIN_BYTES", 10**12)
    by_record = ingest_cdrs(messages, **options)  # type: ignore[arg-type]
    monkeypatch.setattr(ingest, "_COLUMNAR_MIN_BYTES", 0)
    by_column = ingest_cdrs(messages, **options)  # type: ignore[arg-type]
    return by_record, by_column


@pytest.mark.parametrize("seed", range(10))
def test_ingest_routes_and_dead_letters_the_same_either_way(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(100 + seed)
    raws = [message(rng, 1000 * n) for n in range(30)]
    by_record, by_column = ingest_both(raws, monkeypatch, partitions=rng.choice([1, 3, 8]))
    assert by_column.by_partition == by_record.by_partition
    assert by_column.deadletters == by_record.deadletters
    assert (by_column.valid, by_column.rejected) == (by_record.valid, by_record.rejected)
    assert by_record.valid > 0 and by_record.rejected > 0


def test_a_disagreement_keeps_the_record_in_its_place(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Should the column rules refuse a good record, the record path's answer wins."""
    from contracts import cdr_json

    monkeypatch.setattr(cdr_json, "_MAX_ID_LENGTH", 1)  # refuses "a-2" only
    records = [good(cdr_id="a"), good(cdr_id="a-2", caller="010-12345678", callee="95588"),
               good(cdr_id="b")]
    got = validate_json_messages([orjson.dumps(records)])
    assert got.rejections == [[]]
    assert got.cdrs.cdr_id.tolist() == ["a", "a-2", "b"]
    assert got.cdrs.caller.tolist()[1] == "+861012345678"
    assert np.issubdtype(got.cdrs.start_ms.dtype, np.integer)
    assert "refused a record the JSON rules accept" in caplog.text


def rfc3339_text(rng: random.Random) -> str:
    """A text in one of the shapes read by column, often out of range or slightly wrong."""
    year = rng.choice([1899, 1900, 1970, 1999, 2000, 2024, 2099, 2100, 2199, 2200, 0, 9999])
    fields = [year, rng.randint(0, 13), rng.randint(0, 32), rng.randint(0, 24),
              rng.randint(0, 60), rng.randint(0, 60)]
    if rng.random() < 0.7:  # mostly in range, leap days included
        fields[1:] = [rng.randint(1, 12), rng.choice([1, 28, 29, 30, 31, rng.randint(1, 31)]),
                      rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)]
    text = "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}".format(*fields)
    digits = rng.choice([0, 3, 6])
    if digits:
        text += "." + "".join(rng.choice("0123456789") for _ in range(digits))
    if rng.random() < 0.3:
        text += "Z"
    else:
        hours, minutes = rng.choice([(0, 0), (8, 0), (5, 30), (23, 59), (24, 0), (12, 60)])
        text += f"{rng.choice('+-')}{hours:02d}:{minutes:02d}"
    if rng.random() < 0.15:  # one character replaced: a separator, a letter, a non-ASCII digit
        at = rng.randrange(len(text))
        text = text[:at] + rng.choice(" -:.Tt+Z0٣x") + text[at + 1:]
    return text


@pytest.mark.parametrize("seed", range(5))
def test_texts_are_read_by_column_as_one_at_a_time(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from contracts import cdr_json

    rng = random.Random(seed)
    texts = [rfc3339_text(rng) for _ in range(3000)] + [t for t in TIMES if isinstance(t, str)]
    expected = [cdr_json._text_ms(text) for text in texts]
    alone = []
    monkeypatch.setattr(cdr_json, "_text_ms", lambda text: alone.append(text) or expected[
        texts.index(text)])
    assert cdr_json._texts_ms(texts).tolist() == expected
    assert len(alone) < len(texts) * 3 / 4  # many are of a shape read by column


def test_common_texts_need_no_parse_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from contracts import cdr_json

    texts = ["2018-07-02T00:00:05.071+08:00", "2024-02-29T23:59:59Z", "2024-05-01T02:00:00-05:30",
             "2099-12-31T23:59:59.999999+00:00", "2000-01-01T00:00:00.000Z",
             "1999-12-31T16:00:00.123456Z"]
    expected = [cdr_json._text_ms(text) for text in texts]
    monkeypatch.setattr(cdr_json, "_text_ms", lambda text: pytest.fail(f"parsed alone: {text}"))
    assert cdr_json._texts_ms(texts).tolist() == expected


def test_mixed_instants_keep_their_rows() -> None:
    from contracts import cdr_json

    instants: list[Any] = ["2024-05-01T10:00:00+08:00", 1714528800000, "yesterday", 2**64,
                           "2024-05-01T02:00:00.5Z", -(2**70), 946_684_800_000]
    start_ms, known = cdr_json._epoch_ms(instants)
    assert known.tolist() == [True, True, True, False, True, False, True]
    assert start_ms[known].tolist() == [1714528800000, 1714528800000, -1, 1714528800500,
                                        946_684_800_000]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("arrays", [False, True])
def test_messages_alike_are_decoded_together(
    seed: int, arrays: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All objects or all arrays: decoded without a call per message, with the same outcome."""
    from contracts import cdr_json

    rng = random.Random(500 + seed)
    records = [[mutated(rng, 100 * n + i) for i in range(rng.choice([1, 3, 9]))]
               for n in range(rng.choice([1, 5, 40]))]
    if not arrays:  # a message of one record: an object (any other value is decoded alone)
        records = [[rs[0] if isinstance(rs[0], dict) else good()] for rs in records]
    raws: list[bytes | None] = [orjson.dumps(rs if arrays else rs[0]) for rs in records]
    expected_cdrs, expected_rejections = reference(raws)
    monkeypatch.setattr(cdr_json, "_decoded_each", lambda *_: pytest.fail("decoded one by one"))
    got = validate_json_messages(raws, max_bytes=MAX_BYTES)
    assert [[(r.reason, r.index, r.original) for r in rejections]
            for rejections in got.rejections] == expected_rejections
    assert got.cdrs.cdr_id.tolist() == expected_cdrs.cdr_id
    assert got.cdrs.caller.tolist() == number_texts(expected_cdrs.caller)
    assert got.cdrs.start_ms.tolist() == expected_cdrs.start_ms


@pytest.mark.parametrize("odd", [None, b"[]", b"42", b"{", b"x" * 5000, b'[{"a": 1}]'])
def test_one_odd_message_is_decoded_on_its_own(odd: bytes | None) -> None:
    raws = [orjson.dumps(good(cdr_id=str(n))) for n in range(3)]
    raws.insert(1, odd)  # type: ignore[arg-type]
    got = validate_json_messages(raws, max_bytes=MAX_BYTES)
    expected_cdrs, expected_rejections = reference(raws)  # type: ignore[arg-type]
    assert [[(r.reason, r.index) for r in rs] for rs in got.rejections] == [
        [(reason, index) for reason, index, _ in rs] for rs in expected_rejections]
    assert got.cdrs.cdr_id.tolist() == expected_cdrs.cdr_id


def test_the_edges_are_held_by_the_column_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bounds, a call to itself, invisible characters: the columns refuse what JSON refuses."""
    monkeypatch.setattr(cdr_json, "_keep", lambda *_: pytest.fail("the column rules disagree"))
    records = [
        good(cdr_id="first", start_time="2000-01-01T00:00:00.000000Z"),
        good(cdr_id="last", start_time="2099-12-31T23:59:59.999999Z"),
        good(cdr_id="late", start_time="2100-01-01T07:59:59.999999+08:00"),
        good(cdr_id="early", start_time="1999-12-31T23:59:59.999600Z"),
        good(cdr_id="self", caller="+8613800138000", callee="138-0013-8000"),
        good(cdr_id="bidi", callee="\u202e010-12345678"),
        good(cdr_id="cut", start_time="2024-05-01T02:00:00.000999Z"),
    ]
    got = validate_json_messages([orjson.dumps(records)])
    assert got.cdrs.cdr_id.tolist() == ["first", "last", "late", "cut"]
    assert got.cdrs.start_ms.tolist() == [
        946_684_800_000, 4_102_444_799_999, 4_102_444_799_999, 1_714_528_800_000]
    assert [r.reason for r in got.rejections[0]] == [
        "[3] start_time: '1999-12-31T23:59:59.999600Z' is outside 2000-2100; "
        "epoch values must be in milliseconds",
        "[4] callee: the same number as caller (+8613800138000)",
        "[5] callee: contains U+202E, an invisible format character (bidirectional control, "
        "zero-width character or byte-order mark) ('\\u202e010-12345678')",
    ]
    expected_cdrs, expected_rejections = reference([orjson.dumps(records)])
    assert got.cdrs.start_ms.tolist() == expected_cdrs.start_ms
    assert [[(r.reason, r.index, r.original) for r in got.rejections[0]]] == expected_rejections
