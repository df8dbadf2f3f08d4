"""Helpers for tests that run workers against the real broker."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable

import orjson
import polars as pl

from features.offline import compute_features
from features.vector import FEATURE_NAMES
from streams.broker import LocalBroker
from streams.settings import load_settings
from tests.conftest import auth_headers

# Reciprocity is approximate in the stream, both ways, by design: it counts
# call-backs seen so far, including ones later in event time than this
# caller's window end (other callers' clocks run on) and Bloom false
# positives (features.sketch), but it misses call-backs that arrived before
# the caller had any state (only numbers with state learn who called them,
# which keeps memory to active callers). Offline counts exact call-backs up
# to the window end. Unit parity tests check it under controlled order; here
# only its range. The inbound ratio counts the numbers that called the caller
# the same way, from the same filter.
APPROXIMATE = frozenset(
    {"short_reciprocity", "long_reciprocity", "short_inbound_ratio", "long_inbound_ratio"}
)


def run_topics() -> dict[str, str]:
    """Worker environment with topics and group of their own, for one test."""
    run = uuid.uuid4().hex[:8]
    return {
        "CALLGUARD_APP_ID": f"cg-{run}",
        "CALLGUARD_TOPIC_CDR_RAW": f"raw-{run}",
        "CALLGUARD_TOPIC_COMPLAINTS": f"complaints-{run}",
        "CALLGUARD_TOPIC_DEADLETTER": f"dead-{run}",
        "CALLGUARD_TOPIC_BY_CALLER": f"routed-{run}",
        "CALLGUARD_TOPIC_FEATURES": f"features-{run}",
        "CALLGUARD_TOPIC_FLAGS": f"flags-{run}",
    }


def get_json(url: str, headers: dict[str, str] | None = None) -> dict:
    """GET a test worker's JSON (error bodies too), as its admin unless ``headers`` say."""
    request = urllib.request.Request(  # noqa: S310 - localhost
        url, headers=auth_headers(url) if headers is None else headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - localhost
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        return json.loads(error.read())


def wait_for(predicate: Callable[[], object], timeout_s: float, what: str,
             log: Callable[[], str] = lambda: "") -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (OSError, KeyError):
            value = None
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{log()[-3000:]}")


def produce_cdrs(producer, topic: str, cdrs: pl.DataFrame, batch: int = 500) -> None:
    """Send simulator rows as JSON batches to one partition (keeps per-caller order)."""
    for start in range(0, cdrs.height, batch):
        rows = cdrs.slice(start, batch).drop("start_time").rename({"start_ms": "start_time"})
        producer.send(topic, orjson.dumps(rows.to_dicts()), partition=0)
    producer.flush()


def produce_unkeyed(producer, topic: str, cdrs: pl.DataFrame, *, switches: int,
                    batch: int) -> None:
    """Send simulator rows as ``switches`` exporters would, with no key.

    Each exporter holds every ``switches``-th call and sends its own calls in
    arrays of ``batch``, in time order; the exporters take turns, and the
    arrays go round the topic's partitions. Arrays of different exporters
    cover the same minutes, so no partition's arrays are in time order with
    another's.
    """
    rows = cdrs.drop("start_time").rename({"start_ms": "start_time"})
    partitions = sorted(producer.partitions_for(topic))
    queues = [rows.gather_every(switches, offset) for offset in range(switches)]
    sent = 0
    for start in range(0, max(queue.height for queue in queues), batch):
        for queue in queues:
            part = queue.slice(start, batch)
            if part.height:
                producer.send(topic, orjson.dumps(part.to_dicts()),
                              partition=partitions[sent % len(partitions)])
                sent += 1
    producer.flush()


def assert_features_match_offline(web_port: int, cdrs: pl.DataFrame, numbers: list[str]) -> None:
    """The worker's features of ``numbers`` equal the offline path's on ``cdrs``."""
    config = load_settings().feature_config()
    for number in numbers:
        streamed = get_json(f"http://127.0.0.1:{web_port}/callers/{number}/features")
        assert streamed["known"], number
        end = [streamed["window_end_ms"]]
        expected = compute_features(cdrs.filter(pl.col("caller") == number), config, at=end)
        everyone = compute_features(cdrs, config, at=end).filter(pl.col("caller") == number)
        want = expected.row(0, named=True) | {
            name: everyone.row(0, named=True)[name] for name in APPROXIMATE
        }
        for name in FEATURE_NAMES:
            got = streamed["features"][name]
            if name in APPROXIMATE:
                top = 1.0 if name.endswith("reciprocity") else float("inf")
                assert 0.0 <= got <= top, (number, name, got)
            else:
                assert abs(got - want[name]) <= 1e-9 * max(1.0, abs(want[name])), (
                    number, name, got, want[name], streamed["window_end_ms"])


def caught_up(web_port: int, cdrs: pl.DataFrame, numbers: list[str]) -> bool:
    """Whether the worker's long window holds at least every call of each of ``numbers``.

    The long window (24 h) covers the test runs, so its call volume is the
    count of calls applied. Waiting for this, rather than for a counter to
    pass a total, cannot be fooled by calls counted twice: those show as a
    mismatch in :func:`assert_features_match_offline` afterwards.
    """
    totals = cdrs.filter(pl.col("caller").is_in(numbers)).group_by("caller").len()
    url = f"http://127.0.0.1:{web_port}/callers/{{}}/features"
    for number, calls in totals.iter_rows():
        streamed = get_json(url.format(number))
        if not streamed.get("known") or streamed["features"]["long_call_volume"] < calls:
            return False
    return True


def sample_callers(cdrs: pl.DataFrame, busiest: int = 15, quietest: int = 10) -> list[str]:
    volumes = cdrs.group_by("caller").len().sort(["len", "caller"], descending=True)
    return volumes.head(busiest)["caller"].to_list() + volumes.tail(quietest)["caller"].to_list()


def start_deciding_worker(start_worker, *, model_dir, store_url: str, allowlist) -> tuple:
    """A worker with a promoted model, a seeded allow-list and a store: (worker, env)."""
    from tests.conftest import callguard

    callguard("allow", "seed-defaults", env={"CALLGUARD_ALLOWLIST_PATH": str(allowlist),
                                             "PATH": "/usr/bin:/bin"})
    env = run_topics()
    worker = start_worker(
        **env,
        CALLGUARD_MODEL_DIR=str(model_dir),
        CALLGUARD_ALLOWLIST_PATH=str(allowlist),
        CALLGUARD_STORE_URL=store_url,
        CALLGUARD_LOOKUP_EVENT_TIME="true",
    )
    return worker, env


def freeze(broker: LocalBroker, seconds: float) -> None:
    """Stop ``broker`` (SIGSTOP) for ``seconds`` and let it go on, as a stalled host would.

    The length is the fault injected, not a wait for something to happen.
    """
    process = broker._process
    assert process is not None, "start the broker first"
    process.send_signal(signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        process.send_signal(signal.SIGCONT)


def kill_broker(broker: LocalBroker) -> None:
    """SIGKILL ``broker`` and wait for it to go, as a crash or a lost host ends it."""
    process = broker._process  # LocalBroker only stops politely
    assert process is not None, "start the broker first"
    process.kill()
    process.wait()
