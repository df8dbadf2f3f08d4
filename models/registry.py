"""A file-system model registry: versioned skops artefacts, metadata, cards, a current pointer.

Layout under the root directory::

    <root>/<version>/model.skops     the artefact (skops, never pickle)
    <root>/<version>/metadata.json   :class:`ModelMetadata`, incl. the artefact's sha256
    <root>/<version>/MODEL_CARD.md   the model card
    <root>/current                   JSON pointer to the serving version (atomic replace)
    <root>/history.jsonl             every promotion and rollback: who, when, from, to, why

Version ids sort by registration time: ``20261122T143000Z-<first 8 hex of the sha256>``.
A version directory appears whole (it is built aside and renamed) and never changes.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from models.card import render_model_card
from models.registry_artefact import dump_artefact, load_artefact
from models.registry_errors import (
    FeatureMismatch,
    RegistryError,
    TamperedArtefact,
    UnknownVersion,
    UntrustedArtefact,
)
from models.registry_files import (
    CurrentPointer,
    HistoryRecord,
    append_history,
    exclusive_lock,
    fsync_directory,
    read_history,
    read_pointer,
    write_durably,
    write_pointer,
)
from models.registry_metadata import (
    ModelDraft,
    ModelMetadata,
    check_features,
    detect_library_versions,
)

__all__ = [
    "CurrentPointer",
    "FeatureMismatch",
    "HistoryRecord",
    "LoadedModel",
    "ModelDraft",
    "ModelMetadata",
    "ModelRegistry",
    "RegistryError",
    "TamperedArtefact",
    "UnknownVersion",
    "UntrustedArtefact",
    "check_features",
]

logger = logging.getLogger(__name__)

ARTEFACT_FILE = "model.skops"
METADATA_FILE = "metadata.json"
CARD_FILE = "MODEL_CARD.md"
_VERSION = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}")


@dataclass(frozen=True)
class LoadedModel:
    """A verified, loaded model and the metadata it was registered with."""

    model: Any
    metadata: ModelMetadata


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ModelRegistry:
    """Register, verify, load, promote and roll back models under one root directory."""

    def __init__(self, root: Path | str, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self.root = Path(root)
        self._clock = clock

    @property
    def pointer_path(self) -> Path:
        """The ``current`` pointer file (cheap to poll)."""
        return self.root / "current"

    @property
    def history_path(self) -> Path:
        """The promotion/rollback audit log."""
        return self.root / "history.jsonl"

    def register(
        self, model: Any, draft: ModelDraft, *, card_text: str | None = None
    ) -> ModelMetadata:
        """Save ``model`` as a new version; does not promote it.

        The artefact is saved, hashed and loaded back under the same checks
        :meth:`load` applies before the version becomes visible.
        """
        _check_model_against(model, draft)
        created_at = self._now()
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".register-", dir=self.root))
        try:
            artefact_sha256 = dump_artefact(model, staging / ARTEFACT_FILE)
            load_artefact(staging / ARTEFACT_FILE, artefact_sha256)
            metadata = ModelMetadata(
                version=f"{created_at:%Y%m%dT%H%M%SZ}-{artefact_sha256[:8]}",
                created_at=created_at,
                feature_names=draft.feature_names,
                classes=draft.classes,
                thresholds=dict(draft.thresholds),
                metrics=dict(draft.metrics),
                training_data_sha256=draft.training_data_sha256,
                library_versions=dict(draft.library_versions or detect_library_versions()),
                artefact_sha256=artefact_sha256,
                notes=draft.notes,
                extra=dict(draft.extra),
            )
            write_durably(staging / METADATA_FILE, _metadata_json(metadata))
            write_durably(staging / CARD_FILE, card_text or render_model_card(metadata))
            final = self.root / metadata.version
            if final.exists():
                raise RegistryError(f"version {metadata.version} is already registered")
            staging.rename(final)
            fsync_directory(self.root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return metadata

    def show(self, version: str) -> ModelMetadata:
        """The metadata of ``version``."""
        path = self._version_dir(version) / METADATA_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UnknownVersion(f"no model version {version} in {self.root}") from None
        except (OSError, ValueError) as error:
            raise RegistryError(f"{path} is unreadable: {error}") from None
        metadata = ModelMetadata.from_json_dict(data)
        if metadata.version != version:
            raise RegistryError(f"{path} describes version {metadata.version}, not {version}")
        return metadata

    def card(self, version: str) -> str:
        """The model card of ``version`` (Markdown)."""
        self.show(version)
        return (self._version_dir(version) / CARD_FILE).read_text(encoding="utf-8")

    def load(self, version: str) -> LoadedModel:
        """Load ``version`` after checking its sha256 and the types its artefact holds."""
        metadata = self.show(version)
        path = self._version_dir(version) / ARTEFACT_FILE
        model = load_artefact(path, metadata.artefact_sha256)
        _check_model_against(model, metadata)
        _warn_on_library_drift(metadata)
        return LoadedModel(model, metadata)

    def list_versions(self) -> list[ModelMetadata]:
        """Every registered version, oldest first."""
        if not self.root.is_dir():
            return []
        names = sorted(p.name for p in self.root.iterdir() if _VERSION.fullmatch(p.name))
        return [self.show(name) for name in names]

    def pointer(self) -> CurrentPointer | None:
        """The raw ``current`` pointer, or ``None`` before the first promotion."""
        return read_pointer(self.pointer_path)

    def current(self) -> ModelMetadata | None:
        """The serving version's metadata, or ``None`` before the first promotion."""
        pointer = self.pointer()
        return None if pointer is None else self.show(pointer.version)

    def load_pointer(self, pointer: CurrentPointer) -> LoadedModel:
        """Load the version ``pointer`` names, refusing it if its hash changed since promotion."""
        loaded = self.load(pointer.version)
        if loaded.metadata.artefact_sha256 != pointer.artefact_sha256:
            raise TamperedArtefact(
                f"{self._version_dir(pointer.version) / METADATA_FILE}: artefact sha256 is now "
                f"{loaded.metadata.artefact_sha256} but it was promoted with "
                f"{pointer.artefact_sha256}; refusing to serve it"
            )
        return loaded

    def history(self) -> list[HistoryRecord]:
        """Every promotion and rollback, oldest first."""
        return read_history(self.history_path)

    def promote(self, version: str, *, actor: str, why: str) -> HistoryRecord:
        """Make ``version`` the serving model, after verifying it loads cleanly."""
        actor, why = _require_reason(actor, why)
        with self._locked():
            metadata = self.load(version).metadata
            pointer = self.pointer()
            if pointer is not None and pointer.version == version:
                raise RegistryError(f"version {version} is already current")
            return self._switch(pointer, metadata, actor=actor, why=why, action="promote")

    def rollback(self, *, actor: str, why: str) -> HistoryRecord:
        """Serve again the version that was current before the last promotion."""
        actor, why = _require_reason(actor, why)
        with self._locked():
            stack = self._promotion_stack()
            pointer = self.pointer()
            if len(stack) < 2:
                raise RegistryError("nothing to roll back to: no earlier promoted version")
            if pointer is None or pointer.version != stack[-1]:
                serving = pointer.version if pointer else "nothing"
                raise RegistryError(
                    f"history says {stack[-1]} serves but the pointer says {serving}; "
                    "promote the version you want explicitly"
                )
            metadata = self.load(stack[-2]).metadata
            return self._switch(pointer, metadata, actor=actor, why=why, action="rollback")

    def _switch(
        self,
        pointer: CurrentPointer | None,
        metadata: ModelMetadata,
        *,
        actor: str,
        why: str,
        action: Literal["promote", "rollback"],
    ) -> HistoryRecord:
        # Audit first: a crash between the two leaves a record of an attempt,
        # never a switch without a record.
        now = self._now()
        record = HistoryRecord(
            ts=now,
            actor=actor,
            action=action,
            from_version=pointer.version if pointer else None,
            to_version=metadata.version,
            why=why,
        )
        append_history(self.history_path, record)
        write_pointer(
            self.pointer_path,
            CurrentPointer(metadata.version, metadata.artefact_sha256, now, actor),
        )
        return record

    def _promotion_stack(self) -> list[str]:
        stack: list[str] = []
        for record in self.history():
            if record.action == "promote":
                stack.append(record.to_version)
            elif stack:
                stack.pop()
        return stack

    def _version_dir(self, version: str) -> Path:
        if not _VERSION.fullmatch(version):
            raise UnknownVersion(
                f"{version!r} is not a version id (expected like 20261122T143000Z-1a2b3c4d)"
            )
        return self.root / version

    def _locked(self) -> Any:
        self.root.mkdir(parents=True, exist_ok=True)
        return exclusive_lock(self.root / ".lock")

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise RegistryError("the registry clock must return timezone-aware datetimes")
        return now.astimezone(UTC)


