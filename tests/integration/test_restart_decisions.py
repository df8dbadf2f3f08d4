"""The same decisions whatever happens: a day produced in small messages, or slowly, is
decided as one in large messages at once; a worker killed mid-day and restarted, or one whose
broker froze for a while, as one that ran through; decision ids compared.

A small day goes to ``cdr.raw`` in event-time order, ended by one call per routed partition an
hour later, which closes every bucket by event time (no wall-clock wait decides anything).
"""

from __future__ import annotations

import orjson
import polars as pl
import pytest
from kafka import KafkaConsumer, TopicPartition

from simulator.run import simulate
from simulator.scenario import builtin_scenario, with_overrides
from streams.broker import LocalBroker
from streams.pipeline.ingest import partition_for_number
from streams.settings import load_settings
from tests.conftest import read_topic
from tests.integration.streaming import (
    freeze,
    get_json,
    produce_cdrs,
    produce_unkeyed,
    start_deciding_worker,
    wait_for,
)

pytestmark = pytest.mark.integration


def _day() -> pl.DataFrame:
    scenario = with_overrides(builtin_scenario("tiny"), seed=5151, duration="3h")
    cdrs = pl.concat([chunk.cdrs for chunk in simulate(scenario)]).sort("start_ms")
    partitions = load_settings().partitions
    closers, candidate = {}, 13_900_000_000
    while len(closers) < partitions:  # a caller of each routed partition
        number = f"+86{candidate}"
        closers.setdefault(partition_for_number(number, partitions), number)
        candidate += 1
    last = cdrs.row(-1, named=True)
    ticks = pl.DataFrame([
        {**last, "cdr_id": f"closer-{p}", "caller": number, "callee": "+8613700000000",
         "start_ms": last["start_ms"] + 3_600_000}
        for p, number in sorted(closers.items())
    ]).cast(cdrs.schema)
    return pl.concat([cdrs, ticks])


def _ids(records: list) -> set[str]:
    for record in records:
        decision = orjson.loads(record.value)
        _SEEN[decision["decision_id"]] = {k: decision[k] for k in _SHOWN}
    return {orjson.loads(r.value)["decision_id"] for r in records}


_SEEN: dict[str, dict] = {}  # every decision read, by id: to say what differs
_SHOWN = ("number", "action", "category", "source", "window_end", "flagged_at", "score")


def _differences(got: set[str], expected: set[str]) -> str:
    extra = [_SEEN[i] for i in sorted(got - expected, key=lambda i: _SEEN[i]["flagged_at"])]
    missing = [_SEEN[i] for i in sorted(expected - got, key=lambda i: _SEEN[i]["flagged_at"])]
    return f"not expected: {extra[:6]}\nmissing: {missing[:6]}"


