"""The review queue's checks, message and routes, without a broker or a store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from contracts.by_caller import decode_routed
from streams.http.dashboard import review
from streams.http.dashboard.actions import ActionRefused
from streams.http.dashboard.review_queue import ReviewAction
from streams.pipeline.ingest import partition_for_number
from streams.settings import load_settings

NUMBER = "+8613800138000"


def test_an_action_is_checked_and_travels_with_its_kind() -> None:
    action = ReviewAction.checked("dismiss", "138 0013 8000", actor="op:li",
                                  reason=" a bank's reminders ", region="CN")
    assert (action.number, action.request.reason) == (NUMBER, "a bank's reminders")
    assert decode_routed(action.message(1_000)).appeals.actions() == [
        ("dismiss", NUMBER, "op:li", "a bank's reminders", 1_000)
    ]
    assert action.partition(4) == partition_for_number(NUMBER, 4)
    for kind, number, actor, reason, complaint in [
        ("escalate", NUMBER, "op:li", "x", "not a review action"),
        ("confirm", NUMBER, " ", "x", "needs an actor"),
        ("confirm", NUMBER, "op:li", " ", "required: reason"),
        ("confirm", "not a number", "op:li", "x", "not a number"),
    ]:
        with pytest.raises(ActionRefused, match=complaint):
            ReviewAction.checked(kind, number, actor=actor, reason=reason, region="CN")


class Sent:
    """cdr.by_caller as the routes see it: records what is sent."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, int]] = []

    async def send(self, *, value: bytes, partition: int) -> asyncio.Future[None]:
        self.messages.append((value, partition))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class Reader:
    """The monitor's store reader, on no store: the work gets ``None``."""

    async def run(self, work: Any) -> Any:
        return work(None)


@pytest.fixture()
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    settings = load_settings(partitions=4, data_dir=tmp_path, model_dir=tmp_path / "models")
    by_caller = Sent()
    faust_app = faust.App("review-test", datadir=str(tmp_path))  # TestServer picks the port
    app = SimpleNamespace(faust_app=faust_app, settings=settings,
                          topics=SimpleNamespace(by_caller=by_caller))
    monitor = SimpleNamespace(reader=Reader())
    queue = [{"number": NUMBER, "category": "fraud", "score": 0.7, "reasons": ["one-ring"]}]
    refusals: dict[str, str] = {}
    monkeypatch.setattr(review, "review_queue", lambda store, now, **_: [dict(r) for r in queue])
    monkeypatch.setattr(review, "refusal",
                        lambda store, action, now: refusals.get(action.number))
    review.register_review_views(
        app, monitor, lambda request: "op:" + request.headers.get("X-Test-User", "nobody"),
        shown_number=lambda request, number: number if "X-Test-User" in request.headers
        else number[:6] + "****" + number[-4:],
    )
    faust_app.web.init_server()
    return {"web": faust_app.web.web_app, "sent": by_caller.messages, "refusals": refusals}


def call(served: dict[str, Any], *requests: tuple[str, str, Any, dict[str, str]]) -> list:
    """Each (method, path, JSON body or None, headers): (status, body)."""

    async def run() -> list:
        async with TestClient(TestServer(served["web"])) as client:
            answers = []
            for method, path, body, headers in requests:
                data = None if body is None else orjson.dumps(body)
                if data is not None:
                    headers = {"Content-Type": "application/json", **headers}
                response = await client.request(method, path, data=data, headers=headers)
                text = await response.read()
                kind = response.headers.get("Content-Type", "")
                answers.append((response.status, orjson.loads(text) if "json" in kind else text))
            return answers

    return asyncio.run(run())


def test_the_page_and_its_script_are_served(served: dict[str, Any]) -> None:
    (page_status, page), (script_status, script), (common_status, common), (missing, _) = call(
        served, ("GET", "/review", None, {}), ("GET", "/review/review.js", None, {}),
        ("GET", "/review/common.js", None, {}), ("GET", "/review/other.js", None, {}))
    assert page_status == 200 and b'src="/review/review.js"' in page
    assert b'src="/review/common.js"' in page  # the helpers the dashboard uses too
    assert script_status == 200 and b"/api/review/" in script and b"postJSON" in script
    # Every change sends the session's CSRF token; a 401 goes to the login page.
    assert common_status == 200 and b"X-CSRF-Token" in common and b"/login" in common
    assert missing == 404


def test_the_queue_shows_numbers_as_the_user_may_see_them(served: dict[str, Any]) -> None:
    (status, viewer), (_, operator) = call(
        served, ("GET", "/api/review", None, {}),
        ("GET", "/api/review", None, {"X-Test-User": "li"}))
    assert status == 200 and viewer["queue"][0]["number"] == "+86138****8000"
    assert operator["queue"][0]["number"] == NUMBER and "as_of" in operator


def test_confirm_and_dismiss_are_sent_as_the_credential_s_user(served: dict[str, Any]) -> None:
    confirmed, dismissed = call(
        served,
        ("POST", "/api/review/confirm", {"number": "13800138000", "reason": "complaints"},
         {"X-Test-User": "li"}),
        ("POST", "/api/review/dismiss", {"number": NUMBER, "reason": "a bank"},
         {"X-Test-User": "wu"}),
    )
    assert confirmed == (200, {"number": NUMBER, "action": "confirm", "actor": "op:li",
                               "sent": True, "detail": confirmed[1]["detail"]})
    assert dismissed[0] == 200 and dismissed[1]["actor"] == "op:wu"
    kinds = [decode_routed(value).appeals.actions()[0][:3] for value, _ in served["sent"]]
    assert kinds == [("confirm", NUMBER, "op:li"), ("dismiss", NUMBER, "op:wu")]
    assert {partition for _, partition in served["sent"]} == {partition_for_number(NUMBER, 4)}


def test_bad_requests_are_refused_and_nothing_is_sent(served: dict[str, Any]) -> None:
    served["refusals"]["+8613900139000"] = "+8613900139000 is not in the review queue"
    answers = call(
        served,
        ("POST", "/api/review/confirm", {"number": NUMBER, "reason": "x", "actor": "boss"}, {}),
        ("POST", "/api/review/confirm", {"number": NUMBER}, {}),
        ("POST", "/api/review/dismiss", ["not", "an", "object"], {}),
        ("POST", "/api/review/confirm", {"number": "13900139000", "reason": "x"}, {}),
    )
    assert [status for status, _ in answers] == [400, 400, 400, 409]
    assert "do not send actor" in answers[0][1]["error"]
    assert answers[1][1]["error"] == "required: reason"
    assert "not in the review queue" in answers[3][1]["error"]
    assert served["sent"] == []


def test_every_route_registered_has_its_role(served: dict[str, Any]) -> None:
    routes = {(route.method, route.resource.canonical) for route in served["web"].router.routes()
              if route.resource is not None and route.resource.canonical.startswith(
                  ("/review", "/api/review"))}
    assert {key for key in routes if key[0] in ("GET", "POST")} == set(review.ROUTE_ROLES)
