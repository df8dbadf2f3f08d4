"""The complaint validator."""

from __future__ import annotations

import orjson

from contracts.complaints import Complaint, validate_complaints


def test_good_complaints_in_a_batch_and_a_bad_one() -> None:
    batch = [
        {"complaint_id": "k1", "reporter": "13800138000", "reported": "400-812-3123",
         "category": "finance_marketing", "time_ms": 1530491066814},
        {"complaint_id": "k2", "reporter": "13800138001", "reported": "+8613900139000",
         "time": "2018-07-02T08:30:00+08:00"},
        {"complaint_id": "k3", "reporter": "13800138002", "reported": "nope", "time_ms": 1},
    ]
    result = validate_complaints(orjson.dumps(batch))
    assert result.records == [
        Complaint("k1", "+8613800138000", "+864008123123", "finance_marketing", 1530491066814),
        Complaint("k2", "+8613800138001", "+8613900139000", None, 1530491400000),
    ]
    ((rejection),) = result.rejections
    assert rejection.index == 2 and rejection.reason.startswith("[2] reported: not a phone number")


def test_missing_time_is_named() -> None:
    result = validate_complaints(b'{"complaint_id": "k", "reporter": "95588", "reported": "95588"}')
    assert result.rejections[0].reason == "time_ms: missing"
