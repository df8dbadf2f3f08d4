"""docker-compose.yml: valid against the Compose Specification, complete, and in order.

No Docker engine runs on the development machines, so the file is checked,
not started. The schema is the Compose Specification's JSON schema from the
docker-compose 1.29.2 wheel, fetched once by ``scripts/compose-schema.sh``
(``make setup``) into ``.venv/share/compose-spec/``; without it and without
a network this test skips, saying so.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest
import yaml
from jsonschema import Draft201909Validator

from sinks.cli import READER_PASSWORD_ENV, WRITER_PASSWORD_ENV
from streams.settings import Settings
from tests.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = ROOT / ".venv" / "share" / "compose-spec" / "compose_spec.json"
OFFLINE = re.compile(
    r"NewConnectionError|Name or service not known|Temporary failure in name resolution|"
    r"Network is unreachable|No matching distribution found|Could not find a version",
)
# Read by the `callguard db migrate` command itself, not by Settings.
CLI_VARIABLES = {WRITER_PASSWORD_ENV, READER_PASSWORD_ENV}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    if not SCHEMA.exists():
        done = subprocess.run(  # noqa: S603 - our script, fixed arguments
            ["bash", str(ROOT / "scripts" / "compose-schema.sh"), str(SCHEMA)],
            capture_output=True, text=True, timeout=300, check=False,
        )
        if done.returncode != 0:
            if OFFLINE.search(done.stderr):
                pytest.skip(f"{SCHEMA} is missing and PyPI cannot be reached: run "
                            "scripts/compose-schema.sh (make setup) with a network")
            pytest.fail(f"scripts/compose-schema.sh failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(SCHEMA.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def callguard_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: service for name, service in compose["services"].items()
            if str(service.get("image", "")).startswith("callguard:")}


def test_the_file_follows_the_compose_specification(schema, compose) -> None:
    errors = sorted(Draft201909Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, error.path)) or '(top)'}: {error.message}" for error in errors)


def test_every_referenced_file_exists(compose) -> None:
    missing = []
    for name, service in compose["services"].items():
        build = service.get("build")
        if build is not None:
            context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get(
                "dockerfile", "Dockerfile")
            if not (context / dockerfile).is_file():
                missing.append(f"{name}: build {context / dockerfile}")
        for env_file in _as_list(service.get("env_file")):
            if not (ROOT / env_file).is_file():
                missing.append(f"{name}: env_file {env_file}")
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source")
            if source and source.startswith((".", "/")) and not (ROOT / source).exists():
                missing.append(f"{name}: volume source {source}")
    assert not missing, missing


def test_callguard_services_set_only_settings_that_exist(compose) -> None:
    known = {f"CALLGUARD_{name.upper()}" for name in Settings.model_fields} | CLI_VARIABLES
    services = callguard_services(compose)
    assert len(services) >= 4  # migrate, two workers, simulator
    for name, service in services.items():
        environment = service.get("environment", {})
        names = environment if isinstance(environment, dict) else [
            item.split("=", 1)[0] for item in environment]
        unknown = {var for var in names if var.startswith("CALLGUARD_")} - known
        assert not unknown, f"{name} sets variables Settings does not declare: {unknown}"


def test_workers_share_the_partitions_on_apache_kafka(compose) -> None:
    workers = {name: s for name, s in callguard_services(compose).items()
               if s.get("command") == ["worker"]}
    assert len(workers) >= 2
    groups = {s["environment"].get("CALLGUARD_APP_ID", "callguard") for s in workers.values()}
    assert len(groups) == 1, "workers in different consumer groups do not share partitions"
    data_dirs = [s["environment"].get("CALLGUARD_DATA_DIR") for s in workers.values()]
    assert len(set(data_dirs)) == len(data_dirs), "two workers on one data directory"
    for worker in workers.values():
        env = worker["environment"]
        assert env["CALLGUARD_CHANGELOG_NUDGE_S"] == "0"
        assert env["CALLGUARD_STORE_MIGRATE_ON_START"] == "false"
        assert env["CALLGUARD_STORE_URL"].startswith("clickhouse://callguard_writer@")
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert compose["services"]["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert compose["services"]["simulator"]["profiles"] == ["simulator"]


def test_health_checks_and_start_order(compose) -> None:
    services = compose["services"]
    for name in ("kafka", "clickhouse", "grafana", "worker-1", "worker-2"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no health check"
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            condition = rule["condition"]
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if condition == "service_healthy":
                assert services[dependency].get("healthcheck"), (name, dependency)
            elif condition == "service_completed_successfully":
                assert services[dependency].get("restart") == "no", (name, dependency)
    for name in ("worker-1", "worker-2", "grafana"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully")
    assert services["migrate"]["depends_on"]["clickhouse"]["condition"] == "service_healthy"


def test_grafana_reads_the_store_as_the_reader(compose) -> None:
    grafana = compose["services"]["grafana"]
    assert grafana["image"].startswith("grafana/grafana:")
    assert "grafana-clickhouse-datasource" in grafana["environment"]["GF_INSTALL_PLUGINS"]
    datasources = yaml.safe_load(
        (ROOT / "grafana/provisioning/datasources/clickhouse.yaml").read_text())["datasources"]
    (source,) = datasources
    assert source["type"] == "grafana-clickhouse-datasource"
    assert source["jsonData"]["username"] == "callguard_reader"
    secret = source["secureJsonData"]["password"].lstrip("$").strip("{}")
    assert secret in grafana["environment"], "the reader's password does not reach Grafana"
    providers = yaml.safe_load(
        (ROOT / "grafana/provisioning/dashboards/callguard.yaml").read_text())["providers"]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"] if v.startswith(".")}
    for provider in providers:
        repo_dir = mounted[provider["options"]["path"]]
        assert list((ROOT / repo_dir).glob("*.json")), f"no dashboards in {repo_dir}"


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)

