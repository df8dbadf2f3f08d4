"""The lookup audit queue: appending never blocks, a failed write keeps the rows, it is bounded."""

from __future__ import annotations

from aiohttp.test_utils import make_mocked_request

from streams.http.access.credentials import Principal
from streams.http.access.lookups import LookupLog
from streams.http.access.middleware import _PRINCIPAL
from streams.http.access.roles import Role


def request_by(name: str, role: Role):  # noqa: ANN201 - aiohttp's mocked request
    request = make_mocked_request("GET", "/api/number?q=1")
    request[_PRINCIPAL] = Principal(name, role)
    return request


def test_rows_a_write_did_not_take_go_back_ahead_of_newer_ones() -> None:
    log = LookupLog("worker:test")
    log.record(request_by("li", Role.OPERATOR), "+8613800138000")
    taken = log.take()
    assert [(row.user_name, row.role, row.number) for row in taken] == [
        ("li", "operator", "+8613800138000")]
    assert log.take() == []
    log.record(request_by("zhao", Role.VIEWER), "+8613900139000")
    log.put_back(taken)  # the store did not answer
    assert [row.user_name for row in log.take()] == ["li", "zhao"]


def test_the_queue_is_bounded_and_counts_what_it_dropped() -> None:
    log = LookupLog("worker:test", max_pending=3)
    for number in range(5):
        log.record(request_by("ivr", Role.SERVICE), f"+86138001380{number:02d}")
    assert [row.number[-2:] for row in log.take()] == ["02", "03", "04"]
    assert log.dropped == 2
