"""``callguard simulate``: a thin shell over the simulator's Python API.

Mounted by the main CLI (``app.add_typer(simulator.cli.app, name="simulate")``)
or run alone: ``python -m simulator --scenario simulator/scenarios/tiny.yaml --out var/sim``.
``--scenario`` also takes a built-in scenario's bare name: ``--scenario heldout``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer

from simulator.kafka import Encoding, produce_to_kafka
from simulator.parquet import write_parquet
from simulator.scenario import (
    Scenario,
    ScenarioError,
    builtin_scenario,
    load_scenario,
    with_overrides,
)

__all__ = ["app", "simulate_command"]

app = typer.Typer(
    help="Generate synthetic CDRs, complaints and ground truth from a scenario.",
    no_args_is_help=False,
    add_completion=False,
)


@app.callback(invoke_without_command=True)
def simulate_command(
    scenario: Annotated[
        Path | None,
        typer.Option(
            "--scenario",
            "-s",
            help="Scenario file (.yaml/.toml) or built-in name (default, heldout, county, tiny).",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write Parquet tables to this directory.")
    ] = None,
    kafka: Annotated[
        str | None, typer.Option("--kafka", help="Produce to this Kafka bootstrap (host:port).")
    ] = None,
    rate: Annotated[
        float | None, typer.Option("--rate", min=0.001, help="Cap in CDRs a second (Kafka).")
    ] = None,
    acceleration: Annotated[
        float | None,
        typer.Option("--acceleration", min=0.001, help="Simulated seconds per wall second."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Override the scenario's seed.")
    ] = None,
    duration: Annotated[
        str | None, typer.Option("--duration", help="Override the duration: 6h, 2d, 1w.")
    ] = None,
    topic: Annotated[str, typer.Option("--topic", help="CDR topic.")] = "cdr.raw",
    complaints_topic: Annotated[
        str, typer.Option("--complaints-topic", help="Complaints topic.")
    ] = "complaints",
    encoding: Annotated[
        Encoding,
        typer.Option("--encoding", help="CDR batches on Kafka: json arrays or Arrow IPC streams."),
    ] = "json",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Simulate a scenario to Parquet (--out) and/or Kafka (--kafka)."""
    if out is None and kafka is None:
        raise typer.BadParameter("give --out DIR, --kafka BOOTSTRAP or both", param_hint="--out")
    try:
        chosen = _chosen_scenario(scenario)
        chosen = with_overrides(chosen, seed=seed, duration=duration)
    except ScenarioError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(code=2) from None
    progress = not quiet and sys.stderr.isatty()
    if out is not None:
        paths = write_parquet(chosen, out, progress=progress)
        typer.echo(f"wrote {paths.cdr_rows} CDRs and {paths.complaint_rows} complaints to {out}")
    if kafka is not None:
        stats = asyncio.run(
            produce_to_kafka(
                chosen,
                kafka,
                topic=topic,
                complaints_topic=complaints_topic,
                rate=rate,
                acceleration=acceleration,
                encoding=encoding,
                progress=progress,
            )
        )
        typer.echo(
            f"sent {stats.cdrs} CDRs in {stats.messages} messages and {stats.complaints} "
            f"complaints to {kafka} in {stats.seconds:.1f} s"
        )


def _chosen_scenario(scenario: Path | None) -> Scenario:
    """A scenario file, or a built-in one by bare name (``heldout``), or ``default``."""
    if scenario is None:
        return builtin_scenario("default")
    if not scenario.exists() and not scenario.suffix and scenario.parent == Path():
        return builtin_scenario(scenario.name)
    return load_scenario(scenario)
