"""``callguard review``: the review queue from the command line.

``list`` shows the watches in force; ``confirm`` blocks one (source
``operator``); ``dismiss`` clears a flag as a false positive and holds the
number as an upheld appeal does; ``labels`` writes the operators' labelled
examples as ``operator_labels.parquet`` for ``callguard train --data DIR``.
The checks, the message to the owning worker and the audit are the
dashboard's (:mod:`streams.http.dashboard.review_queue`). Mount with
``cli.add_typer(app, name="review")``.

The store comes from ``--url`` or ``CALLGUARD_STORE_URL`` as for ``callguard
db``; an embedded (chDB) store is locked by a running worker, so ``confirm``
and ``dismiss`` take ``--no-check`` to send without reading it first.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from models.operator_labels import LABELS_FILE, labels_frame
from sinks.cli import DEFAULT_STORE_URL, StoreUrl, _store, render_table
from sinks.clickhouse.labels import fetch_labels
from streams.http.dashboard.actions import ActionRefused
from streams.http.dashboard.queries import as_of
from streams.http.dashboard.review_queue import ReviewAction, refusal, review_queue
from streams.settings import ConfigurationError, Settings, load_settings

__all__ = ["app"]

app = typer.Typer(
    name="review",
    help="The review queue: list watches, confirm or dismiss them, export labelled examples.",
    no_args_is_help=True,
    add_completion=False,
)

QUEUE_COLUMNS = ("number", "category", "score", "flagged_at", "expires_at", "reasons")
Broker = Annotated[
    str | None, typer.Option("--broker", help="kafka://host:port (env CALLGUARD_BROKER_URL).")
]
Actor = Annotated[str, typer.Option("--actor", help="Who decides (recorded).")]
Reason = Annotated[str, typer.Option("--reason", help="Why (recorded).")]
Check = Annotated[
    bool,
    typer.Option("--check/--no-check", help="Refuse unless the store shows something to act on."),
]
EventTime = Annotated[
    bool,
    typer.Option(
        "--event-time/--wall-clock",
        envvar="CALLGUARD_LOOKUP_EVENT_TIME",
        help="Judge expiry by the store's latest decision time (replays, the demo).",
    ),
]


@app.command("list")
def list_command(
    url: StoreUrl = DEFAULT_STORE_URL,
    category: Annotated[str | None, typer.Option(help="Only this category.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 50,
    event_time: EventTime = False,
) -> None:
    """The watches in force, newest first: the numbers awaiting an operator's decision."""
    with _store(url) as store:
        rows = review_queue(store, as_of(store, event_time=event_time), category=category,
                            limit=limit)
    if not rows:
        typer.echo("nothing to review")
        return
    typer.echo(render_table(rows, QUEUE_COLUMNS))


@app.command()
def confirm(
    number: Annotated[str, typer.Argument(help="The watched number, any format.")],
    reason: Reason,
    actor: Actor,
    broker_url: Broker = None,
    url: StoreUrl = DEFAULT_STORE_URL,
    check: Check = True,
    event_time: EventTime = False,
) -> None:
    """Confirm a watch: the owning worker publishes a block (source operator)."""
    _send("confirm", number, reason, actor, broker_url, url if check else None, event_time)


@app.command()
def dismiss(
    number: Annotated[str, typer.Argument(help="The flagged number, any format.")],
    reason: Reason,
    actor: Actor,
    broker_url: Broker = None,
    url: StoreUrl = DEFAULT_STORE_URL,
    check: Check = True,
    event_time: EventTime = False,
) -> None:
    """Dismiss a flag as a false positive: cleared (source operator) and held like an appeal."""
    _send("dismiss", number, reason, actor, broker_url, url if check else None, event_time)


@app.command()
def labels(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the Parquet file to.")],
    url: StoreUrl = DEFAULT_STORE_URL,
    days: Annotated[int, typer.Option(min=1, help="Labels of the last this many days.")] = 365,
) -> None:
    """Write the operators' labelled examples to OUT/operator_labels.parquet.

    Put it next to the tables ``callguard train --data OUT`` reads.
    """
    since = datetime.now(UTC) - timedelta(days=days)
    with _store(url) as store:
        rows = fetch_labels(store, since=since)
    out.mkdir(parents=True, exist_ok=True)
    labels_frame(rows).write_parquet(out / LABELS_FILE)
    typer.echo(f"{len(rows)} labelled examples written to {out / LABELS_FILE}")


def _send(
    kind: str, number: str, reason: str, actor: str, broker_url: str | None,
    store_url: str | None, event_time: bool,
) -> None:
    from kafka import KafkaProducer

    settings = _settings(broker_url)
    try:
        action = ReviewAction.checked(kind, number, actor=actor, reason=reason,
                                      region=settings.default_region)
    except ActionRefused as error:
        typer.echo(f"callguard review {kind}: {error}", err=True)
        raise typer.Exit(2) from None
    if store_url is not None:
        with _store(store_url) as store:
            refused = refusal(store, action, as_of(store, event_time=event_time))
        if refused:
            typer.echo(f"callguard review {kind}: {refused}", err=True)
            raise typer.Exit(1)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    try:
        producer.send(
            settings.topic_by_caller,
            action.message(int(time.time() * 1000)),
            partition=action.partition(settings.partitions),
        ).get(timeout=30)
    finally:
        producer.close()
    outcome = "block" if kind == "confirm" else "clear"
    typer.echo(f"{kind} of {action.number} sent; the owning worker will publish a {outcome}")


def _settings(broker_url: str | None) -> Settings:
    try:
        return load_settings(**({"broker_url": broker_url} if broker_url else {}))
    except ConfigurationError as error:
        typer.echo(f"callguard review: {error}", err=True)
        raise typer.Exit(2) from None
