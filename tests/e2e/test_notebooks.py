"""The analysts' notebooks run top to bottom on the small simulated set.

The notebooks are jupytext percent-format ``.py`` files; jupytext and
nbclient are not dependencies, so each file runs as a script (``runpy``) in
a fresh interpreter, in a temporary working directory, with the data and
the model registry pointed there by environment variables.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from models.registry import ModelRegistry

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))

pytestmark = pytest.mark.e2e
_RUN = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, small_dir: Path) -> Path:
    """The session's `small` set, copied: a notebook may write its labels beside it."""
    out = tmp_path_factory.mktemp("notebook") / "data"
    shutil.copytree(small_dir, out)
    return out


def run_notebook(path: Path, workdir: Path, data_dir: Path, registry: Path) -> str:
    env = os.environ | {
        "CALLGUARD_NOTEBOOK_DATA": str(data_dir),
        "CALLGUARD_MODEL_DIR": str(registry),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "MPLBACKEND": "Agg",
    }
    completed = subprocess.run(  # noqa: S603 - our own interpreter and file
        [sys.executable, "-c", _RUN, str(path)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, f"{path.name} failed:\n{completed.stderr[-4000:]}"
    return completed.stdout


def test_there_are_notebooks() -> None:
    assert [p.name for p in NOTEBOOKS][:2] == [
        "01_explore_features.py",
        "02_retrain_and_compare.py",
    ]


def test_explore_features(tmp_path: Path, data_dir: Path) -> None:
    out = run_notebook(NOTEBOOKS[0], tmp_path, data_dir, tmp_path / "models")
    assert "scored rows" in out
    assert "calls in 10 min" in out or "calls in 24 h" in out


def test_retrain_compares_with_the_serving_model_and_registers(
    tmp_path: Path, data_dir: Path, model_dir: Path
) -> None:
    # The analyst's usual case: a model already serves (the session's, trained on the
    # same `small` set by `callguard train`); the notebook trains a candidate, compares
    # the two on the candidate's hold-out and registers it without promoting it.
    registry = tmp_path / "models"
    shutil.copytree(model_dir, registry)
    serving = ModelRegistry(registry).current()
    assert serving is not None
    out = run_notebook(NOTEBOOKS[1], tmp_path, data_dir, registry)
    versions = ModelRegistry(registry).list_versions()
    assert len(versions) == 2
    assert ModelRegistry(registry).current().version == serving.version  # not promoted
    assert "registered" in out and f"serving: {serving.version}" in out
    assert f"serving model: {serving.version}" in out  # compared with the serving model
    assert "minutes_to_first_flag_median" in out