def _warn_on_library_drift(metadata: ModelMetadata) -> None:
    """Log when the libraries that shape predictions differ from the registering ones."""
    running = detect_library_versions()
    drifted = [
        f"{name} {metadata.library_versions[name]} -> {running[name]}"
        for name in ("scikit-learn", "numpy", "skops")
        if name in metadata.library_versions and metadata.library_versions[name] != running[name]
    ]
    if drifted:
        logger.warning("model %s was saved with other library versions: %s",
                       metadata.version, "; ".join(drifted))


def _metadata_json(metadata: ModelMetadata) -> str:
    return json.dumps(metadata.to_json_dict(), indent=2, ensure_ascii=False) + "\n"


def _require_reason(actor: str, why: str) -> tuple[str, str]:
    if not actor.strip():
        raise RegistryError("say who is acting (--actor)")
    if not why.strip():
        raise RegistryError("say why (--why): every promotion and rollback is audited")
    return actor.strip(), why.strip()


def _check_model_against(model: Any, expected: ModelDraft | ModelMetadata) -> None:
    """Refuse a model whose shape disagrees with its metadata."""
    if not callable(getattr(model, "predict_proba", None)):
        raise RegistryError(f"{type(model).__name__} has no predict_proba")
    n_features = getattr(model, "n_features_in_", None)
    if n_features is not None and n_features != len(expected.feature_names):
        raise RegistryError(
            f"the model takes {n_features} features but the metadata lists "
            f"{len(expected.feature_names)}: {list(expected.feature_names)}"
        )
    names_in = getattr(model, "feature_names_in_", None)
    if names_in is not None and tuple(str(n) for n in names_in) != expected.feature_names:
        raise RegistryError(
            f"the model was fitted on columns {list(names_in)} but the metadata lists "
            f"{list(expected.feature_names)}"
        )
    classes = getattr(model, "classes_", None)
    if classes is not None and tuple(str(c) for c in classes) != expected.classes:
        raise RegistryError(
            f"the model predicts classes {[str(c) for c in classes]} but the metadata lists "
            f"{list(expected.classes)} (same order as model.classes_)"
        )

