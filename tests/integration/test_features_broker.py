"""Features through the real broker and worker equal the offline path's (parity)."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid

import orjson
import polars as pl
import pytest

from features.offline import compute_features
from features.vector import FEATURE_NAMES
from simulator.run import simulate
from simulator.scenario import builtin_scenario, with_overrides
from streams.settings import load_settings

pytestmark = pytest.mark.integration

# Reciprocity: the stream counts every call-back it has seen so far, including
# ones later in event time than this caller's window end (other callers'
# clocks run on), and its Bloom filter may report a call-back that did not
# happen (documented in features.sketch); offline counts exact call-backs up
# to the window end. So the stream's value is at least the offline one.
APPROXIMATE = {"short_reciprocity", "long_reciprocity"}


def get_json(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - localhost
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        return json.loads(error.read())


def wait_for(predicate, timeout_s: float, what: str, log=lambda: ""):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{log()[-3000:]}")


def test_stream_features_match_offline_features(kafka_producer, start_worker):
    run = uuid.uuid4().hex[:8]
    raw_topic = f"raw-{run}"
    worker = start_worker(
        CALLGUARD_APP_ID=f"cg-{run}",
        CALLGUARD_TOPIC_CDR_RAW=raw_topic,
        CALLGUARD_TOPIC_COMPLAINTS=f"complaints-{run}",
        CALLGUARD_TOPIC_DEADLETTER=f"dead-{run}",
        CALLGUARD_TOPIC_BY_CALLER=f"routed-{run}",
        CALLGUARD_TOPIC_FEATURES=f"features-{run}",
    )
    scenario = with_overrides(builtin_scenario("tiny"), duration="3h")
    cdrs = pl.concat([chunk.cdrs for chunk in simulate(scenario)])
    # One raw partition keeps each caller's calls in order, as keying by caller would.
    for start in range(0, cdrs.height, 500):
        rows = cdrs.slice(start, 500).drop("start_time").rename({"start_ms": "start_time"})
        kafka_producer.send(raw_topic, orjson.dumps(rows.to_dicts()), partition=0)
    kafka_producer.flush()

    status_url = f"http://127.0.0.1:{worker.web_port}/status"
    wait_for(
        lambda: get_json(status_url)["counters"]["features"]["calls"] >= cdrs.height,
        180, "the worker to apply every CDR", worker.log,
    )
    counters = get_json(status_url)["counters"]
    assert counters["records_rejected"] == 0
    assert counters["features"]["accepted"] == cdrs.height
    assert counters["features"]["late_dropped"] == counters["features"]["duplicates"] == 0

    config = load_settings().feature_config()
    volumes = cdrs.group_by("caller").len().sort(["len", "caller"], descending=True)
    sample = volumes.head(15)["caller"].to_list() + volumes.tail(10)["caller"].to_list()
    for number in sample:
        streamed = get_json(f"http://127.0.0.1:{worker.web_port}/callers/{number}/features")
        assert streamed["known"], number
        offline = compute_features(
            cdrs.filter(pl.col("caller") == number), config, at=[streamed["window_end_ms"]]
        )
        # reciprocity needs everyone's calls, not only this caller's
        offline_recip = compute_features(cdrs, config, at=[streamed["window_end_ms"]]).filter(
            pl.col("caller") == number
        )
        expected = offline.row(0, named=True)
        expected.update({name: offline_recip.row(0, named=True)[name] for name in APPROXIMATE})
        for name in FEATURE_NAMES:
            got, want = streamed["features"][name], expected[name]
            if name in APPROXIMATE:
                assert got >= want - 1e-9, (number, name, got, want)
            else:
                assert got == pytest.approx(want, rel=1e-9, abs=1e-9), (number, name, got, want)
