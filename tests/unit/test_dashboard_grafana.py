"""Grafana's provisioned dashboard: the built-in dashboard's panels, in SQL that runs."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from contracts.flag import Action, Flag
from sinks.clickhouse import FlagDecision, insert_decisions, insert_metrics, migrate, open_store
from tests.conftest import ROOT

DASHBOARD = json.loads((ROOT / "grafana" / "dashboards" / "callguard.json").read_text())
SOURCE_UID = "callguard-clickhouse"
# The built-in page's panels (streams/http/dashboard/static/index.html), by a word of each title.
BUILT_IN = ("Blocked now", "Watched now", "CDR/s", "Consumer lag", "Dead-letter rate",
            "Late events", "Flags over time by category", "Flagged now by category",
            "Flagged numbers now", "Number: history", "Number: feature snapshot",
            "Number: latest decision and reasons", "Top new offenders", "Flagged together",
            "Model version", "Appeals and the allow-list")


def queries() -> dict[str, str]:
    return {panel["title"]: target["rawSql"]
            for panel in DASHBOARD["panels"] for target in panel.get("targets", [])}


def test_the_panels_mirror_the_built_in_dashboard() -> None:
    titles = [panel["title"] for panel in DASHBOARD["panels"]]
    for wanted in BUILT_IN:
        assert any(title.startswith(wanted) for title in titles), wanted
    assert {"action", "category", "number"} <= {v["name"] for v in DASHBOARD["templating"]["list"]}


def test_every_query_uses_the_provisioned_source_and_the_documented_shapes() -> None:
    for panel in DASHBOARD["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == SOURCE_UID, panel["title"]
            sql = target["rawSql"]
            if "flags_current" in sql and "SELECT DISTINCT category" not in sql:
                assert "flags_current FINAL" in sql, panel["title"]
            if "flags_history" in sql and "count()" in sql and "GROUP BY number" not in sql:
                pytest.fail(f"{panel['title']}: counts flags_history without deduplication")


def render(sql: str, database: str, number: str) -> str:
    sql = re.sub(r"\$__timeFilter\((\w+)\)", r"\1 >= now() - 86400", sql)
    sql = sql.replace("${action:singlequote}", "'block', 'watch'")
    every_category = "SELECT DISTINCT category FROM callguard.flags_current"
    sql = sql.replace("${category:singlequote}", every_category)
    return sql.replace("${number}", number).replace("callguard.", f"{database}.")


@pytest.mark.integration
def test_every_panel_query_runs_on_clickhouse(clickhouse_database_url) -> None:
    store = open_store(clickhouse_database_url)
    try:
        migrate(store)
        now_ms = int(time.time() * 1000)
        flags = [
            Flag("+8613800130001", Action.BLOCK, "fraud", 0.99, ("r",), "v1", now_ms,
                 now_ms - 60_000, now_ms + 3_600_000, features={"short_call_volume": 9.0}),
            Flag("+8613800130002", Action.WATCH, "fraud", 0.7, ("r",), "v1", now_ms,
                 now_ms - 60_000, now_ms + 3_600_000),
        ]
        insert_decisions(store, [FlagDecision.from_flag(f, actor="w") for f in flags])
        insert_metrics(store, "w", {"cdrs_per_second": 12.5, "consumer_lag": 3.0,
                                    "cdrs_total": 100.0, "records_rejected_total": 1.0},
                       at=datetime.now(UTC) - timedelta(seconds=5))
        results = {
            title: store.query_rows(render(sql, store.database, "138 0013 0001"))
            for title, sql in queries().items()
        }
    finally:
        store.close()
    assert results["Blocked now"] == [(1,)]
    assert results["Watched now"] == [(1,)]
    assert results["CDR/s (1 min)"] == [(12.5,)]
    assert results["Consumer lag"] == [(3.0,)]
    assert len(results["Flagged numbers now"]) == 2
    assert [row[0] for row in results["Number: latest decision and reasons"]] == ["+8613800130001"]
    assert results["Number: feature snapshot of the latest flag"] == [("short_call_volume", 9.0)]
    assert results["Flagged together: same segment"][0][:3] == ("+861380013", "fraud", 2)