def _on_topic(bootstrap: str, topic: str) -> set[str]:
    """Decision ids of every record on ``topic`` now (read up to its end offsets)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        records: list = []
        while any(consumer.position(tp) < end[tp] for tp in parts):
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return _ids(records)
    finally:
        consumer.close()


def _run(start_worker, model_dir, tmp_path, kafka_producer, kafka_bootstrap, day, *,
         batch: int, kill_after: int | None = None, kill_while: int | None = None,
         paced: int = 1, pause: tuple[LocalBroker, int] | None = None,
         switches: int = 0, expected: set[str] | None = None) -> set[str]:
    """Decision ids of one run: ``kill_after`` CDRs produced, all applied, then SIGKILL and the
    rest; or everything produced and SIGKILL once ``kill_while`` CDRs are applied (mid-stream:
    whatever the worker was doing, uncommitted work is lost). ``paced``: the day goes out in
    that many parts, each once the worker has applied the one before (a slow producer).
    ``pause``: the broker is frozen (SIGSTOP) once that many CDRs are applied, for 10 s.
    ``switches``: the day comes unkeyed from that many exporters, each sending arrays of
    ``batch`` of its own calls, spread over the partitions (arrays overlap in time)."""
    name = f"{batch}-{kill_after}-{kill_while}-{paced}-{pause is not None}-{switches}"
    worker, env = start_deciding_worker(
        start_worker, model_dir=model_dir, store_url=f"chdb://{tmp_path / ('store-' + name)}",
        allowlist=tmp_path / f"allow-{name}.sqlite",
    )
    status = f"http://127.0.0.1:{worker.web_port}/status"
    wait_for(lambda: get_json(status)["model"]["version"], 60, "the model", worker.log)
    raw, flags = env["CALLGUARD_TOPIC_CDR_RAW"], env["CALLGUARD_TOPIC_FLAGS"]
    cut = day.height if kill_after is None else kill_after
    counters = lambda: get_json(status)["counters"]  # noqa: E731
    part = -(-cut // paced)
    for first in range(0, cut, part):
        chunk = day.slice(first, min(part, cut - first))
        if switches:  # the closing calls, an hour on, in an array of their own
            closing = pl.col("cdr_id").str.starts_with("closer-")
            produce_unkeyed(kafka_producer, raw, chunk.filter(~closing), switches=switches,
                            batch=batch)
            produce_unkeyed(kafka_producer, raw, chunk.filter(closing), switches=1, batch=batch)
        else:
            produce_cdrs(kafka_producer, raw, chunk, batch=batch)
        if first + part < cut:
            sent = first + part
            wait_for(lambda sent=sent: counters()["features"]["accepted"] >= sent, 180,
                     "a part of the day", worker.log)
    if pause is not None:
        broker, applied = pause
        wait_for(lambda: counters()["features"]["accepted"] >= applied, 180,
                 "the calls before the pause", worker.log)
        freeze(broker, seconds=10)
    wait_for(lambda: counters()["features"]["accepted"] >= (kill_while or cut), 180,
             "the first part", worker.log)
    if kill_after is not None or kill_while is not None:
        first_lifetime = get_json(status)["counters_since"]
        worker.process.kill()  # no stop, no flush, no commit
        worker.process.wait()
        worker.start()  # the same data dir, store and group
        wait_for(lambda: get_json(status)["model"]["version"], 60, "the model again", worker.log)
        assert get_json(status)["counters_since"] > first_lifetime  # counters: this lifetime
        if kill_after is not None:
            produce_cdrs(kafka_producer, raw, day.slice(cut), batch=batch)
    # Done when every routed partition's closing call is in and every row emitted is scored.
    closers = day.filter(pl.col("cdr_id").str.starts_with("closer-"))["caller"].to_list()
    wait_for(
        lambda: all("error" not in get_json(
            f"http://127.0.0.1:{worker.web_port}/callers/{n}/features") for n in closers)
        and counters()["features"]["emitted"] == counters()["decisions"]["scored"],
        180, "the closing calls", worker.log,
    )
    if expected is None:  # one lifetime: its counters say how many decisions to read
        published = sum(counters()["decisions"][a] for a in ("block", "watch", "clear"))
        return _ids(read_topic(kafka_bootstrap, flags, until=lambda rs: len(rs) >= published))
    try:  # two lifetimes (a restart): read until the expected decisions are there
        read_topic(kafka_bootstrap, flags, until=lambda rs: _ids(rs) >= expected, timeout_s=90)
    except AssertionError:
        pass  # the comparison below says what is missing
    return _on_topic(kafka_bootstrap, flags)


_THROUGH: dict[str, set[str]] = {}  # the uninterrupted run, made once per session


def _through(start_worker, model_dir, tmp_path, kafka_producer, kafka_bootstrap, day):
    if "ids" not in _THROUGH:
        _THROUGH["ids"] = _run(start_worker, model_dir, tmp_path, kafka_producer,
                               kafka_bootstrap, day, batch=500)
    return _THROUGH["ids"]


def test_small_or_large_messages_give_the_same_decisions(
    start_worker, model_dir, tmp_path, kafka_producer, kafka_bootstrap
):
    day = _day()
    through = _through(start_worker, model_dir, tmp_path, kafka_producer, kafka_bootstrap, day)
    assert through, "the day flagged nothing: nothing to compare"
    small = _run(start_worker, model_dir, tmp_path, kafka_producer, kafka_bootstrap, day,
                 batch=20, expected=through)
    assert small == through, _differences(small, through)


def test_a_worker_killed_and_restarted_decides_as_one_that_ran_through(
    start_worker, model_dir, tmp_path, kafka_producer, kafka_bootstrap
):
    day = _day()
    through = _through(start_worker, model_dir, tmp_path, kafka_producer, kafka_bootstrap, day)
    killed = _run(start_worker, model_dir, tmp_path, kafka_producer, kafka_bootstrap, day,
                  batch=500, kill_after=day.height // 2, expected=through)
    assert killed == through, _differences(killed, through)


@pytest.mark.parametrize("share", [0.3, 0.75])
def test_a_worker_killed_while_it_reads_decides_as_one_that_ran_through(
    share, start_worker, model_dir, tmp_path, kafka_producer, kafka_bootstrap
):
    day = _day()
    through = _through(start_worker, model_dir, tmp_path, kafka_producer, kafka_bootstrap, day)
    killed = _run(start_worker, model_dir, tmp_path, kafka_producer, kafka_bootstrap, day,
                  batch=500, kill_while=int(day.height * share), expected=through)
    assert killed == through, _differences(killed, through)


def test_a_slow_producer_gives_the_same_decisions(
    start_worker, model_dir, tmp_path, kafka_producer, kafka_bootstrap
):
    day = _day()
    through = _through(start_worker, model_dir, tmp_path, kafka_producer, kafka_bootstrap, day)
    slow = _run(start_worker, model_dir, tmp_path, kafka_producer, kafka_bootstrap, day,
                batch=200, paced=6, expected=through)
    assert slow == through, _differences(slow, through)


def test_unkeyed_overlapping_arrays_give_the_decisions_of_ordered_messages(
    start_worker, model_dir, tmp_path, kafka_producer, kafka_bootstrap
):
    day = _day()
    through = _through(start_worker, model_dir, tmp_path, kafka_producer, kafka_bootstrap, day)
    # Arrays of 10 calls of one exporter span about 90 s of this day: within the grace.
    unkeyed = _run(start_worker, model_dir, tmp_path, kafka_producer, kafka_bootstrap, day,
                   batch=10, switches=3, expected=through)
    assert unkeyed == through, _differences(unkeyed, through)


def test_a_broker_frozen_mid_day_changes_no_decision(
    start_worker, model_dir, tmp_path, kafka_broker, kafka_producer, kafka_bootstrap
):
    day = _day()
    through = _through(start_worker, model_dir, tmp_path, kafka_producer, kafka_bootstrap, day)
    paused = _run(start_worker, model_dir, tmp_path, kafka_producer, kafka_bootstrap, day,
                  batch=500, pause=(kafka_broker, day.height // 3), expected=through)
    assert paused == through, _differences(paused, through)
