"""``callguard models ...`` and ``callguard allow ...``: shells over the registry and allow-list.

Mount with ``cli.add_typer(app, name="models")`` and
``cli.add_typer(allow_app, name="allow")``. Refusals print one line on
stderr and exit with status 2.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from contracts.numbers import NumberError, normalise
from models.allowlist import AllowList, AllowListError
from models.registry import ModelRegistry, RegistryError
from models.registry_metadata import ModelMetadata

__all__ = ["allow_app", "app"]

app = typer.Typer(
    name="models", help="List, inspect, promote and roll back models.", no_args_is_help=True,
    add_completion=False,
)
allow_app = typer.Typer(
    name="allow", help="Numbers and ranges that are never flagged.", no_args_is_help=True,
    add_completion=False,
)

RegistryDir = Annotated[
    Path,
    typer.Option("--registry", envvar="CALLGUARD_MODEL_DIR", help="Model registry directory."),
]
AllowListPath = Annotated[
    Path,
    typer.Option("--allowlist", envvar="CALLGUARD_ALLOWLIST_PATH", help="Allow-list SQLite file."),
]
Actor = Annotated[str, typer.Option("--actor", help="Who makes the change (audited).")]
Why = Annotated[str, typer.Option("--why", help="Why (audited; required).")]
DEFAULT_REGISTRY = Path("var/callguard/models")
DEFAULT_ALLOWLIST = Path("var/callguard/allowlist.sqlite")


@contextmanager
def _refusals(command: str) -> Iterator[None]:
    """Turn a registry or allow-list refusal into one stderr line and exit status 2."""
    try:
        yield
    except (RegistryError, AllowListError) as error:
        typer.echo(f"callguard {command}: {error}", err=True)
        raise typer.Exit(2) from None


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns, two spaces apart; CJK characters count double."""
    widths = [max(_width(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        padded = zip(row, widths, strict=True)
        cells = [cell + " " * (width - _width(cell)) for cell, width in padded]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z"


def _metrics(metadata: ModelMetadata) -> str:
    return " ".join(f"{name}={value:.3f}" for name, value in sorted(metadata.metrics.items()))


@app.command("list")
def list_models(registry: RegistryDir = DEFAULT_REGISTRY) -> None:
    """Every registered version, oldest first; * marks the one serving."""
    with _refusals("models list"):
        store = ModelRegistry(registry)
        versions = store.list_versions()
        pointer = store.pointer()
    if not versions:
        typer.echo(f"no models registered in {registry}")
        return
    serving = pointer.version if pointer else None
    rows = [
        [
            "*" if meta.version == serving else "",
            meta.version,
            _when(meta.created_at),
            str(len(meta.feature_names)),
            f"{meta.thresholds['block']:.2f}/{meta.thresholds['watch']:.2f}",
            _metrics(meta),
        ]
        for meta in versions
    ]
    typer.echo(_table(["", "VERSION", "CREATED", "FEATURES", "BLOCK/WATCH", "METRICS"], rows))


@app.command("show")
def show_model(
    version: Annotated[str, typer.Argument(help="A version id, or 'current'.")],
    registry: RegistryDir = DEFAULT_REGISTRY,
    card: Annotated[bool, typer.Option("--card", help="Print the model card instead.")] = False,
) -> None:
    """Metadata (or the model card) of one version."""
    with _refusals("models show"):
        store = ModelRegistry(registry)
        if version == "current":
            pointer = store.pointer()
            if pointer is None:
                raise RegistryError("no model has been promoted yet")
            version = pointer.version
        meta = store.show(version)
        if card:
            typer.echo(store.card(version), nl=False)
            return
    rows = [
        ["version", meta.version],
        ["created", _when(meta.created_at)],
        ["classes", ", ".join(meta.classes)],
        ["thresholds", f"block >= {meta.thresholds['block']}, watch >= {meta.thresholds['watch']}"
                       " (max nuisance-class probability)"],
        ["metrics", _metrics(meta) or "-"],
        ["training data", f"sha256 {meta.training_data_sha256}"],
        ["artefact", f"sha256 {meta.artefact_sha256}"],
        ["libraries", ", ".join(f"{k} {v}" for k, v in sorted(meta.library_versions.items()))],
        ["notes", meta.notes or "-"],
    ]
    rows += [[f"feature {n}", name] for n, name in enumerate(meta.feature_names, 1)]
    typer.echo(_table(["FIELD", "VALUE"], rows))


@app.command("promote")
def promote_model(
    version: Annotated[str, typer.Argument(help="The version to serve.")],
    actor: Actor,
    why: Why,
    registry: RegistryDir = DEFAULT_REGISTRY,
) -> None:
    """Serve VERSION from now on (workers pick it up without a restart)."""
    with _refusals("models promote"):
        record = ModelRegistry(registry).promote(version, actor=actor, why=why)
    typer.echo(f"promoted {record.to_version} (was {record.from_version or 'nothing'})")


@app.command("rollback")
def rollback_model(actor: Actor, why: Why, registry: RegistryDir = DEFAULT_REGISTRY) -> None:
    """Serve again the version that was current before the last promotion."""
    with _refusals("models rollback"):
        record = ModelRegistry(registry).rollback(actor=actor, why=why)
    typer.echo(f"rolled back to {record.to_version} (was {record.from_version})")


@app.command("history")
def model_history(registry: RegistryDir = DEFAULT_REGISTRY) -> None:
    """Every promotion and rollback, oldest first."""
    with _refusals("models history"):
        records = ModelRegistry(registry).history()
    rows = [
        [_when(r.ts), r.actor, r.action, r.from_version or "-", r.to_version, r.why]
        for r in records
    ]
    typer.echo(_table(["WHEN", "WHO", "ACTION", "FROM", "TO", "WHY"], rows))


@contextmanager
def _allowlist(path: Path, command: str) -> Iterator[AllowList]:
    with _refusals(command):
        store = AllowList.open(path)
        try:
            yield store
        finally:
            store.close()


@allow_app.command("add")
def allow_add(
    pattern: Annotated[str, typer.Argument(help="A number, a prefix like 955* or 1380013*, "
                                                 "or a range like 955xx.")],
    actor: Actor,
    why: Why,
    allowlist: AllowListPath = DEFAULT_ALLOWLIST,
) -> None:
    """Never flag PATTERN."""
    with _allowlist(allowlist, "allow add") as store:
        entry = store.add(pattern, actor=actor, why=why)
    typer.echo(f"allowed {entry.pattern} ({entry.kind})")


@allow_app.command("remove")
def allow_remove(
    pattern: Annotated[str, typer.Argument(help="The entry, in any format that normalises to it.")],
    actor: Actor,
    why: Why,
    allowlist: AllowListPath = DEFAULT_ALLOWLIST,
) -> None:
    """Stop allowing PATTERN."""
    with _allowlist(allowlist, "allow remove") as store:
        entry = store.remove(pattern, actor=actor, why=why)
    typer.echo(f"removed {entry.pattern}")


@allow_app.command("list")
def allow_list(allowlist: AllowListPath = DEFAULT_ALLOWLIST) -> None:
    """Every allowed number and range."""
    with _allowlist(allowlist, "allow list") as store:
        entries = store.entries()
    rows = [[e.pattern, e.kind, e.added_by, _when(e.added_at), e.why] for e in entries]
    typer.echo(_table(["PATTERN", "KIND", "ADDED BY", "ADDED AT", "WHY"], rows))


@allow_app.command("audit")
def allow_audit(allowlist: AllowListPath = DEFAULT_ALLOWLIST) -> None:
    """Every change to the allow-list, oldest first."""
    with _allowlist(allowlist, "allow audit") as store:
        records = store.audit_log()
    rows = [[_when(r.ts), r.actor, r.action, r.pattern, r.why] for r in records]
    typer.echo(_table(["WHEN", "WHO", "ACTION", "PATTERN", "WHY"], rows))


@allow_app.command("check")
def allow_check(
    number: Annotated[str, typer.Argument(help="A phone number in any common format.")],
    allowlist: AllowListPath = DEFAULT_ALLOWLIST,
) -> None:
    """Whether NUMBER is allowed: exit 0 if it is, 1 if not, 2 if it is not a number."""
    try:
        normal = normalise(number)
    except NumberError as error:
        typer.echo(f"callguard allow check: {number!r} is not a number: {error}", err=True)
        raise typer.Exit(2) from None
    with _allowlist(allowlist, "allow check") as store:
        pattern = store.matcher().match(normal)
    if pattern is None:
        typer.echo(f"{normal} is not allowed")
        raise typer.Exit(1)
    typer.echo(f"{normal} is allowed by {pattern}")


@allow_app.command("seed-defaults")
def allow_seed(
    actor: Annotated[str, typer.Option("--actor", help="Recorded as the adder.")] = "callguard",
    allowlist: AllowListPath = DEFAULT_ALLOWLIST,
) -> None:
    """Add the default service numbers (95xxx, 12345, carriers, emergency) not yet present."""
    with _allowlist(allowlist, "allow seed-defaults") as store:
        added = store.seed_defaults(actor)
    typer.echo(f"added {len(added)} default entries" + "".join(f"\n  {e.pattern}" for e in added))
