"""``callguard train``: build the labelled table, train, report against the targets, register.

A thin shell over :mod:`models.dataset` and :mod:`models.training`. Mount
with ``cli.add_typer(app, name="train")``. The report goes to stdout;
status lines go to stderr, and only when stderr is a terminal (or never
with ``--quiet``). Exit status: 0 when trained (and registered), 1 when
``--require-targets`` is given and a target is not met, 2 for unusable input.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from models.dataset import build_training_data, read_parquet_dir
from models.registry import ModelRegistry, RegistryError
from models.training import (
    TrainingOptions,
    TrainingResult,
    register_candidate,
    train,
    with_family_evaluation,
)
from models.training_presets import training_scenario
from models.training_report import check_targets

__all__ = ["app", "train_command"]

DEFAULT_REGISTRY = Path("var/callguard/models")

app = typer.Typer(
    help="Train a candidate model, report it against the quality targets, register it.",
    no_args_is_help=False,
    add_completion=False,
)


@app.callback(invoke_without_command=True)
def train_command(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Parquet tables from `callguard simulate --out DIR`, or a carrier's export "
            "(cdrs and complaints; ground_truth and legit_callers optional: without ground "
            "truth, numbers 3 or more people reported are labelled by their reports).",
        ),
    ] = None,
    simulate: Annotated[
        str | None,
        typer.Option("--simulate", help="Simulate first: tiny, small or default."),
    ] = None,
    simulate_out: Annotated[
        Path | None,
        typer.Option("--simulate-out", help="Keep the simulated tables here (default: temp)."),
    ] = None,
    registry_dir: Annotated[
        Path,
        typer.Option("--registry", envvar="CALLGUARD_MODEL_DIR", help="Model registry directory."),
    ] = DEFAULT_REGISTRY,
    promote: Annotated[
        bool | None,
        typer.Option(
            "--promote/--no-promote",
            help="Serve the new model [default: only if no model serves yet].",
            show_default=False,
        ),
    ] = None,
    register: Annotated[
        bool, typer.Option("--register/--no-register", help="Register the candidate.")
    ] = True,
    actor: Annotated[
        str, typer.Option("--actor", help="Who trains (audited).")
    ] = "callguard-train",
    why: Annotated[str, typer.Option("--why", help="Why it is promoted (audited).")] = (
        "trained by callguard train"
    ),
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split and the model.")] = 0,
    evaluate_on: Annotated[
        str,
        typer.Option(
            "--evaluate-on",
            help=(
                "Scenario families held out of training, measured number by number, "
                "comma-separated: built-in scenario names, scenario files, Parquet dirs, "
                "or 'none'. The first is the one the quality targets are judged on."
            ),
        ),
    ] = "heldout,county",
    require_targets: Annotated[
        bool, typer.Option("--require-targets", help="Exit 1 when a quality target is not met.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No status lines.")] = False,
) -> None:
    """Train on --data DIR (or --simulate a scenario), print the metrics, register."""
    if (data is None) == (simulate is None):
        raise typer.BadParameter("give exactly one of --data DIR and --simulate NAME")
    families = _families(evaluate_on)
    status = _Status(enabled=not quiet and sys.stderr.isatty())
    with _refusals(), _data_dir(data, simulate, simulate_out, status) as data_dir:
        status.line(f"building the labelled feature table from {data_dir}")
        training_data = build_training_data(data_dir)
        table = training_data.table
        if not (Path(data_dir) / "ground_truth.parquet").is_file():
            typer.echo(
                f"{data_dir} has no ground_truth.parquet: nuisance labels come from complaints "
                "(numbers 3 or more people reported) and operators' decisions only, and every "
                "nuisance number nobody reported counts as normal; a model trained on them "
                "alone catches little (docs/detection.md, complaints as labels)",
                err=True,
            )
        nuisance = table.filter(pl.col("campaign_id").is_not_null())
        own = nuisance.filter(pl.col("campaign_id") < 0)["caller"].n_unique()
        status.line(
            f"{table.height} scored rows, {table['caller'].n_unique()} callers, "
            f"{nuisance['caller'].n_unique()} of them nuisance ({own} labelled by complaints "
            "or operators); training"
        )
        result = train(training_data, options=TrainingOptions(seed=seed))
        status.line(result.split.describe())
        for position, family in enumerate(families):
            result = _evaluated(result, family, status, primary=position == 0)
    typer.echo(result.report)
    if register:
        with _refusals():
            registry = ModelRegistry(registry_dir)
            metadata = register_candidate(result, registry, promote=promote, actor=actor, why=why)
            serving = registry.current()
        state = "serving" if serving and serving.version == metadata.version else "not promoted"
        typer.echo(f"registered {metadata.version} in {registry_dir} ({state})")
    unmet = [target.metric for target, _value, met in check_targets(result.metrics) if not met]
    if unmet:
        typer.echo(f"targets not met: {', '.join(unmet)}", err=True)
        if require_targets:
            raise typer.Exit(1)


class _Status:
    """Status lines on stderr with the elapsed time, for people watching a terminal."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.started = time.monotonic()

    def line(self, text: str) -> None:
        if self.enabled:
            typer.echo(f"[{time.monotonic() - self.started:6.1f} s] {text}", err=True)


@contextmanager
def _data_dir(
    data: Path | None, scenario: str | None, keep: Path | None, status: _Status
) -> Iterator[Path]:
    if data is not None:
        yield data
        return
    from simulator.parquet import write_parquet

    assert scenario is not None  # one of the two is given  # noqa: S101
    chosen = training_scenario(scenario)
    if keep is not None:
        status.line(f"simulating scenario {scenario!r} into {keep}")
        write_parquet(chosen, keep, progress=status.enabled)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="callguard-train-") as temporary:
        status.line(f"simulating scenario {scenario!r} into a temporary directory")
        write_parquet(chosen, temporary, progress=status.enabled)
        yield Path(temporary)


def _families(evaluate_on: str) -> list[str]:
    """The families of ``--evaluate-on``, in order, each once; none for ``none``."""
    names = [name.strip() for name in evaluate_on.split(",") if name.strip()]
    if names == ["none"]:
        return []
    if "none" in names:
        raise typer.BadParameter(
            f"'none' cannot be combined with families: {evaluate_on!r}", param_hint="--evaluate-on"
        )
    return list(dict.fromkeys(names))


def _evaluated(
    result: TrainingResult, family: str, status: _Status, *, primary: bool
) -> TrainingResult:
    """``result`` measured on ``family`` (a scenario, simulated to a temporary dir, or a dir)."""
    from simulator.parquet import write_parquet
    from simulator.scenario import builtin_scenario, load_scenario

    with tempfile.TemporaryDirectory(prefix="callguard-heldout-") as temporary:
        where = Path(family)
        if not where.is_dir():
            scenario = load_scenario(where) if where.is_file() else builtin_scenario(family)
            status.line(f"simulating the held-out family {family!r}")
            write_parquet(scenario, temporary, progress=status.enabled)
            where = Path(temporary)
        status.line(f"measuring the model on {family!r}, number by number")
        calls = read_parquet_dir(where)
        return with_family_evaluation(
            result, build_training_data(calls), calls, family, primary=primary
        )


@contextmanager
def _refusals() -> Iterator[None]:
    """Unusable input or registry refusals: one stderr line, exit status 2."""
    from simulator.scenario import ScenarioError

    try:
        yield
    except (RegistryError, ScenarioError, FileNotFoundError, ValueError) as error:
        typer.echo(f"callguard train: {error}", err=True)
        raise typer.Exit(2) from None
