"""The operations dashboard in headless Chromium, against a worker and a real ClickHouse.

Chromium (Debian's package, ``scripts/chromium.sh ensure``) loads the page
with ``--dump-dom`` once its scripts have run; the figures in the rendered DOM
are checked against the store, the number search is exercised through the
page's ``?q=`` (a number in another format), and a screenshot is saved in the
test's directory and copied to ``var/screenshots/``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import ExitStack
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest
from aiohttp import ClientSession, ClientWebSocketResponse

from simulator.run import simulate
from simulator.scenario import builtin_scenario, with_overrides
from sinks.clickhouse import current_flags, decision_features, flag_history, open_store
from sinks.clickhouse.lookups import lookups_of
from streams.http.access.masking import mask_number
from streams.http.access.users import UserStore
from tests.conftest import ROOT
from tests.integration.streaming import (
    get_json,
    produce_cdrs,
    start_deciding_worker,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--window-size=1400,2400",
]


# -- a headless browser ---------------------------------------------------------

@pytest.fixture(scope="module")
def chromium() -> str:
    done = subprocess.run(  # noqa: S603 - our script, fixed arguments
        ["bash", str(ROOT / "scripts" / "chromium.sh"), "ensure"],
        capture_output=True, text=True, timeout=900, check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"scripts/chromium.sh ensure failed:\n{done.stdout}\n{done.stderr}")
    return "/usr/bin/chromium"


class Browser:
    """One headless Chromium driven over the DevTools protocol, so it keeps its session cookie."""

    def __init__(self, binary: str, profile: Path) -> None:
        self.binary, self.profile = binary, profile
        self.timings: dict[str, float] = {}
        self.loop = asyncio.new_event_loop()
        self.process: subprocess.Popen[bytes] | None = None
        self.client: ClientSession | None = None
        self.socket: ClientWebSocketResponse | None = None
        self.calls = 0

    def __enter__(self) -> Browser:
        self.profile.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(  # noqa: S603
            [self.binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}",
             "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        active = self.profile / "DevToolsActivePort"
        wait_for(lambda: active.exists() and active.read_text().count("\n") >= 1, 60,
                 "Chromium's DevTools port")
        port = int(active.read_text().split()[0])
        self.loop.run_until_complete(self._connect(port))
        return self

    def __exit__(self, *_: object) -> None:
        async def close() -> None:
            if self.socket is not None:
                await self.socket.close()
            if self.client is not None:
                await self.client.close()

        self.loop.run_until_complete(close())
        self.loop.close()
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)

    async def _connect(self, port: int) -> None:
        self.client = ClientSession()
        async with self.client.get(f"http://127.0.0.1:{port}/json/list") as answer:
            pages = [t for t in await answer.json() if t["type"] == "page"]
        self.socket = await self.client.ws_connect(pages[0]["webSocketDebuggerUrl"],
                                                   max_msg_size=0)

    def call(self, method: str, **params: object) -> dict:
        """One DevTools command; its answer (``result``, or ``error``)."""

        async def ask() -> dict:
            self.calls += 1
            await self.socket.send_json({"id": self.calls, "method": method, "params": params})
            while True:
                message = await self.socket.receive_json(timeout=60)
                if message.get("id") == self.calls:
                    return message

        return self.loop.run_until_complete(ask())

    def evaluate(self, expression: str) -> object:
        """The value of a JavaScript expression in the page (None while a page loads)."""
        answer = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        result = answer.get("result", {})
        return None if "exceptionDetails" in result else result.get("result", {}).get("value")

    def open(self, url: str, ready: str = "document.body?.dataset.ready === 'true'") -> None:
        """Load ``url`` and wait until ``ready`` holds (the dashboard's data is in)."""
        self.evaluate("window.leaving = true")  # gone once the new page replaces this one
        assert "error" not in self.call("Page.navigate", url=url)
        self.wait(f"!window.leaving && document.readyState === 'complete' && ({ready})",
                  what=url)

    def wait(self, expression: str, what: str, timeout_s: float = 60) -> object:
        """Until ``expression`` is truthy in the page; its value."""
        return wait_for(lambda: self.evaluate(expression), timeout_s, what)

    def sign_in(self, base: str, name: str, token: str) -> None:
        """Through the login page, as a person would."""
        self.open(f"{base}/login", ready="!!document.getElementById('login')")
        self.evaluate(f"""document.getElementById('name').value = {json.dumps(name)};
            document.getElementById('token').value = {json.dumps(token)};
            document.getElementById('login').submit(); true""")
        self.wait("location.pathname === '/dashboard' && document.body?.dataset.ready === 'true'",
                  what="the dashboard after signing in")

    def dom(self, url: str, label: str) -> Dom:
        started = time.monotonic()
        self.open(url)
        html = self.evaluate("document.documentElement.outerHTML")
        self.timings[label] = time.monotonic() - started
        return Dom.parse(str(html))

    def screenshot(self, url: str, path: Path) -> None:
        self.open(url)
        shot = self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["result"]["data"]))


