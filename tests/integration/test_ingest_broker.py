"""Round trip through the real broker: kafka-python in, the worker, topics out."""

from __future__ import annotations

import base64
import time
import uuid

import orjson
import pytest

from contracts.by_caller import decode_routed
from tests.conftest import read_topic
from tests.integration.streaming import get_json, wait_for

pytestmark = pytest.mark.integration


def _cdr(cdr_id: str, caller: str = "13800138000") -> dict:
    return {
        "cdr_id": cdr_id,
        "caller": caller,
        "callee": "010-12345678",
        "start_time": "2024-05-01T10:00:00+08:00",
        "duration_s": 12,
        "disposition": "ANSWERED",
    }


def worker_on_own_topics(start_worker):
    """A worker of its own app on fresh raw, dead-letter and routed topics."""
    run = uuid.uuid4().hex[:8]
    raw_topic, dead_topic, routed_topic = f"raw-{run}", f"dead-{run}", f"routed-{run}"
    worker = start_worker(
        CALLGUARD_APP_ID=f"cg-{run}",
        CALLGUARD_TOPIC_CDR_RAW=raw_topic,
        CALLGUARD_TOPIC_DEADLETTER=dead_topic,
        CALLGUARD_TOPIC_BY_CALLER=routed_topic,
    )
    return run, raw_topic, dead_topic, routed_topic, worker


def test_malformed_cdrs_go_to_deadletter_and_good_ones_go_on(
    kafka_bootstrap, kafka_producer, start_worker
):
    run, raw_topic, dead_topic, routed_topic, worker = worker_on_own_topics(start_worker)
    good_single = _cdr(f"{run}-1")
    garbage = b"\xff\xfe not json"
    batch = [_cdr(f"{run}-2", "+8613900139000"), {**_cdr(f"{run}-3"), "duration_s": "long"}]
    # One partition keeps offsets in send order. The worker declares the raw
    # topic at start: produce once it is there.
    read_topic(kafka_bootstrap, raw_topic, until=lambda _: True)
    kafka_producer.send(raw_topic, orjson.dumps(good_single), partition=0)
    kafka_producer.send(raw_topic, garbage, partition=0)
    kafka_producer.send(raw_topic, orjson.dumps(batch), partition=0)
    kafka_producer.send(raw_topic, orjson.dumps(_cdr(f"{run}-4")), partition=0)
    ahead = {**_cdr(f"{run}-5"), "start_time": int(time.time() * 1000) + 8 * 3_600_000}
    kafka_producer.send(raw_topic, orjson.dumps(ahead), partition=0)  # a switch 8 h ahead
    kafka_producer.flush()

    def routed_ids(records) -> list[str]:
        return [i for r in records for i in decode_routed(r.value).calls.cdr_id]

    routed = read_topic(kafka_bootstrap, routed_topic, until=lambda rs: len(routed_ids(rs)) >= 3)
    assert sorted(routed_ids(routed)) == [f"{run}-1", f"{run}-2", f"{run}-4"], worker.log()

    dead = read_topic(kafka_bootstrap, dead_topic, until=lambda rs: len(rs) >= 3)
    letters = sorted((orjson.loads(r.value) for r in dead), key=lambda d: d["source_offset"])
    assert len(letters) == 3
    garbage_letter, element_letter, ahead_letter = letters
    assert "past the latest start accepted" in ahead_letter["reason"]
    assert "CALLGUARD_MAX_FUTURE_S" in ahead_letter["reason"]
    assert garbage_letter["source_topic"] == raw_topic
    assert garbage_letter["batch_index"] is None
    assert "not valid UTF-8 JSON" in garbage_letter["reason"]
    assert base64.b64decode(garbage_letter["original_b64"]) == garbage
    assert element_letter["batch_index"] == 1
    assert element_letter["reason"].startswith("[1] duration_s: must be a number")
    assert orjson.loads(base64.b64decode(element_letter["original_b64"]))["cdr_id"] == f"{run}-3"
    assert element_letter["source_offset"] == garbage_letter["source_offset"] + 1
    assert worker.process.poll() is None, "the worker must go on after bad input"


def test_an_unreadable_routed_message_is_dead_lettered_and_the_features_go_on(
    kafka_bootstrap, kafka_producer, start_worker
):
    run, raw_topic, dead_topic, routed_topic, worker = worker_on_own_topics(start_worker)
    read_topic(kafka_bootstrap, routed_topic, until=lambda _: True)
    foreign = b'{"calls": "not columns"}'
    kafka_producer.send(routed_topic, foreign, partition=0)
    kafka_producer.flush()
    read_topic(kafka_bootstrap, raw_topic, until=lambda _: True)
    kafka_producer.send(raw_topic, orjson.dumps([_cdr(f"{run}-{i}") for i in range(3)]))
    kafka_producer.flush()

    dead = read_topic(kafka_bootstrap, dead_topic, until=lambda rs: len(rs) >= 1)
    letter = orjson.loads(dead[0].value)
    assert letter["source_topic"] == routed_topic and letter["batch_index"] is None
    assert letter["reason"].startswith("not a cdr.by_caller batch"), letter
    assert base64.b64decode(letter["original_b64"]) == foreign

    def accepted() -> int:
        return get_json(f"http://127.0.0.1:{worker.web_port}/status")["counters"]["features"][
            "accepted"
        ]

    wait_for(lambda: accepted() == 3, 60, "the calls after it applied", log=worker.log)
    assert worker.process.poll() is None, "the worker must go on after a foreign message"
    status_url = f"http://127.0.0.1:{worker.web_port}/status"
    wait_for(lambda: get_json(status_url)["checkpoints"]["rows"] >= 1, 30, "a checkpoint",
             log=worker.log)
    assert get_json(status_url)["checkpoints"]["broken"] is None
