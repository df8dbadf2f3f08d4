"""Shared fixtures: the real local broker, worker processes, Kafka helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streams.broker import LocalBroker, free_port, stop_process, wait_for_port
from streams.http.access.users import UserStore

try:  # the ClickHouse fixtures live with the sink tests
    from tests.clickhouse_fixtures import *  # noqa: F403
except ImportError:  # pragma: no cover - until that module exists
    pass

ROOT = Path(__file__).resolve().parent.parent

# Web port -> an admin token the worker there accepts: tests' requests carry it.
API_TOKENS: dict[int, str] = {}
_ADMIN_TOKENS: dict[Path, str] = {}


def admin_token(users_path: Path) -> str:
    """An admin's token in the users file at ``users_path`` (created on first use)."""
    if users_path not in _ADMIN_TOKENS:
        with UserStore.open(users_path) as users:
            _ADMIN_TOKENS[users_path] = users.add("test-admin", "admin", actor="tests")[1]
    return _ADMIN_TOKENS[users_path]


def auth_headers(url: str) -> dict[str, str]:
    """``Authorization`` for a request to a test worker's ``url`` (none for other servers)."""
    token = API_TOKENS.get(urllib.parse.urlsplit(url).port or 0)
    return {"Authorization": f"Bearer {token}"} if token else {}


def callguard(*args: str, env: dict | None = None, timeout_s: float = 600) -> str:
    """Run the ``callguard`` command as a user would; its stdout (fails the test on error)."""
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "streams", *args], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=timeout_s,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="session")
def small_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `small` simulated set as Parquet tables, written once a session.

    Shared: read it, or copy it before writing anything beside it.
    """
    from models.training_presets import training_scenario
    from simulator.parquet import write_parquet

    out = tmp_path_factory.mktemp("small")
    write_parquet(training_scenario("small"), out, progress=False)
    return out


@dataclass(frozen=True)
class CliTraining:
    """What ``callguard train`` printed, and the registry it registered into."""

    registry: Path
    stdout: str

    @property
    def version(self) -> str:
        """The version the run registered (from its ``registered VERSION in ...`` line)."""
        line = next(line for line in self.stdout.splitlines() if line.startswith("registered "))
        return line.split()[1]


@pytest.fixture(scope="session")
def small_training(tmp_path_factory: pytest.TempPathFactory, small_dir: Path) -> CliTraining:
    """``callguard train`` on the `small` set, promoted, as a user runs it.

    The family measured number by number is the same set given as a Parquet
    dir (one training serves the CLI's test and every test that needs a
    model; the detection tests measure real held-out families).
    """
    registry = tmp_path_factory.mktemp("models")
    out = callguard("train", "--data", str(small_dir), "--registry", str(registry),
                    "--evaluate-on", str(small_dir), "--promote")
    return CliTraining(registry, out)


@pytest.fixture(scope="session")
def model_dir(small_training: CliTraining) -> Path:
    """A registry with a model trained on the `small` simulated set, promoted.

    Shared: tests that register or promote copy it first.
    """
    return small_training.registry


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A real Tansu broker, fresh for this test session (a fault test may pause it)."""
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with LocalBroker(log_path=log) as broker:
        yield broker


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: LocalBroker) -> str:
    """``host:port`` of the session's broker."""
    return kafka_broker.bootstrap


@pytest.fixture()
def kafka_producer(kafka_bootstrap: str) -> Iterator[KafkaProducer]:
    """A kafka-python producer, as a carrier's exporter would use."""
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=16 * 1024 * 1024)
    yield producer
    producer.close()


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list], bool],
    timeout_s: float = 60.0,
) -> list:
    """Read every partition of ``topic`` from the start until ``until(records)`` holds."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=500)
    try:
        deadline = time.monotonic() + timeout_s
        partitions: set[int] = set()
        while not partitions:
            consumer.topics()  # refresh metadata
            partitions = consumer.partitions_for_topic(topic) or set()
            if not partitions:
                if time.monotonic() > deadline:
                    raise AssertionError(f"topic {topic} never appeared")
                time.sleep(0.2)
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        records: list = []
        while not until(records):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out on {topic}: got {len(records)} records")
            for batch in consumer.poll(timeout_ms=300).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


class WorkerProcess:
    """``callguard worker`` in a subprocess, as operators run it."""

    def __init__(self, bootstrap: str, workdir: Path, **env: str) -> None:
        self.web_port = free_port()
        self.log_path = workdir / f"worker-{self.web_port}.log"
        self.env = {
            **os.environ,
            "CALLGUARD_BROKER_URL": f"kafka://{bootstrap}",
            "CALLGUARD_WEB_PORT": str(self.web_port),
            "CALLGUARD_DATA_DIR": str(workdir / f"data-{self.web_port}"),
            # Each worker its own embedded store and files: nothing shared with var/.
            "CALLGUARD_STORE_URL": f"chdb://{workdir / f'chdb-{self.web_port}'}",
            "CALLGUARD_MODEL_DIR": str(workdir / "no-models"),
            "CALLGUARD_ALLOWLIST_PATH": str(workdir / "no-allowlist.sqlite"),
            # Workers of one test share their users, as a deployment's do.
            "CALLGUARD_USERS_PATH": str(workdir / "users.sqlite"),
            **env,
        }
        self.token = admin_token(Path(self.env["CALLGUARD_USERS_PATH"]))
        API_TOKENS[self.web_port] = self.token
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "streams", "worker"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_port("127.0.0.1", self.web_port, 60)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process:
            stop_process(self.process, 30)


@pytest.fixture()
def start_worker(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``callguard worker`` processes; all are stopped after the test."""
    started: list[WorkerProcess] = []

    def start(**env: str) -> WorkerProcess:
        worker = WorkerProcess(kafka_bootstrap, tmp_path, **env).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
