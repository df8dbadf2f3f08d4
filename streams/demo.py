"""``callguard demo``: the whole pipeline on embedded defaults, on one machine.

Starts the in-memory broker, trains and promotes a model if none serves,
seeds the allow-list, issues a token to the operator ``demo`` (printed with
the login URL; a new one each run), starts one worker (chdb store) and the
simulator on an accelerated clock, then shows decisions as they arrive. Ctrl-C,
``--duration`` or ``--until-done`` (the simulator has played its scenario, the
worker has decided on every CDR it sent, and every decision it published is
shown) stops everything it started, in reverse order.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess  # noqa: S404 - we start our own commands
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from kafka import KafkaConsumer, TopicPartition

from models.allowlist import AllowList
from models.registry import ModelRegistry
from streams.broker import LocalBroker, free_port, wait_for_port
from streams.http.access.roles import Role
from streams.http.access.users import UserStore
from streams.settings import load_settings

__all__ = ["DemoOptions", "run_demo"]


@dataclass(frozen=True)
class DemoOptions:
    """What the demo runs and for how long."""

    home: Path = Path("var/demo")
    scenario: str = "default"
    acceleration: float = 120.0
    duration_s: float | None = None
    until_done: bool = False
    live: bool = True
    web_port: int = 6066


@dataclass
class Decisions:
    """Latest decision per number, as an interception system would keep them."""

    latest: dict[str, dict] = field(default_factory=dict)
    received: int = 0

    def add(self, decision: dict) -> None:
        self.latest[decision["number"]] = decision
        self.received += 1

    def flagged(self) -> list[dict]:
        rows = [d for d in self.latest.values() if d["action"] in ("block", "watch")]
        return sorted(rows, key=lambda d: (d["action"] != "block", -d["score"]))


def _say(text: str) -> None:
    print(f"[demo] {text}", file=sys.stderr, flush=True)


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "streams", *args]


@contextmanager
def _process(name: str, argv: list[str], env: dict[str, str], log: Path) -> Iterator[
    subprocess.Popen[bytes]
]:
    """A child in its own process group; terminated (then killed) on exit."""
    with open(log, "ab") as output:
        process = subprocess.Popen(  # noqa: S603 - our own argv
            argv, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        _say(f"{name} stopped")


def _ensure_model(home: Path, env: dict[str, str]) -> None:
    registry = ModelRegistry(home / "models")
    if registry.current() is not None:
        _say(f"model {registry.current().version} serves (delete {home} to retrain)")
        return
    _say("no model yet: training one on simulated data (about a minute)")
    subprocess.run(  # noqa: S603
        _command("train", "--simulate", "small", "--registry", str(home / "models"),
                 "--evaluate-on", "heldout", "--promote", "-q"),
        env=env, check=True, stdout=subprocess.DEVNULL,
    )
    _say(f"trained and promoted {registry.current().version}")


def _ensure_allowlist(path: Path) -> None:
    with AllowList.open(path) as allowlist:
        if not allowlist.entries():
            allowlist.seed_defaults(actor="callguard-demo")


DEMO_OPERATOR = "demo"


def _issue_operator_token(path: Path) -> str:
    """A fresh token for the operator ``demo`` (tokens are stored hashed: a new one each run)."""
    with UserStore.open(path) as users:
        if any(user.name == DEMO_OPERATOR and user.active for user in users.users()):
            users.revoke(DEMO_OPERATOR, actor="callguard-demo")
        return users.add(DEMO_OPERATOR, Role.OPERATOR, actor="callguard-demo")[1]


def run_demo(options: DemoOptions) -> int:
    """Run the demo until Ctrl-C or ``options.duration_s``; the number of flagged numbers."""
    home = options.home.resolve()
    (home / "logs").mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "CALLGUARD_MODEL_DIR": str(home / "models"),
        "CALLGUARD_ALLOWLIST_PATH": str(home / "allowlist.sqlite"),
        "CALLGUARD_USERS_PATH": str(home / "users.sqlite"),
        "CALLGUARD_STORE_URL": f"chdb://{home / 'chdb'}",
        "CALLGUARD_DATA_DIR": str(home / "worker"),
        "CALLGUARD_WEB_PORT": str(options.web_port),
        "CALLGUARD_LOOKUP_EVENT_TIME": "true",
        # The simulated clock runs in 2018: keep its decisions past the retention TTL.
        "CALLGUARD_STORE_RETENTION_DAYS": "36500",
    }
    _ensure_model(home, env)
    _ensure_allowlist(home / "allowlist.sqlite")
    token = _issue_operator_token(home / "users.sqlite")
    decisions = Decisions()
    with ExitStack() as stack:
        broker = stack.enter_context(LocalBroker(free_port(), log_path=home / "logs/broker.log"))
        env["CALLGUARD_BROKER_URL"] = broker.url
        _say(f"broker on {broker.url} (in memory)")
        worker = stack.enter_context(
            _process("worker", _command("worker"), env, home / "logs/worker.log")
        )
        wait_for_port("127.0.0.1", options.web_port, 60)
        base = f"http://127.0.0.1:{options.web_port}"
        _say(f"worker up; dashboard {base}/dashboard : sign in at {base}/login as "
             f"{DEMO_OPERATOR!r} (operator) with the token\n[demo]   {token}")
        _say(f"machines: curl -H 'Authorization: Bearer <token>' {base}/numbers/<number> "
             f"(a service token: callguard users add NAME --role service)")
        simulator = stack.enter_context(
            _process(
                "simulator",
                _command("simulate", "--scenario", _scenario_path(options.scenario), "--kafka",
                         broker.bootstrap, "--acceleration", str(options.acceleration), "-q"),
                env, home / "logs/simulator.log",
            )
        )
        _say(f"simulator playing the {options.scenario!r} scenario at {options.acceleration:g}x")
        try:
            _watch(broker.bootstrap, decisions, worker, options,
                   _Playback(simulator, home / "logs/simulator.log", base, token))
        except KeyboardInterrupt:
            _say("stopping")
    flagged = decisions.flagged()
    _say(f"{decisions.received} decisions, {len(flagged)} numbers flagged now; "
         f"logs in {home / 'logs'}")
    return len(flagged)


def _scenario_path(name: str) -> str:
    from importlib import resources

    return str(resources.files("simulator") / "scenarios" / f"{name}.yaml")


@dataclass
class _Playback:
    """The simulator's run, and whether the worker has taken in everything it sent."""

    simulator: subprocess.Popen[bytes]
    log: Path
    worker_url: str
    token: str
    sent: int | None = None

    def decisions_when_done(self) -> int | None:
        """How many decisions the worker published, once it has decided on every CDR sent.

        ``None`` until the simulator is done, the worker has read every CDR it
        sent (into the feature stage or the dead letter) and every row emitted
        from them is scored (the worker's ``/status`` counters).
        """
        if self.simulator.poll() is None:
            return None
        if self.sent is None:
            if self.simulator.returncode != 0:
                raise RuntimeError(f"the simulator exited with code {self.simulator.returncode}; "
                                   f"see {self.log}")
            found = re.findall(r"^sent (\d+) CDRs", self.log.read_text(errors="replace"), re.M)
            if not found:
                raise RuntimeError(f"the simulator did not say what it sent; see {self.log}")
            self.sent = int(found[-1])
            _say(f"simulator done: {self.sent} CDRs sent; waiting for the worker to decide on them")
        request = urllib.request.Request(  # noqa: S310 - the demo's own worker
            f"{self.worker_url}/status", headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            counters = orjson.loads(response.read())["counters"]
        features, decided = counters["features"], counters["decisions"]
        if features["calls"] + counters["records_rejected"] < self.sent:
            return None
        if features["emitted"] != decided["scored"]:
            return None
        return sum(decided[action] for action in ("block", "watch", "clear"))


def _watch(
    bootstrap: str,
    decisions: Decisions,
    worker: subprocess.Popen[bytes],
    options: DemoOptions,
    playback: _Playback,
) -> None:
    consumer = _flag_consumer(bootstrap)
    deadline = None if options.duration_s is None else time.monotonic() + options.duration_s
    view = _View(options.live)
    published: int | None = None
    try:
        while deadline is None or time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with code {worker.returncode}")
            if options.until_done and published is None:
                published = playback.decisions_when_done()
            if published is not None and decisions.received >= published:
                _say(f"every CDR decided on and all {published} decisions shown")
                break
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    decision = orjson.loads(record.value)
                    decisions.add(decision)
                    view.decision(decision)
            view.refresh(decisions)
    finally:
        view.close()
        consumer.close()


def _flag_consumer(bootstrap: str) -> KafkaConsumer:
    topic = load_settings().topic_flags
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    deadline = time.monotonic() + 60
    while not consumer.partitions_for_topic(topic):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{topic} never appeared: is the worker running?")
        consumer.topics()
        time.sleep(0.5)
    numbers = consumer.partitions_for_topic(topic)
    partitions = [TopicPartition(topic, partition) for partition in sorted(numbers)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    return consumer


class _View:
    """A live table on a terminal; one line per decision otherwise."""

    def __init__(self, live: bool) -> None:
        self.live = None
        if live and sys.stdout.isatty():
            from rich.live import Live

            self.live = Live(refresh_per_second=2)
            self.live.start()

    def decision(self, decision: dict) -> None:
        if self.live is None:
            reason = decision["reasons"][0] if decision["reasons"] else ""
            print(f"{decision['flagged_at']}  {decision['action']:<5}  {decision['number']:<15} "
                  f"{decision['category']:<17} {decision['score']:.3f}  {reason}", flush=True)

    def refresh(self, decisions: Decisions) -> None:
        if self.live is None:
            return
        from rich.table import Table

        table = Table(title=f"flagged numbers ({decisions.received} decisions so far)")
        for column in ("action", "number", "category", "score", "since", "why"):
            table.add_column(column)
        for row in decisions.flagged()[:25]:
            table.add_row(row["action"], row["number"], row["category"], f"{row['score']:.3f}",
                          row["flagged_at"][:19], (row["reasons"] or [""])[0][:70])
        self.live.update(table)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
