"""The dashboard's pure parts: clusters, throughput, operator requests, JSON rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.flag import Action
from streams.http.dashboard.actions import ActionRefused, OperatorRequest
from streams.http.dashboard.clusters import find_clusters, segment_of
from streams.http.dashboard.monitor import PartitionLag, ThroughputMeter
from streams.http.dashboard.queries import jsonable

T0 = datetime(2018, 7, 2, 8, 0, tzinfo=UTC)


def flag(number: str, category: str = "finance_marketing") -> dict:
    return {"number": number, "category": category}


def test_numbers_of_one_segment_and_category_started_together_form_a_cluster() -> None:
    flags = [flag("+8613800130001"), flag("+8613800130002"), flag("+8613800139999"),
             flag("+8613800130003", "real_estate"), flag("+8613900130001")]
    started = {row["number"]: T0 + timedelta(minutes=index) for index, row in enumerate(flags)}
    clusters = find_clusters(flags, started, min_burst=10)
    assert [(c.kind, c.key, c.category, c.numbers) for c in clusters] == [
        ("segment", "+861380013", "finance_marketing",
         ("+8613800130001", "+8613800130002", "+8613800139999")),
    ]


def test_a_segment_cluster_is_bounded_in_time() -> None:
    flags = [flag("+8613800130001"), flag("+8613800130002")]
    started = {"+8613800130001": T0, "+8613800130002": T0 + timedelta(hours=5)}
    assert find_clusters(flags, started) == []


def test_bursts_cross_segments_and_need_enough_numbers() -> None:
    numbers = [f"+86139{index:08d}" for index in range(0, 50_000_000, 10_000_000)]
    flags = [flag(number, "one_ring") for number in numbers]
    started = {number: T0 + timedelta(minutes=2 * index) for index, number in enumerate(numbers)}
    (burst,) = find_clusters(flags, started, min_burst=4)
    assert (burst.kind, len(burst.numbers), burst.first_flagged) == ("burst", 5, T0)
    assert burst.as_dict()["key"] == "2018-07-02T08:00:00Z"
    assert find_clusters(flags, started, min_burst=6) == []


def test_numbers_without_a_start_are_left_out() -> None:
    assert find_clusters([flag("+8613800130001"), flag("+8613800130002")], {}) == []


@pytest.mark.parametrize(("number", "segment"), [
    ("+8613800138000", "+861380013"), ("+8675512345678", "+867551234"), ("95588", "95588"),
])
def test_segments(number: str, segment: str) -> None:
    assert segment_of(number) == segment


def test_throughput_forgets_samples_older_than_the_window() -> None:
    clock = iter([0.0, 30.0, 70.0, 100.0])
    meter = ThroughputMeter(window_s=60, clock=clock.__next__)
    for total in (0, 1000, 1100, 1400):
        meter.sample(total)
    assert meter.rate() == pytest.approx((1400 - 1000) / 70)


def test_throughput_needs_two_samples() -> None:
    meter = ThroughputMeter(clock=lambda: 1.0)
    meter.sample(10)
    assert meter.rate() == 0.0


def test_lag_is_unknown_until_fetched_and_never_negative() -> None:
    assert PartitionLag("t", 0, None, 5).lag is None
    assert PartitionLag("t", 0, 10, 4).lag == 6
    assert PartitionLag("t", 0, 10, None).lag == 10
    assert PartitionLag("t", 0, 3, 4).lag == 0


def test_operator_requests_need_a_subject_and_a_reason_and_take_the_actor_given() -> None:
    ask = OperatorRequest.from_json({"number": " 138 0013 8000 ", "reason": "school notices"},
                                    "number", "op:li")
    assert ask == OperatorRequest("138 0013 8000", "op:li", "school notices")
    with pytest.raises(ActionRefused, match="do not send actor"):
        OperatorRequest.from_json(
            {"pattern": "955xx", "actor": "op:wang", "reason": "banks"}, "pattern", "op:li")
    with pytest.raises(ActionRefused, match="number, reason"):
        OperatorRequest.from_json({"number": " ", "reason": ""}, "number", "op:li")
    with pytest.raises(ActionRefused, match="JSON object"):
        OperatorRequest.from_json(["95588"], "number", "op:li")


def test_rows_become_json_values() -> None:
    naive_utc = datetime(2018, 7, 2, 8)  # noqa: DTZ001 - as a driver may return it
    row = {"number": "95588", "action": Action.BLOCK, "flagged_at": naive_utc,
           "reasons": ("a", "b"), "score": 0.5, "expires_at": T0.astimezone()}
    assert jsonable(row) == {"number": "95588", "action": "block",
                             "flagged_at": "2018-07-02T08:00:00Z", "reasons": ["a", "b"],
                             "score": 0.5, "expires_at": "2018-07-02T08:00:00Z"}
