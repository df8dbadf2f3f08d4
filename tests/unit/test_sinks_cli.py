"""``callguard db`` on a chDB store: migrate, flags, history, retention; errors and exit codes."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from contracts.flag import Action, Flag
from sinks.cli import app
from sinks.clickhouse import FlagDecision, insert_decisions, open_store


@pytest.fixture()
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    for name in ("CALLGUARD_WRITER_PASSWORD", "CALLGUARD_READER_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CALLGUARD_STORE_URL", f"chdb://{tmp_path / 'chdb'}")
    return CliRunner()


def store_url(tmp_path: Path) -> str:
    return f"chdb://{tmp_path / 'chdb'}"


def test_migrate_applies_once_then_reports_up_to_date(runner: CliRunner) -> None:
    first = runner.invoke(app, ["migrate"])
    second = runner.invoke(app, ["migrate", "--retention-days", "30"])

    assert first.exit_code == 0, first.output
    assert first.output.startswith("applied ") and "0001_schema_migrations," in first.output
    assert first.output.rstrip().endswith("0009_operator_labels")
    assert second.exit_code == 0 and second.output == "schema up to date\n"


def test_flags_and_history_show_what_was_written(runner: CliRunner, tmp_path: Path) -> None:
    unmigrated = runner.invoke(app, ["flags"])
    assert unmigrated.exit_code == 1 and "run `callguard db migrate` first" in unmigrated.output
    runner.invoke(app, ["migrate"])
    now_ms = int(time.time()) * 1000  # current_flags hides what expired by the wall clock
    flag = Flag(
        number="+8613800138000",
        action=Action.BLOCK,
        category="fraud",
        score=0.97,
        reasons=("short calls", "night"),
        model_version="hgb-1",
        window_end_ms=now_ms,
        flagged_at_ms=now_ms,
        expires_at_ms=now_ms + 86_400_000,
    )
    with open_store(store_url(tmp_path)) as store:
        insert_decisions(store, [FlagDecision.from_flag(flag, actor="worker-1")])

    shown = runner.invoke(app, ["flags", "--limit", "5"])
    history = runner.invoke(app, ["history", "138 0013 8000"])

    assert shown.exit_code == 0, shown.output
    header, row = shown.output.splitlines()
    assert header.split() == [
        "number", "action", "category", "score", "source", "flagged_at", "expires_at"
    ]
    assert row.split()[:5] == ["+8613800138000", "block", "fraud", "0.970", "model"]
    assert history.exit_code == 0, history.output
    assert flag.decision_id in history.output and "short calls; night" in history.output
    empty = runner.invoke(app, ["history", "95588"])
    assert empty.output == "no decisions about 95588\n"


def test_a_bad_number_a_bad_url_and_an_unreachable_server_exit_2(runner: CliRunner) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    bad_number = runner.invoke(app, ["history", "not-a-number"])
    bad_url = runner.invoke(app, ["flags", "--url", "http://127.0.0.1/callguard"])
    relative = runner.invoke(app, ["migrate", "--url", "chdb://relative/path"])
    unreachable = runner.invoke(
        app, ["flags", "--url", f"clickhouse://default@127.0.0.1:{closed_port}/callguard"]
    )

    assert bad_number.exit_code == 2 and "'not-a-number'" in bad_number.output
    assert bad_url.exit_code == 2 and "unknown store URL scheme 'http'" in bad_url.output
    assert relative.exit_code == 2 and "absolute path" in relative.output
    assert unreachable.exit_code == 2
    assert "cannot reach the store" in unreachable.output
    assert "Traceback" not in unreachable.output


def test_user_passwords_come_in_pairs(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLGUARD_WRITER_PASSWORD", "w-secret")

    half = runner.invoke(app, ["migrate"])
    monkeypatch.setenv("CALLGUARD_READER_PASSWORD", "r-secret")
    both = runner.invoke(app, ["migrate"])

    assert half.exit_code == 2 and "set both" in half.output
    assert both.exit_code == 0 and "users: none (chdb" in both.output
    assert "secret" not in both.output


def test_retention_on_an_empty_store(runner: CliRunner) -> None:
    runner.invoke(app, ["migrate"])

    result = runner.invoke(app, ["retention", "--days", "90"])

    assert result.exit_code == 0 and result.output == "nothing older than 90 days\n"


def test_the_password_variable_overrides_the_url() -> None:
    store = open_store("clickhouse://writer:old@127.0.0.1:9000/callguard", password="n3w")

    assert store._url.password == "n3w"  # type: ignore[attr-defined]
    assert "n3w" not in repr(store._url)  # type: ignore[attr-defined]
    store.close()
