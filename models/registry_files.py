"""The registry's small files: the ``current`` pointer, the promotion history, the lock.

Every write is durable (fsync) and the pointer is replaced atomically, so a
reader sees the old pointer or the new one, never half of one.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from models.registry_errors import RegistryError

__all__ = [
    "CurrentPointer",
    "HistoryRecord",
    "append_history",
    "exclusive_lock",
    "read_history",
    "read_pointer",
    "write_durably",
    "write_pointer",
]


@dataclass(frozen=True)
class CurrentPointer:
    """Which version serves, and the artefact hash it was promoted with."""

    version: str
    artefact_sha256: str
    promoted_at: datetime
    promoted_by: str


@dataclass(frozen=True)
class HistoryRecord:
    """One promotion or rollback: who, when (aware UTC), from what, to what, why."""

    ts: datetime
    actor: str
    action: Literal["promote", "rollback"]
    from_version: str | None
    to_version: str
    why: str


def write_durably(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file, fsync, then atomically replace."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make renames and new files in ``directory`` survive a crash."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_pointer(path: Path, pointer: CurrentPointer) -> None:
    """Atomically make ``pointer`` the current one."""
    payload = {
        "version": pointer.version,
        "artefact_sha256": pointer.artefact_sha256,
        "promoted_at": pointer.promoted_at.isoformat(),
        "promoted_by": pointer.promoted_by,
    }
    write_durably(path, json.dumps(payload, indent=2) + "\n")


def read_pointer(path: Path) -> CurrentPointer | None:
    """The current pointer, or ``None`` when nothing was ever promoted."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return CurrentPointer(
            version=str(data["version"]),
            artefact_sha256=str(data["artefact_sha256"]),
            promoted_at=datetime.fromisoformat(data["promoted_at"]),
            promoted_by=str(data["promoted_by"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RegistryError(f"current pointer {path} is unreadable: {error}") from None


def append_history(path: Path, record: HistoryRecord) -> None:
    """Append ``record`` to the JSON-lines history and fsync it."""
    line = json.dumps(_record_to_json(record), ensure_ascii=False) + "\n"
    with path.open("a", encoding="utf-8") as history:
        history.write(line)
        history.flush()
        os.fsync(history.fileno())


def read_history(path: Path) -> list[HistoryRecord]:
    """Every promotion and rollback, oldest first."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            records.append(
                HistoryRecord(
                    ts=datetime.fromisoformat(data["ts"]),
                    actor=data["actor"],
                    action=data["action"],
                    from_version=data["from"],
                    to_version=data["to"],
                    why=data["why"],
                )
            )
        except (ValueError, KeyError, TypeError) as error:
            raise RegistryError(f"{path} line {number} is malformed: {error}") from None
    return records


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (one writer at a time, across processes)."""
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _record_to_json(record: HistoryRecord) -> dict[str, Any]:
    return {
        "ts": record.ts.isoformat(),
        "actor": record.actor,
        "action": record.action,
        "from": record.from_version,
        "to": record.to_version,
        "why": record.why,
    }
