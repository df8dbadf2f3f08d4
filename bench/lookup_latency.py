"""Latency of ``GET /numbers/{number}`` on a worker, as an interception system polls it.

Starts the embedded broker and one worker, plays three simulated hours of
the tiny scenario through it with a trained model, then sends sequential
lookups over one keep-alive connection: flagged numbers (written without
+86), numbers that called but were never flagged, and unknown numbers.
Prints p50, p99 and max in milliseconds. Usage::

    python bench/lookup_latency.py [--model-dir DIR] [--requests 3000]

Without --model-dir it trains a model on the `small` simulated set first.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import polars as pl
from kafka import KafkaProducer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulator.run import simulate  # noqa: E402
from simulator.scenario import builtin_scenario, with_overrides  # noqa: E402
from streams.broker import LocalBroker, free_port, wait_for_port  # noqa: E402
from tests.conftest import (  # noqa: E402
    API_TOKENS,
    admin_token,
    auth_headers,
    read_topic,  # noqa: E402
)
from tests.integration.streaming import get_json, produce_cdrs, wait_for  # noqa: E402


def main() -> None:
    """Run the benchmark and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--requests", type=int, default=3000)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="callguard-lookup-"))
    model_dir = options.model_dir or work / "models"
    if options.model_dir is None:
        subprocess.run(  # noqa: S603
            [sys.executable, "-m", "streams", "train", "--simulate", "small", "--registry",
             str(model_dir), "--promote", "-q"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    with LocalBroker() as broker:
        port = free_port()
        env = {**os.environ, "CALLGUARD_BROKER_URL": broker.url, "CALLGUARD_WEB_PORT": str(port),
               "CALLGUARD_MODEL_DIR": str(model_dir), "CALLGUARD_STORE_ENABLED": "false",
               "CALLGUARD_LOOKUP_EVENT_TIME": "true", "CALLGUARD_DATA_DIR": str(work / "data"),
               "CALLGUARD_USERS_PATH": str(work / "users.sqlite")}
        API_TOKENS[port] = admin_token(work / "users.sqlite")  # get_json sends it
        with open(work / "worker.log", "ab") as log:
            worker = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "streams", "worker"], cwd=ROOT, env=env, stdout=log,
                stderr=subprocess.STDOUT)
        try:
            wait_for_port("127.0.0.1", port, 60)
            status = f"http://127.0.0.1:{port}/status"
            wait_for(lambda: get_json(status)["model"]["version"], 60, "the model")
            cdrs = pl.concat([c.cdrs for c in simulate(
                with_overrides(builtin_scenario("tiny"), seed=99, duration="3h"))])
            producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
            produce_cdrs(producer, "cdr.raw", cdrs)
            wait_for(lambda: get_json(status)["counters"]["features"]["accepted"] >= cdrs.height,
                     300, "the worker to apply every CDR")
            flags = read_topic(broker.bootstrap, "cdr.flags", until=lambda rs: len(rs) > 0)
            flagged = sorted({orjson.loads(r.value)["number"] for r in flags})
            callers = sorted(set(cdrs["caller"].to_list()) - set(flagged))
            unknown = [f"+861990000{i:04d}" for i in range(len(flagged) or 10)]
            report = measure(port, flagged, callers, unknown, options.requests)
        finally:
            worker.terminate()
            worker.wait(30)
    print(json.dumps(report, indent=2))


def measure(port: int, flagged: list[str], callers: list[str], unknown: list[str],
            requests: int) -> dict:
    """Sequential lookups over one keep-alive connection; latency quantiles in ms."""
    rng = random.Random(7)  # noqa: S311 - a benchmark's choice of numbers
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    kinds = {"flagged": [n.removeprefix("+86") for n in flagged], "not flagged": callers,
             "unknown": unknown}
    timings: dict[str, list[float]] = {kind: [] for kind in kinds}
    for index in range(requests):
        kind = list(kinds)[index % 3]
        number = rng.choice(kinds[kind])
        started = time.perf_counter()
        connection.request("GET", f"/numbers/{number}", headers=auth_headers(
            f"http://127.0.0.1:{port}/"))
        response = connection.getresponse()
        body = json.loads(response.read())
        timings[kind].append((time.perf_counter() - started) * 1000)
        assert ("flagged" in body), body
    connection.close()
    every = sorted(t for values in timings.values() for t in values)

    def quantile(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {
        "requests": requests,
        "flagged_numbers": len(flagged),
        "p50_ms": quantile(every, 0.5),
        "p99_ms": quantile(every, 0.99),
        "max_ms": round(every[-1], 3),
        "by_kind_p99_ms": {kind: quantile(values, 0.99) for kind, values in timings.items()},
    }


if __name__ == "__main__":
    main()
