"""The ``callguard`` command: a thin shell over the library."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from streams.settings import ConfigurationError, Settings, load_settings

__all__ = ["main"]

cli = typer.Typer(
    name="callguard",
    help="Spot nuisance callers from call detail records.",
    no_args_is_help=True,
    add_completion=False,
)


def _settings(**overrides: object) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigurationError as error:
        typer.echo(f"callguard: {error}", err=True)
        raise typer.Exit(2) from None


@cli.command()
def broker(
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1.")] = 9092,
    log: Annotated[Path | None, typer.Option(help="Append the broker's log here.")] = None,
) -> None:
    """Run the local in-memory Kafka-protocol broker (Tansu) until Ctrl-C."""
    from streams.broker import LocalBroker

    local = LocalBroker(port, log_path=log)
    try:
        local.start()
    except (TimeoutError, RuntimeError) as error:
        typer.echo(f"callguard broker: could not start: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"broker ready on {local.url} (memory only: topics vanish when it stops)")
    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt  # stop below, outside the signal handler

    signal.signal(signal.SIGTERM, interrupted)
    try:
        code = local.wait()
    except KeyboardInterrupt:
        local.stop()
        code = 0
    raise typer.Exit(code)


@cli.command()
def worker(
    broker_url: Annotated[
        str | None, typer.Option("--broker", help="kafka://host:port (env CALLGUARD_BROKER_URL).")
    ] = None,
    web_port: Annotated[int | None, typer.Option(help="Worker HTTP port.")] = None,
    loglevel: Annotated[
        str | None,
        typer.Option(help="debug, info, warning or error (env CALLGUARD_LOG_LEVEL; info)."),
    ] = None,
) -> None:
    """Run a Faust worker: ingest, features, scoring and sinks."""
    from streams.app import create_app, run_worker
    from streams.tuning.gc_tuning import tune

    settings = _settings(broker_url=broker_url, web_port=web_port, log_level=loglevel)
    app = create_app(settings)
    if settings.changelog_nudge_s > 0:
        from streams.workarounds.hw_nudge import nudge_before_start

        nudge_before_start(settings.bootstrap_servers, app.changelog_topics)
    tune(settings.gc_thresholds)
    raise typer.Exit(run_worker(app))


@cli.command()
def appeal(
    number: Annotated[str, typer.Argument(help="The flagged number, any format.")],
    actor: Annotated[str, typer.Option(help="Who upholds the appeal (recorded).")],
    why: Annotated[str, typer.Option(help="Why the flag is lifted (recorded).")],
    broker_url: Annotated[
        str | None, typer.Option("--broker", help="kafka://host:port (env CALLGUARD_BROKER_URL).")
    ] = None,
) -> None:
    """Lift a number's flag on appeal: the owning worker publishes a clear and audits it."""
    import time

    from kafka import KafkaProducer

    from contracts.by_caller import AppealColumns, RoutedBatch, encode_routed
    from contracts.numbers import NumberError, normalise
    from streams.pipeline.ingest import partition_for_number

    settings = _settings(broker_url=broker_url)
    if not actor.strip() or not why.strip():
        typer.echo("callguard appeal: --actor and --why must not be empty", err=True)
        raise typer.Exit(2)
    try:
        normalised = normalise(number, settings.default_region)
    except NumberError as error:
        typer.echo(f"callguard appeal: {number!r}: {error}", err=True)
        raise typer.Exit(2) from None
    batch = RoutedBatch(
        appeals=AppealColumns([normalised], [actor], [why], [int(time.time() * 1000)])
    )
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    try:
        producer.send(
            settings.topic_by_caller,
            encode_routed(batch),
            partition=partition_for_number(normalised, settings.partitions),
        ).get(timeout=30)
    finally:
        producer.close()
    typer.echo(f"appeal for {normalised} sent; the owning worker will publish a clear")


@cli.command()
def demo(
    duration: Annotated[
        float | None, typer.Option("--duration", help="Stop after this many seconds.")
    ] = None,
    until_done: Annotated[
        bool,
        typer.Option("--until-done", help="Stop once the scenario is played, every CDR "
                     "decided on and every decision shown."),
    ] = False,
    acceleration: Annotated[
        float, typer.Option(help="Simulated seconds per wall second.")
    ] = 120.0,
    scenario: Annotated[str, typer.Option(help="Built-in scenario: default or tiny.")] = "default",
    home: Annotated[Path, typer.Option(help="Where the demo keeps its state.")] = Path("var/demo"),
    live: Annotated[bool, typer.Option("--live/--plain", help="Live table or plain lines.")] = True,
    web_port: Annotated[int, typer.Option(help="The worker's HTTP port.")] = 6066,
) -> None:
    """Run everything on embedded defaults and show flagged numbers as they arrive."""
    from streams.demo import DemoOptions, run_demo

    flagged = run_demo(
        DemoOptions(home=home, scenario=scenario, acceleration=acceleration,
                    duration_s=duration, until_done=until_done, live=live, web_port=web_port)
    )
    raise typer.Exit(0 if flagged or (duration is None and not until_done) else 1)


def _mount_subcommands() -> None:
    from models.cli import allow_app
    from models.cli import app as models_app
    from models.train_cli import app as train_app
    from simulator.cli import app as simulate_app
    from sinks.cli import app as db_app
    from streams.http.access.cli import users_app
    from streams.review_cli import app as review_app

    cli.add_typer(simulate_app, name="simulate")
    cli.add_typer(train_app, name="train")
    cli.add_typer(models_app, name="models", help="List, show, promote and roll back models.")
    cli.add_typer(allow_app, name="allow", help="Numbers and ranges that are never flagged.")
    cli.add_typer(db_app, name="db", help="ClickHouse schema, retention and flag queries.")
    cli.add_typer(review_app, name="review", help="The review queue: confirm or dismiss watches.")
    cli.add_typer(users_app, name="users", help="Users of the dashboard and HTTP API.")


_mount_subcommands()


def main() -> None:
    """Console-script entry point."""
    try:
        cli()
    except ConfigurationError as error:
        print(f"callguard: {error}", file=sys.stderr)
        sys.exit(2)
