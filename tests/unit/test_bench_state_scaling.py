"""bench/state_scaling.py runs end to end at tiny sizes; only the shape of its result is checked."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "state_scaling.py"
SIZES = (200, 1_000)
FIGURES = (
    "active_callers",
    "build_cdrs",
    "build_s",
    "changelog_value_bytes_mean",
    "changelog_value_bytes_p99",
    "changelog_value_bytes_max",
    "changelog_key_bytes_mean",
    "block_allocated_bytes_per_caller",
    "block_used_bytes_per_caller",
    "table_ram_bytes_per_caller",
    "rss_baseline_mb",
    "rss_peak_mb",
    "apply_cdr_per_s",
    "apply_cdr_per_cpu_s",
    "timed_cdrs",
    "load_s",
    "load_callers_per_s",
)


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("state_scaling", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("state-scaling") / "nested" / "scaling.json"
    sizes = ",".join(map(str, SIZES))
    result = load_bench().main(["--sizes", sizes, "--timed-cdrs", "5000", "--json", str(out)])
    return result, out


def test_one_row_per_size_in_order(outcome: tuple[dict, Path]) -> None:
    result, _ = outcome
    assert [row["active_callers"] for row in result["sizes"]] == list(SIZES)


@pytest.mark.parametrize("name", FIGURES)
def test_every_figure_is_positive(outcome: tuple[dict, Path], name: str) -> None:
    result, _ = outcome
    for row in result["sizes"]:
        assert row[name] > 0, (row["active_callers"], name)


def test_json_written_where_asked_equals_the_result(outcome: tuple[dict, Path]) -> None:
    result, out = outcome
    assert json.loads(out.read_text()) == result
    assert {"workload", "machine", "sizes"} <= set(result)


def test_rss_per_caller_reported(outcome: tuple[dict, Path]) -> None:
    # Present and numeric; at a few hundred callers the allocator's noise may even make them 0.
    result, _ = outcome
    for row in result["sizes"]:
        for name in ("rss_peak_bytes_per_caller", "rss_now_bytes_per_caller"):
            assert isinstance(row[name], int | float), name


def test_eviction_moves_idle_callers_to_the_table(tmp_path: Path) -> None:
    out = tmp_path / "evicting.json"
    args = ["--sizes", "1000", "--timed-cdrs", "5000", "--json", str(out)]
    result = load_bench().main([*args, "--final-share", "0.05", "--hot-minutes", "60"])
    (row,) = result["sizes"]
    assert 0 < row["callers_in_block"] < row["callers_as_bytes"]
    # The callers and the numbers they called that placed no call (inbound filters).
    assert row["callers_in_block"] + row["callers_as_bytes"] == row["numbers_held"] > 1000
    assert result["workload"]["hot_minutes"] == 60  # (the warm-up loads every caller back)


def test_each_size_names_the_code_it_measured(outcome: tuple[dict, Path]) -> None:
    result, _ = outcome
    for row in result["sizes"]:
        assert {"root", "commit", "uncommitted"} <= set(row["code"])