class Node:
    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag, self.attrs = tag, attrs
        self.children: list[Node] = []
        self.parts: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self.parts + [child.text for child in self.children]).strip()

    def all(self, tag: str) -> list[Node]:
        found = []
        for child in self.children:
            if child.tag == tag:
                found.append(child)
            found.extend(child.all(tag))
        return found


class Dom(HTMLParser):
    """Just enough of a DOM: elements by id, their attributes, text and descendants."""

    VOID = {"meta", "link", "input", "br", "img", "hr", "source", "col", "wbr"}

    def __init__(self) -> None:
        super().__init__()
        self.root = Node("#root", {})
        self.stack = [self.root]
        self.ids: dict[str, Node] = {}

    @classmethod
    def parse(cls, html: str) -> Dom:
        dom = cls()
        dom.feed(html)
        return dom

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {name: value or "" for name, value in attrs})
        self.stack[-1].children.append(node)
        if "id" in node.attrs:
            self.ids[node.attrs["id"]] = node
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].parts.append(data)

    def __getitem__(self, element_id: str) -> Node:
        return self.ids[element_id]

    def rows(self, table_id: str) -> list[Node]:
        return self[table_id].all("tbody")[0].all("tr")


# -- the worker with decisions in the store ----------------------------------------

def post_json(url: str, payload: dict, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(  # noqa: S310 - localhost
        url, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())



def national(number: str) -> str:
    """+8615028996993 -> '150 2899 6993': the same number as a person would type it."""
    digits = number.removeprefix("+86")
    return f"{digits[:3]} {digits[3:7]} {digits[7:]}" if len(digits) == 11 else f"0{digits}"


def test_dashboard_in_headless_chromium(
    chromium, kafka_producer, start_worker, model_dir, clickhouse_database_url, tmp_path
):
    worker, env = start_deciding_worker(
        start_worker, model_dir=model_dir, store_url=clickhouse_database_url,
        allowlist=tmp_path / "allow.sqlite",
    )
    base = f"http://127.0.0.1:{worker.web_port}"
    wait_for(lambda: get_json(f"{base}/status")["model"]["version"], 60, "the model", worker.log)
    scenario = with_overrides(builtin_scenario("tiny"), seed=4242, duration="3h")
    cdrs = pl.concat([chunk.cdrs for chunk in simulate(scenario)])
    produce_cdrs(kafka_producer, env["CALLGUARD_TOPIC_CDR_RAW"], cdrs)

    def settled() -> bool:
        counters = get_json(f"{base}/status")["counters"]
        published = sum(counters["decisions"][action] for action in ("block", "watch", "clear"))
        return counters["features"]["accepted"] >= cdrs.height and published > 0 and (
            counters["flags_stored"] == published)

    wait_for(settled, 240, "every CDR processed and every decision stored", worker.log)

    store = open_store(clickhouse_database_url)
    with ExitStack() as stack:
        stack.callback(store.close)
        history_table = store.table("flags_history")
        ((latest,),) = store.query_rows(f"SELECT max(flagged_at) FROM {history_table}")  # noqa: S608
        flags = current_flags(store, now=latest)
        blocked = [row for row in flags if row["action"] == "block"]
        watched = [row for row in flags if row["action"] == "watch"]
        hourly = store.query_rows(
            f"SELECT sum(decisions) FROM {store.table('flags_hourly')} "  # noqa: S608
            "WHERE action IN ('block', 'watch') AND hour >= %(since)s",
            {"since": (latest - timedelta(hours=24)).replace(minute=0, second=0)},
        )[0][0]
        assert flags, "nothing flagged: the dashboard would have nothing to show"

        with UserStore.open(Path(worker.env["CALLGUARD_USERS_PATH"])) as users:
            tokens = {name: users.add(name, role, actor="test")[1]
                      for name, role in (("li", "operator"), ("zhao", "viewer"),
                                         ("ivr", "service"))}
        browser = stack.enter_context(Browser(chromium, tmp_path / "chromium-profile"))
        browser.sign_in(base, "li", tokens["li"])  # the login page, as an operator
        page = browser.dom(f"{base}/dashboard", "overview")
        assert page["user-name"].text == "li (operator)"

        # The figures shown are the store's.
        assert page.root.all("body")[0].attrs["data-ready"] == "true"
        assert page["as-of"].attrs["data-value"] == latest.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert int(page["kpi-block"].attrs["data-value"]) == len(blocked)
        assert int(page["kpi-watch"].attrs["data-value"]) == len(watched)
        shown = [row.attrs["data-number"] for row in page.rows("flags-table")]
        assert shown == [row["number"] for row in flags][:500]
        assert int(page["timeline-chart"].attrs["data-total"]) == hourly
        assert page["model-version"].text == get_json(f"{base}/status")["model"]["version"]
        offenders = [row.attrs["data-number"] for row in page.rows("offenders-table")]
        assert offenders and set(offenders) <= {number for (number,) in store.query_rows(
            f"SELECT DISTINCT number FROM {history_table}")}  # noqa: S608
        assert page["category-chart"].all("rect"), "no bars in the category chart"
        health = get_json(f"{base}/api/health")
        assert int(page["kpi-lag"].attrs["data-value"]) == health["consumer_lag"]
        assert page.rows("lag-table"), "no partitions in the health panel"

        # Search: a flagged number typed as a person would, through ?q=. The newest flag: the
        # worker applies an operator's action at its partition's stream time, and a flag
        # current at the store's latest decision may have lapsed there; the newest has not.
        number = max(blocked or watched, key=lambda row: row["flagged_at"])["number"]
        typed = national(number)
        detail_page = browser.dom(f"{base}/dashboard?{urllib.parse.urlencode({'q': typed})}",
                                  "search")
        detail = detail_page["detail"]
        assert "hidden" not in detail.attrs
        assert detail.attrs["data-number"] == number
        stored = flag_history(store, number)
        assert detail_page["detail-action"].attrs["data-value"] == stored[0]["action"]
        reasons = [item.text for item in detail_page["detail-reasons"].all("li")]
        assert reasons == list(stored[0]["reasons"])
        shown_history = [row.attrs["data-decision"] for row in detail_page.rows("history-table")]
        assert shown_history == [row["decision_id"] for row in stored]
        snapshot = decision_features(store, number, stored[0]["decision_id"])
        features = [row.attrs["data-feature"] for row in detail_page.rows("features-table")]
        assert snapshot and features == list(snapshot)
        assert detail_page["detail-chart"].all("circle"), "no score chart"

        nonsense = browser.dom(f"{base}/dashboard?q=not-a-number", "bad search")
        assert "hidden" not in nonsense["detail-error"].attrs
        assert nonsense["detail-error"].text

        # The screenshot, for people.
        picture = tmp_path / "dashboard.png"
        browser.screenshot(f"{base}/dashboard?{urllib.parse.urlencode({'q': typed})}", picture)
        assert picture.stat().st_size > 20_000 and picture.read_bytes()[:4] == b"\x89PNG"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(picture, SCREENSHOTS / "dashboard.png")
        print(f"\ndashboard timings (s, Chromium start to DOM): {browser.timings}")
        assert browser.timings["overview"] < 30

        # The operators' actions, recorded as the signed-in user: the appeal through the
        # page's form (its script sends the session's CSRF token), the rest through the API.
        operator = {"Authorization": f"Bearer {tokens['li']}"}
        status, refused = post_json(f"{base}/api/appeal", {"number": typed}, operator)
        assert status == 400 and "reason" in refused["error"]
        status, refused = post_json(f"{base}/api/appeal", {
            "number": typed, "actor": "someone-else", "reason": "x"}, operator)
        assert status == 400 and "do not send actor" in refused["error"]
        status, _ = post_json(f"{base}/api/appeal", {"number": typed, "reason": "x"})
        assert status == 401
        browser.open(f"{base}/dashboard?{urllib.parse.urlencode({'q': typed})}")
        assert browser.evaluate("""(() => {
            const form = document.getElementById('appeal-form');
            form.elements.reason.value = 'registered school notices';
            form.requestSubmit();
            return true; })()""")
        result = browser.wait("document.getElementById('appeal-result').className",
                              what="the appeal's answer")
        answer = browser.evaluate("document.getElementById('appeal-result').textContent")
        assert result == "ok", answer
        lifted = wait_for(lambda: next(
            (row for row in flag_history(store, number)[:1] if row["source"] == "appeal"), None),
            60, "the appeal's decision in the store", worker.log)
        assert (lifted["action"], lifted["source"], lifted["actor"]) == ("clear", "appeal", "op:li")
        assert get_json(f"{base}/api/number?q={urllib.parse.quote(typed)}")["flagged"] is False
        status, allowed = post_json(f"{base}/api/allow", {
            "pattern": typed, "reason": "school notices, verified"}, operator)
        assert status == 200 and allowed["pattern"] == number, allowed
        assert allowed["actor"] == "op:li"
        wait_for(lambda: get_json(f"{base}/api/number?q={number}")["allowlisted"], 30,
                 "the allow-list to reach the worker", worker.log)

        # An interception system looks the number up with its service token; a viewer sees
        # it masked; both lookups are audited in the store.
        service = {"Authorization": f"Bearer {tokens['ivr']}"}
        assert get_json(f"{base}/numbers/{number}", service)["number"] == number
        assert "error" in get_json(f"{base}/api/flags", service)  # 403: not a reader
        viewer = {"Authorization": f"Bearer {tokens['zhao']}"}
        shown = get_json(f"{base}/api/number?q={urllib.parse.quote(typed)}", viewer)
        assert shown["number"] == mask_number(number) and number not in json.dumps(shown)
        listed = get_json(f"{base}/api/flags", viewer)["flags"]
        # Subscribers' numbers are masked; service numbers (95588, 10086) are not personal.
        assert listed and all("*" in row["number"] for row in listed
                              if row["number"].startswith("+"))
        audited = wait_for(lambda: {
            (row["user_name"], row["route"]) for row in lookups_of(store, number)
        } >= {("ivr", "/numbers/{number}"), ("zhao", "/api/number"), ("li", "/api/number")}
            and lookups_of(store, number), 30, "the lookups in the audit", worker.log)
        assert all(row["address"] == "127.0.0.1" for row in audited)

        # The metrics endpoint agrees with the worker's counters.
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:  # noqa: S310
            metrics = response.read().decode()
        assert f"callguard_cdrs_total {cdrs.height}" in metrics
        assert 'callguard_model_info{version="' in metrics


def test_national_formats() -> None:
    assert national("+8615028996993") == "150 2899 6993"
    assert national("+862834272701") == "02834272701"
