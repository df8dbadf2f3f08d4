"""Metadata of a model that was never registered, for unit tests of what reads it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from features.vector import FEATURE_NAMES
from models.registry import ModelMetadata


def model_metadata(
    classes: Sequence[str],
    *,
    feature_names: Sequence[str] = FEATURE_NAMES,
    thresholds: Mapping[str, float] | None = None,
    metrics: Mapping[str, float] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> ModelMetadata:
    """A valid :class:`ModelMetadata` (block 0.9, watch 0.6 unless given)."""
    return ModelMetadata(
        version="20261122T143000Z-00000000",
        created_at=datetime(2026, 11, 22, tzinfo=UTC),
        feature_names=tuple(feature_names),
        classes=tuple(classes),
        thresholds=dict(thresholds or {"block": 0.9, "watch": 0.6}),
        metrics=dict(metrics or {}),
        training_data_sha256="0" * 64,
        library_versions={},
        artefact_sha256="0" * 64,
        extra=dict(extra or {}),
    )
