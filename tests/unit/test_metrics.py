"""GET /metrics: the named series, in the Prometheus text format."""

from __future__ import annotations

import re

import numpy as np
import pytest

from features.vector import FEATURE_NAMES
from models.called_evidence import CalledEvidence, CalledPolicy
from streams.app import create_app
from streams.http.dashboard.monitor import monitor_for
from streams.http.metrics import MetricFamily, _called_families, collect, render, store_sample
from streams.settings import Settings

SERIES = (
    "callguard_cdrs_total", "callguard_records_rejected_total", "callguard_late_events_total",
    "callguard_duplicates_total", "callguard_flags_total", "callguard_flags_current",
    "callguard_model_info", "callguard_store_insert_failures_total", "callguard_store_buffered",
    "callguard_consumer_lag", "callguard_cdrs_per_second", "callguard_checkpoints_total",
    "callguard_checkpoint_rows_total", "callguard_checkpoint_failures_total",
    "callguard_checkpoint_seconds_total", "callguard_checkpoint_held_messages",
    "callguard_calls_received_share", "callguard_scoring_without_calls_received",
)
LABELS = r'(\{([a-z_]+="([^"\\]|\\.)*",?)*\})?'
SAMPLE = re.compile(rf"^[a-z_]+{LABELS} (-?[0-9.e+]+|NaN|[+-]Inf)$")


@pytest.fixture()
def app(tmp_path):
    settings = Settings(app_id="metrics-test", data_dir=tmp_path, store_enabled=False,
                        model_dir=tmp_path / "models", allowlist_path=tmp_path / "allow.sqlite")
    return create_app(settings)


def test_every_named_series_is_exposed_with_help_and_type(app) -> None:
    app.counters.records_valid, app.counters.records_rejected = 90, 10
    app.counters.features.late_accepted, app.counters.features.late_dropped = 3, 2
    app.counters.decisions.block = 4
    counts = [{"action": "block", "category": "fraud", "numbers": 7}]
    text = render(collect(app, monitor_for(app), counts))
    for name in SERIES:
        assert f"# TYPE {name} " in text and f"# HELP {name} " in text, name
    assert "callguard_cdrs_total 100\n" in text
    assert "callguard_records_rejected_total 10\n" in text
    assert 'callguard_late_events_total{kind="accepted"} 3\n' in text
    assert 'callguard_late_events_total{kind="dropped"} 2\n' in text
    assert 'callguard_flags_total{action="block"} 4\n' in text
    assert 'callguard_flags_current{action="block",category="fraud"} 7\n' in text
    for line in text.splitlines():
        assert line.startswith("# ") or SAMPLE.match(line), line


def test_counters_are_typed_counter_and_end_in_total(app) -> None:
    for family in collect(app, monitor_for(app)):
        assert family.kind in ("counter", "gauge")
        assert (family.kind == "counter") == family.name.endswith("_total"), family.name


def test_label_values_and_help_are_escaped() -> None:
    text = render([MetricFamily("x", "gauge", "a \\ b\nc", [({"v": 'q"\\\n'}, 1.5)])])
    assert "# HELP callguard_x a \\\\ b\\nc" in text
    assert 'callguard_x{v="q\\"\\\\\\n"} 1.5' in text


def test_the_store_sample_holds_the_unlabelled_series_and_summed_lag() -> None:
    families = [
        MetricFamily("cdrs_total", "counter", "", [({}, 5)]),
        MetricFamily("consumer_lag", "gauge", "", [({"topic": "a", "partition": "0"}, 2),
                                                  ({"topic": "a", "partition": "1"}, 3)]),
        MetricFamily("late_events_total", "counter", "", [({"kind": "dropped"}, 1)]),
    ]
    assert store_sample(families) == {
        "cdrs_total": 5.0, "consumer_lag": 5.0, "late_dropped_total": 1.0}


def test_whether_the_model_sees_calls_received_is_exposed() -> None:
    def samples(evidence: CalledEvidence | None) -> dict[str, list[float]]:
        return {f.name: [value for _, value in f.samples] for f in _called_families(evidence)}

    assert samples(None) == {"calls_received_share": [], "scoring_without_calls_received": []}
    evidence = CalledEvidence(FEATURE_NAMES, CalledPolicy(window=100, min_rows=10, min_share=0.05))
    assert samples(evidence)["calls_received_share"] == []  # nothing scored yet
    evidence.shown(np.zeros((40, len(FEATURE_NAMES))))  # nobody called
    assert samples(evidence) == {"calls_received_share": [0.0],
                                 "scoring_without_calls_received": [1.0]}
    called = np.zeros((60, len(FEATURE_NAMES)))
    called[:, FEATURE_NAMES.index("long_inbound_ratio")] = 0.4
    evidence.shown(called)
    assert samples(evidence) == {"calls_received_share": [0.6],
                                 "scoring_without_calls_received": [0.0]}
