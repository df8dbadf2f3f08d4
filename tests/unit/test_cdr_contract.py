"""The CDR validator on good and bad input."""

from __future__ import annotations

import orjson
import pytest

from contracts.cdr import CDR, Disposition, validate_message


def good(**overrides) -> dict:
    fields = {
        "cdr_id": "c-1",
        "caller": "13800138000",
        "callee": "010-12345678",
        "start_time": "2024-05-01T10:00:00+08:00",
        "duration_s": 42.5,
        "disposition": "ANSWERED",
        "ring_s": 4,
        "carrier": "CMCC",
    }
    fields.update(overrides)
    return fields


def one(fields: dict) -> CDR:
    result = validate_message(orjson.dumps(fields))
    assert result.rejections == []
    (cdr,) = result.cdrs
    return cdr


def reason(payload: bytes) -> str:
    result = validate_message(payload)
    assert result.cdrs == []
    (rejection,) = result.rejections
    assert rejection.original == payload
    return rejection.reason


def test_good_cdr_is_normalised() -> None:
    cdr = one(good())
    assert cdr == CDR(
        cdr_id="c-1",
        caller="+8613800138000",
        callee="+861012345678",
        start_ms=1714528800000,
        duration_s=42.5,
        disposition=Disposition.ANSWERED,
        ring_s=4.0,
        carrier="CMCC",
    )


def test_epoch_ms_and_offsets_give_the_same_instant() -> None:
    in_beijing = one(good(start_time="2024-05-01T10:00:00+08:00"))
    in_utc = one(good(start_time="2024-05-01T02:00:00Z"))
    as_epoch = one(good(start_time=1714528800000))
    assert in_beijing.start_ms == in_utc.start_ms == as_epoch.start_ms == 1714528800000


def test_optional_fields_and_unknown_extras() -> None:
    fields = good(duration_s=0, disposition="NO_ANSWER", trunk="T7", imsi_hash="x")
    del fields["ring_s"], fields["carrier"]
    cdr = one(fields)
    assert cdr.ring_s is None and cdr.carrier is None and not cdr.answered


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("cdr_id", 17, "cdr_id: must be a string, got int"),
        ("cdr_id", "", "cdr_id: must be 1 to 128 characters"),
        ("caller", 13800138000, "caller: must be a string, got int"),
        ("caller", "not-a-number", "caller: not a phone number"),
        ("callee", ["138"], "callee: must be a string, got list"),
        ("start_time", "yesterday", "start_time: not RFC 3339"),
        ("start_time", "2024-05-01T10:00:00", "start_time: RFC 3339 needs a UTC offset"),
        ("start_time", 1714528800, "epoch values must be in milliseconds"),
        ("start_time", 1714528800.5, "start_time: must be RFC 3339 text or epoch milliseconds"),
        ("start_time", True, "got bool"),
        ("duration_s", "12", "duration_s: must be a number of seconds, got str"),
        ("duration_s", -1, "duration_s: must be between 0 and"),
        ("duration_s", False, "got bool"),
        ("disposition", "HUNG_UP", "disposition: must be one of ANSWERED, NO_ANSWER"),
        ("disposition", 1, "disposition: must be one of"),
        ("ring_s", "3", "ring_s: must be a number of seconds, got str"),
        ("ring_s", -0.5, "ring_s: must be between"),
        ("carrier", 5, "carrier: must be a string, got int"),
    ],
)
def test_wrong_types_and_values(field: str, value: object, expected: str) -> None:
    assert expected in reason(orjson.dumps(good(**{field: value})))


@pytest.mark.parametrize(
    "field", ["cdr_id", "caller", "callee", "start_time", "duration_s", "disposition"]
)
def test_missing_and_null_required_fields(field: str) -> None:
    fields = good()
    del fields[field]
    assert reason(orjson.dumps(fields)).endswith(f"{field}: missing")
    assert reason(orjson.dumps(good(**{field: None}))).endswith(f"{field}: null")


def test_talk_time_without_answer_is_rejected() -> None:
    assert "talk time must be 0 when disposition is BUSY" in reason(
        orjson.dumps(good(disposition="BUSY", duration_s=5))
    )


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", "not valid UTF-8 JSON"),
        (b"\x00\x01\x02garbage", "not valid UTF-8 JSON"),
        (b'{"cdr_id": "\xff\xfe"}', "not valid UTF-8 JSON"),
        (b'{"cdr_id": "a",', "not valid UTF-8 JSON"),
        (b"42", "expected a JSON object or array, got int"),
        (b'"a cdr"', "expected a JSON object or array, got str"),
        (b"null", "expected a JSON object or array, got NoneType"),
        (b"[]", "empty batch"),
    ],
)
def test_whole_message_failures(payload: bytes, expected: str) -> None:
    assert expected in reason(payload)


