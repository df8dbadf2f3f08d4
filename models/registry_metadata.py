"""What the registry records about a model, and how it becomes JSON and back.

Thresholds apply to the *nuisance score*: the probability that the caller is
not ``normal``, i.e. ``1 - P(normal)`` (the category shown is the most
probable nuisance class). Summing the nuisance classes keeps a caller whose
probability is split between look-alike categories (finance and other
marketing dial the same way) from hiding under the thresholds. A score at or above
``thresholds['block']`` means block, at or above ``thresholds['watch']`` means
watch, anything lower means clear.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from importlib import metadata as importlib_metadata
from typing import Any, Literal

from models.registry_errors import FeatureMismatch, RegistryError

__all__ = [
    "NORMAL_CLASS",
    "Action",
    "ModelDraft",
    "ModelMetadata",
    "check_features",
    "detect_library_versions",
]

NORMAL_CLASS = "normal"
Action = Literal["block", "watch", "clear"]
_TRACKED_LIBRARIES = ("scikit-learn", "numpy", "scipy", "skops", "polars")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ModelDraft:
    """Everything about a model that its trainer knows before registering it.

    The registry adds the version id, creation time, library versions (of the
    registering process, unless given) and the artefact's sha256.
    """

    feature_names: tuple[str, ...]
    classes: tuple[str, ...]
    thresholds: Mapping[str, float]
    metrics: Mapping[str, float]
    training_data_sha256: str
    notes: str = ""
    library_versions: Mapping[str, str] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "feature_names", tuple(self.feature_names))
        object.__setattr__(self, "classes", tuple(self.classes))
        _validate(self.feature_names, self.classes, self.thresholds, self.training_data_sha256)


@dataclass(frozen=True)
class ModelMetadata:
    """A registered model's metadata, as stored next to it in ``metadata.json``."""

    version: str
    created_at: datetime
    feature_names: tuple[str, ...]
    classes: tuple[str, ...]
    thresholds: Mapping[str, float]
    metrics: Mapping[str, float]
    training_data_sha256: str
    library_versions: Mapping[str, str]
    artefact_sha256: str
    notes: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None:
            raise RegistryError(f"model {self.version}: created_at must be timezone-aware")
        _validate(self.feature_names, self.classes, self.thresholds, self.training_data_sha256)
        if not _SHA256.fullmatch(self.artefact_sha256):
            raise RegistryError(f"model {self.version}: artefact_sha256 is not a sha256 hex")

    def action_for(self, nuisance_score: float) -> Action:
        """The action this model's thresholds give a nuisance score.

        >>> from models.registry_metadata import _example
        >>> [_example().action_for(p) for p in (0.95, 0.9, 0.7, 0.1)]
        ['block', 'block', 'watch', 'clear']
        """
        if nuisance_score >= self.thresholds["block"]:
            return "block"
        if nuisance_score >= self.thresholds["watch"]:
            return "watch"
        return "clear"

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_json_dict` reverses it."""
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["feature_names"] = list(self.feature_names)
        data["classes"] = list(self.classes)
        data["thresholds"] = dict(self.thresholds)
        data["metrics"] = dict(self.metrics)
        data["library_versions"] = dict(self.library_versions)
        data["extra"] = dict(self.extra)
        return data

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> ModelMetadata:
        """Rebuild metadata from :meth:`to_json_dict` output; unknown keys go to ``extra``."""
        known = {name for name in cls.__dataclass_fields__ if name != "extra"}
        missing = sorted(known - {"notes"} - set(data))
        if missing:
            raise RegistryError(f"metadata lacks {', '.join(missing)}")
        extra = {**dict(data.get("extra", {})), **{k: v for k, v in data.items()
                                                    if k not in known and k != "extra"}}
        try:
            return cls(
                version=str(data["version"]),
                created_at=datetime.fromisoformat(str(data["created_at"])),
                feature_names=tuple(str(name) for name in data["feature_names"]),
                classes=tuple(str(label) for label in data["classes"]),
                thresholds={str(k): float(v) for k, v in data["thresholds"].items()},
                metrics={str(k): float(v) for k, v in data["metrics"].items()},
                training_data_sha256=str(data["training_data_sha256"]),
                library_versions={str(k): str(v) for k, v in data["library_versions"].items()},
                artefact_sha256=str(data["artefact_sha256"]),
                notes=str(data.get("notes", "")),
                extra=extra,
            )
        except (TypeError, ValueError, AttributeError) as error:
            raise RegistryError(f"metadata is malformed: {error}") from None


def check_features(metadata: ModelMetadata, running_feature_names: Sequence[str]) -> None:
    """Raise :class:`FeatureMismatch` unless the model expects exactly these features in order.

    >>> from models.registry_metadata import _example
    >>> check_features(_example(), ["calls_per_hour", "short_call_ratio"])
    Traceback (most recent call last):
    ...
    models.registry_errors.FeatureMismatch: model 20261122T143000Z-00000000 was trained on other \
features than the running code: missing from the running code: distinct_callees
    """
    expected, running = list(metadata.feature_names), list(running_feature_names)
    if expected == running:
        return
    missing = [name for name in expected if name not in running]
    extra = [name for name in running if name not in expected]
    problems = []
    if missing:
        problems.append(f"missing from the running code: {', '.join(missing)}")
    if extra:
        problems.append(f"unknown to the model: {', '.join(extra)}")
    if not problems:
        problems.append(f"same features in another order: model {expected}, running {running}")
    raise FeatureMismatch(
        f"model {metadata.version} was trained on other features than the running code: "
        + "; ".join(problems)
    )


def detect_library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries an artefact's behaviour depends on."""
    versions = {"python": platform.python_version()}
    for name in _TRACKED_LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def _validate(
    feature_names: tuple[str, ...],
    classes: tuple[str, ...],
    thresholds: Mapping[str, float],
    training_data_sha256: str,
) -> None:
    if not feature_names or len(set(feature_names)) != len(feature_names):
        raise RegistryError(f"feature names must be non-empty and unique: {list(feature_names)}")
    if NORMAL_CLASS not in classes or len(classes) < 2:
        raise RegistryError(f"classes must include {NORMAL_CLASS!r} and a nuisance class")
    if set(thresholds) != {"block", "watch"}:
        raise RegistryError(f"thresholds need exactly block and watch, got {sorted(thresholds)}")
    if not 0.0 < thresholds["watch"] <= thresholds["block"] <= 1.0:
        raise RegistryError(f"thresholds must satisfy 0 < watch <= block <= 1: {dict(thresholds)}")
    if not _SHA256.fullmatch(training_data_sha256):
        raise RegistryError("training_data_sha256 must be 64 lowercase hex digits")


def _example() -> ModelMetadata:
    """Metadata for doctests."""
    return ModelMetadata(
        version="20261122T143000Z-00000000",
        created_at=datetime.fromisoformat("2026-11-22T14:30:00+00:00"),
        feature_names=("calls_per_hour", "distinct_callees", "short_call_ratio"),
        classes=("marketing", "normal", "one_ring"),
        thresholds={"block": 0.9, "watch": 0.6},
        metrics={"macro_f1": 0.8},
        training_data_sha256="0" * 64,
        library_versions={"python": "3.11"},
        artefact_sha256="0" * 64,
    )
