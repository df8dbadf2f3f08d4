"""The end-to-end benchmark runs at a tiny size, so it cannot rot; its figures are not checked."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(600)
def test_benchmark_runs_every_phase_and_writes_its_results(tmp_path, model_dir):
    out = tmp_path / "pipeline.json"
    subprocess.run(  # noqa: S603
        [sys.executable, "-m", "bench.pipeline", "--cdrs", "4000", "--latency-cdrs", "4000",
         "--latency-seconds", "3", "--baseline-seconds", "5", "--model-dir", str(model_dir),
         "--out", str(out)],
        cwd=ROOT, check=True, timeout=580,
    )
    results = json.loads(out.read_text())
    assert set(results) == {"machine", "settings", "targets", "encodings"}
    assert set(results["encodings"]) == {"json1", "batch", "arrow"}
    for encoding, entry in results["encodings"].items():
        assert entry["ceiling"]["messages"] > 0, encoding
        assert entry["callguard"]["finished"], encoding
        assert entry["callguard"]["flags_stored"] == entry["callguard"]["flags_published"]
        assert (entry["baseline"] is None) == (encoding == "arrow")
    assert results["encodings"]["batch"]["latency"] is not None
    assert set(results["encodings"]["batch"]["scaling"]) == {"1", "2"}
    table = out.with_suffix(".md").read_text()
    assert table.count("\n| ") >= 4  # header and one row per encoding