def test_ten_megabyte_message_is_rejected_whole() -> None:
    batch = [good(cdr_id=f"c-{i}") for i in range(60_000)]
    payload = orjson.dumps(batch)
    assert len(payload) > 10 * 1024 * 1024
    assert "exceeds the limit of 8388608 bytes" in reason(payload)


def test_batch_keeps_good_cdrs_and_rejects_only_bad_ones() -> None:
    batch = [good(cdr_id="a"), good(cdr_id="b", caller="???"), "junk", good(cdr_id="d")]
    result = validate_message(orjson.dumps(batch))
    assert [cdr.cdr_id for cdr in result.cdrs] == ["a", "d"]
    assert [(r.index, r.reason.split(":")[0]) for r in result.rejections] == [
        (1, "[1] caller"),
        (2, "[2] batch element is str, not a JSON object"),
    ]
    assert orjson.loads(result.rejections[0].original)["cdr_id"] == "b"


def test_round_trip_through_json_dict() -> None:
    cdr = one(good())
    assert one(cdr.to_json_dict()) == cdr


# --- the edges: time bounds, a call to itself, invisible characters -----------------------

OUT_OF_BOUNDS = "is outside 2000-2100; epoch values must be in milliseconds"


@pytest.mark.parametrize(
    ("start_time", "start_ms"),
    [
        (946_684_800_000, 946_684_800_000),
        ("2000-01-01T00:00:00Z", 946_684_800_000),
        ("1999-12-31T19:00:00-05:00", 946_684_800_000),  # written in 1999, 2000 in UTC
        (4_102_444_799_999, 4_102_444_799_999),
        ("2099-12-31T23:59:59.999Z", 4_102_444_799_999),
        ("2099-12-31T23:59:59.9995Z", 4_102_444_799_999),  # cut, not rounded into 2100
        ("2099-12-31T23:59:59.999999Z", 4_102_444_799_999),
        ("2100-01-01T07:59:59+08:00", 4_102_444_799_000),  # written in 2100, 2099 in UTC
    ],
)
def test_the_first_and_last_instants_accepted_in_any_form(
    start_time: object, start_ms: int
) -> None:
    assert one(good(start_time=start_time)).start_ms == start_ms


@pytest.mark.parametrize(
    "start_time",
    [
        946_684_799_999, "1999-12-31T23:59:59.999Z", "1999-12-31T23:59:59.9996Z",
        "1999-12-31T23:59:59.999999+00:00", "2000-01-01T07:59:59.999+08:00",
        4_102_444_800_000, "2100-01-01T00:00:00Z", "2099-12-31T16:00:00-08:00",
    ],
)
def test_instants_outside_the_bounds_are_refused_alike_in_any_form(start_time: object) -> None:
    assert reason(orjson.dumps(good(start_time=start_time))) == (
        f"start_time: {start_time!r} {OUT_OF_BOUNDS}")


def test_a_time_between_two_milliseconds_is_cut_to_the_earlier() -> None:
    assert one(good(start_time="2024-05-01T02:00:00.9999Z")).start_ms == 1714528800999
    assert one(good(start_time="2024-05-01T10:00:00.000500+08:00")).start_ms == 1714528800000


@pytest.mark.parametrize(
    ("caller", "callee", "number"),
    [
        ("13800138000", "+86 138-0013-8000", "+8613800138000"),
        ("010-12345678", "+861012345678", "+861012345678"),
        ("95588", "95588", "95588"),
    ],
)
def test_a_call_to_the_same_number_is_refused(caller: str, callee: str, number: str) -> None:
    assert reason(orjson.dumps(good(caller=caller, callee=callee))) == (
        f"callee: the same number as caller ({number})")


def test_a_call_to_itself_in_a_batch_costs_only_itself() -> None:
    batch = [good(cdr_id="a"), good(cdr_id="b", callee="13800138000"), good(cdr_id="c")]
    result = validate_message(orjson.dumps(batch))
    assert [cdr.cdr_id for cdr in result.cdrs] == ["a", "c"]
    assert [(r.index, r.reason) for r in result.rejections] == [
        (1, "[1] callee: the same number as caller (+8613800138000)")]


@pytest.mark.parametrize(
    ("field", "raw", "code"),
    [
        ("caller", "\u202e13800138000", "U+202E"),  # right-to-left override
        ("caller", "138\u200b0013\u200b8000", "U+200B"),  # zero-width space
        ("callee", "\ufeff010-12345678", "U+FEFF"),  # byte-order mark
        ("callee", "95588\u200f", "U+200F"),  # right-to-left mark
        ("callee", "\u2066+44 20 7946 0958\u2069", "U+2066"),  # left-to-right isolate
    ],
)
def test_invisible_format_characters_in_numbers_are_refused(
    field: str, raw: str, code: str
) -> None:
    assert reason(orjson.dumps(good(**{field: raw}))) == (
        f"{field}: contains {code}, an invisible format character (bidirectional control, "
        f"zero-width character or byte-order mark) ({raw!r})")
