"""Detection end to end: the demo's model, a family it never saw, the real worker."""

from __future__ import annotations

import polars as pl
import pytest

from contracts.flag import Action, decode_flag
from simulator.run import simulate
from simulator.scenario import builtin_scenario
from simulator.world import build_world
from tests.conftest import read_topic
from tests.integration.streaming import get_json, produce_cdrs, run_topics, wait_for

pytestmark = pytest.mark.integration


def test_a_held_out_family_is_flagged_in_every_category(
    kafka_bootstrap, kafka_producer, start_worker, model_dir, tmp_path
):
    env = run_topics()
    worker = start_worker(**env, CALLGUARD_MODEL_DIR=str(model_dir),
                          CALLGUARD_STORE_ENABLED="false",
                          CALLGUARD_ALLOWLIST_PATH=str(tmp_path / "allow.sqlite"))
    port = worker.web_port
    wait_for(lambda: get_json(f"http://127.0.0.1:{port}/status")["model"]["version"], 120,
             "the worker to load the model", worker.log)
    # A day of the held-out family: campaign shapes the model was not trained on.
    scenario = builtin_scenario("heldout")
    cdrs = pl.concat([chunk.cdrs for chunk in simulate(scenario)])
    truth = build_world(scenario).ground_truth().select(
        pl.col("number"), pl.col("category").cast(pl.String)
    )
    present = set(truth.join(cdrs.select(number="caller").unique(), on="number")["category"])
    assert len(present) == 6  # the day has every category
    produce_cdrs(kafka_producer, env["CALLGUARD_TOPIC_CDR_RAW"], cdrs)
    wait_for(
        lambda: get_json(f"http://127.0.0.1:{port}/status")["counters"]["features"]["accepted"]
        >= cdrs.height, 600, "every CDR", worker.log,
    )
    category_of = dict(truth.iter_rows())

    def caught(records: list) -> set[str]:
        flags = [decode_flag(record.value) for record in records]
        return {
            category_of[flag.number]
            for flag in flags
            if flag.action in (Action.BLOCK, Action.WATCH) and flag.number in category_of
        }

    records = read_topic(kafka_bootstrap, env["CALLGUARD_TOPIC_FLAGS"],
                         until=lambda rs: caught(rs) >= present, timeout_s=120)
    assert caught(records) == present
    flagged = [decode_flag(r.value) for r in records if decode_flag(r.value).action != Action.CLEAR]
    assert all(flag.reasons for flag in flagged)
