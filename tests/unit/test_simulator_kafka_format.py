"""Kafka messages built from a chunk, checked against the contract without a broker."""

import orjson
import polars as pl
import pytest
from typer.testing import CliRunner

from contracts.cdr import validate_message
from contracts.numbers import normalise
from simulator.cli import app
from simulator.kafka import kafka_messages, raw_number_expr
from simulator.run import simulate
from simulator.scenario import builtin_scenario, with_overrides


@pytest.mark.parametrize(
    ("number", "styles"),
    [
        ("+8613800138000", ["13800138000", "138-0013-8000", "008613800138000"]),
        ("+861012345678", ["01012345678", "010-12345678", "(010)12345678"]),
        ("+8675512345678", ["075512345678", "0755-12345678", "(0755)12345678"]),
        ("+864001234567", ["400-123-4567", "400-123-4567", "00864001234567"]),
        ("95588", ["95588", "95588", "95588"]),
        ("+85251234567", ["+85251234567"] * 3),
    ],
)
def test_raw_formats_normalise_back(number: str, styles: list[str]) -> None:
    frame = pl.DataFrame({"number": [number] * 4, "style": [0, 1, 2, 3]})
    raw = frame.select(raw_number_expr(pl.col("number"), pl.col("style")))["number"].to_list()
    assert raw == [number, *styles]
    assert all(normalise(text) == number for text in raw)


def test_messages_validate_and_match_the_parquet_form() -> None:
    scenario = with_overrides(builtin_scenario("tiny"), duration="1h")
    chunk = next(simulate(scenario))
    messages = kafka_messages(chunk, scenario, topic="cdr.raw", complaints_topic="complaints",
                              batch_size=50)
    cdr_messages = [m for m in messages if m.topic == "cdr.raw"]
    assert sum(m.cdrs for m in cdr_messages) == chunk.cdrs.height
    assert max(m.cdrs for m in cdr_messages) == 50
    releases = [m.release_ms for m in messages]
    assert releases == sorted(releases)
    expected = {row["cdr_id"]: row for row in chunk.cdrs.iter_rows(named=True)}
    raw_numbers = text_times = 0
    for message in cdr_messages:
        decoded = orjson.loads(message.value)
        # Raw: not in normal form (bare service numbers like 95588 are normal).
        raw_numbers += sum(normalise(record["caller"]) != record["caller"] for record in decoded)
        text_times += sum(isinstance(record["start_time"], str) for record in decoded)
        result = validate_message(message.value)
        assert result.rejections == []
        for cdr in result.cdrs:
            row = expected.pop(cdr.cdr_id)
            assert (cdr.caller, cdr.callee, cdr.start_ms) == (
                row["caller"], row["callee"], row["start_ms"])
            assert (cdr.disposition.value, cdr.duration_s, cdr.ring_s) == (
                row["disposition"], row["duration_s"], row["ring_s"])
        assert message.release_ms >= max(cdr.start_ms for cdr in result.cdrs)
    assert not expected
    # About 30% of numbers and times arrive in raw forms.
    assert 0.1 * chunk.cdrs.height < raw_numbers < 0.5 * chunk.cdrs.height
    assert 0.2 * chunk.cdrs.height < text_times < 0.4 * chunk.cdrs.height
    complaints = [orjson.loads(m.value) for m in messages if m.topic == "complaints"]
    assert len(complaints) == chunk.complaints.height
    assert all(set(c) == {"complaint_id", "reporter", "reported", "category", "time_ms"}
               for c in complaints)


def test_cli_writes_parquet_and_explains_bad_input(tmp_path) -> None:
    runner = CliRunner()
    tiny = "simulator/scenarios/tiny.yaml"
    result = runner.invoke(app, ["--scenario", tiny, "--duration", "1h", "--out",
                                 str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    written = {path.name for path in tmp_path.iterdir()}
    assert {"cdrs.parquet", "complaints.parquet", "ground_truth.parquet",
            "legit_callers.parquet"} <= written
    assert pl.read_parquet(tmp_path / "cdrs.parquet").height > 0

    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\nsubscribers:\n  cuont: 10\n")
    result = runner.invoke(app, ["--scenario", str(bad), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "subscribers.cuont: unknown field" in result.output
    result = runner.invoke(app, ["--scenario", tiny])
    assert result.exit_code != 0
    assert "--out" in result.output


def test_cli_takes_a_built_in_scenario_by_name(tmp_path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app, ["--scenario", "heldout", "--duration", "1h", "--out", str(tmp_path), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(tmp_path / "campaigns.parquet")["category"].n_unique() == 6
    unknown = runner.invoke(app, ["--scenario", "huge", "--out", str(tmp_path)])
    assert unknown.exit_code == 2
    assert "no built-in scenario named 'huge'" in unknown.output
