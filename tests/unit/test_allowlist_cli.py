"""``callguard allow ...`` through typer's CliRunner."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from models.allowlist import AllowList
from models.cli import allow_app

runner = CliRunner()


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    return tmp_path / "allowlist.sqlite"


def run(store: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(allow_app, [*args, "--allowlist", str(store)])
    return result.exit_code, result.stdout, result.stderr


def test_add_list_check_remove_audit(store: Path) -> None:
    code, out, _ = run(store, "add", "0755-8601*", "--actor", "wang.fang",
                       "--why", "深圳医院总机")
    assert code == 0 and "allowed +867558601* (prefix)" in out
    code, out, _ = run(store, "list")
    assert code == 0 and "+867558601*" in out and "深圳医院总机" in out

    assert run(store, "check", "0755 8601 3388")[:2] == (0, "+8675586013388 is allowed by "
                                                            "+867558601*\n")
    assert run(store, "check", "13800138000")[0] == 1

    code, out, _ = run(store, "remove", "+86 755 8601*", "--actor", "li.na", "--why", "moved")
    assert code == 0 and "removed +867558601*" in out
    code, out, _ = run(store, "audit")
    rows = [line.split()[2:5] for line in out.splitlines()[1:]]
    assert rows == [["wang.fang", "add", "+867558601*"], ["li.na", "remove", "+867558601*"]]


def test_bad_input_exits_2(store: Path) -> None:
    code, _, err = run(store, "add", "95588", "--actor", "ops", "--why", "")
    assert code == 2 and "give a reason" in err
    code, _, err = run(store, "add", "1*", "--actor", "ops", "--why", "oops")
    assert code == 2 and "too broad" in err
    code, _, err = run(store, "check", "not-a-number")
    assert code == 2 and "not a number" in err
    code, _, err = run(store, "remove", "95588", "--actor", "ops", "--why", "x")
    assert code == 2 and "not on the allow-list" in err
    assert run(store, "add", "95588", "--why", "no actor")[0] == 2


def test_seed_defaults_and_environment_path(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLGUARD_ALLOWLIST_PATH", str(store))
    result = runner.invoke(allow_app, ["seed-defaults"])
    assert result.exit_code == 0 and "955xx" in result.stdout
    with AllowList.open(store) as opened:
        assert opened.matcher().allows("95588")
        # rented six-digit 95 call-centre lines are not exempt
        assert not opened.matcher().allows("955881")
    assert runner.invoke(allow_app, ["check", "10086"]).exit_code == 0
