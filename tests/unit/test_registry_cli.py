"""``callguard models ...`` through typer's CliRunner."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from models.cli import app
from models.registry import ModelMetadata, ModelRegistry
from tests.unit.test_registry import draft, train

runner = CliRunner()


@pytest.fixture()
def registry_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture()
def versions(registry_dir: Path) -> list[ModelMetadata]:
    registry = ModelRegistry(registry_dir)
    first = registry.register(train(0), draft())
    second = registry.register(train(1), draft(notes="retrained"))
    return [first, second]


def run(*args: str, registry_dir: Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--registry", str(registry_dir)])
    return result.exit_code, result.stdout, result.stderr


def test_list_marks_the_current_version(registry_dir: Path, versions: list) -> None:
    first, second = versions
    code, out, _ = run("promote", first.version, "--actor", "ops", "--why", "first",
                       registry_dir=registry_dir)
    assert code == 0 and f"promoted {first.version}" in out
    code, out, _ = run("list", registry_dir=registry_dir)
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["VERSION", "CREATED", "FEATURES", "BLOCK/WATCH",
                                              "METRICS"]
    # Versions made in the same second may list in either order.
    (first_line,) = [line for line in lines[1:] if first.version in line]
    (second_line,) = [line for line in lines[1:] if second.version in line]
    assert first_line.startswith("*") and not second_line.startswith("*")
    assert "macro_f1=0.810" in first_line


def test_show_prints_metadata_and_card(registry_dir: Path, versions: list) -> None:
    first, _ = versions
    code, out, _ = run("show", first.version, registry_dir=registry_dir)
    assert code == 0 and first.artefact_sha256 in out and "distinct_callees" in out
    code, out, _ = run("show", first.version, "--card", registry_dir=registry_dir)
    assert code == 0 and out.startswith("# callguard nuisance-caller classifier")


def test_promote_rollback_and_history(registry_dir: Path, versions: list) -> None:
    first, second = versions
    for version in (first.version, second.version):
        assert run("promote", version, "--actor", "ops", "--why", "go",
                   registry_dir=registry_dir)[0] == 0
    code, out, _ = run("show", "current", registry_dir=registry_dir)
    assert code == 0 and second.version in out
    code, out, _ = run("rollback", "--actor", "li.wei", "--why", "complaints",
                       registry_dir=registry_dir)
    assert code == 0 and f"rolled back to {first.version}" in out
    code, out, _ = run("history", registry_dir=registry_dir)
    assert [line.split()[3] for line in out.splitlines()[1:]] == ["promote", "promote",
                                                                  "rollback"]
    assert "complaints" in out


def test_refusals_exit_2_with_a_message(registry_dir: Path, versions: list) -> None:
    code, _, err = run("show", "nope", registry_dir=registry_dir)
    assert code == 2 and "not a version id" in err
    code, _, err = run("rollback", "--actor", "ops", "--why", "x", registry_dir=registry_dir)
    assert code == 2 and "nothing to roll back to" in err
    code, _, err = run("promote", versions[0].version, "--actor", "ops", "--why", " ",
                       registry_dir=registry_dir)
    assert code == 2 and "why" in err
    code, _, _ = run("promote", versions[0].version, "--why", "x", registry_dir=registry_dir)
    assert code == 2  # --actor is required


def test_registry_dir_comes_from_the_environment(
    registry_dir: Path, versions: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLGUARD_MODEL_DIR", str(registry_dir))
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0 and versions[0].version in result.stdout
