"""The feature agent in Faust's test context: window boundaries with explicit timestamps."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from contracts.by_caller import encode_routed
from streams.app import create_app
from streams.pipeline.deadletter import SourcePosition
from streams.pipeline.ingest import RawMessage, ingest_cdrs
from streams.settings import load_settings

T0 = 1_530_489_600_000  # 2018-07-02 00:00 UTC: a boundary of every window's buckets
MINUTE = 60_000
CALLER = "+8613800138000"


def message(*starts_ms: int) -> bytes:
    cdrs = [
        {"cdr_id": f"c{start}", "caller": CALLER, "callee": f"1390013{index:04d}",
         "start_time": start, "duration_s": 0, "disposition": "NO_ANSWER", "ring_s": 1.0}
        for index, start in enumerate(starts_ms)
    ]
    outcome = ingest_cdrs([RawMessage(orjson.dumps(cdrs), SourcePosition("t", 0, 0))],
                          partitions=1, default_region="CN", max_message_bytes=1 << 20,
                          max_original_bytes=1024, now_ms=0)
    return encode_routed(outcome.by_partition[0])


def test_window_boundaries_late_and_dropped_calls_through_the_agent(tmp_path: Path) -> None:
    # No emission (min calls out of reach): this test is about the state only.
    # No checkpoint either: there is no broker here (the state is read from the
    # table's write-behind overlay).
    settings = load_settings(partitions=1, store_enabled=False, changelog_nudge_s=0,
                             emit_min_calls=10_000, emit_min_long_calls=10_000,
                             checkpoint_interval_s=3600,
                             model_dir=tmp_path / "models")
    app = create_app(settings)
    app.faust_app.finalize()
    app.faust_app.flow_control.resume()
    agent = app.faust_app.agents["callguard.features"]
    config = settings.feature_config()

    def features() -> dict[str, float]:
        # Read back from the table, as a recovering worker would.
        fresh = type(app.feature_stage)(config)
        snapshot = fresh.snapshot(CALLER, app.caller_table)
        return {"end": snapshot["window_end_ms"], **snapshot["features"]}

    async def run() -> list[dict]:
        seen = []
        async with agent.test_context() as context:
            # six calls in the first five minutes: one short bucket [T0, T0+5 min)
            await context.put(message(*(T0 + i * 30_000 for i in range(6))), partition=0)
            seen.append(features())
            # a call at 11 min: the short window now ends at 15 min, [5, 15) min
            await context.put(message(T0 + 11 * MINUTE), partition=0)
            seen.append(features())
            # 90 s late (inside the 120 s grace): counted in its bucket
            await context.put(message(T0 + 9 * MINUTE + 30_000), partition=0)
            seen.append(features())
            # 3 min late: dropped and counted as dropped
            await context.put(message(T0 + 8 * MINUTE), partition=0)
            seen.append(features())
        return seen

    first, after_hop, late, dropped = asyncio.run(run())
    assert first["end"] == T0 + 5 * MINUTE
    assert first["short_call_volume"] == first["long_call_volume"] == 6
    assert after_hop["end"] == T0 + 15 * MINUTE
    assert after_hop["short_call_volume"] == 1 and after_hop["long_call_volume"] == 7
    assert late["short_call_volume"] == 2 and late["long_call_volume"] == 8
    assert dropped == late
    stats = app.counters.features
    assert (stats.late_accepted, stats.late_dropped) == (1, 1)


def test_the_retired_engine_setting_is_refused_at_start(monkeypatch) -> None:
    from streams.settings import ConfigurationError

    monkeypatch.setenv("CALLGUARD_FEATURE_ENGINE", "records")
    with pytest.raises(ConfigurationError, match="CALLGUARD_FEATURE_ENGINE is no longer read.*"
                       "unset it"):
        load_settings()
