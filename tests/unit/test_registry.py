"""Model registry: round trip, tamper and type checks, promotion history, hot swap."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from models.registry import (
    FeatureMismatch,
    ModelDraft,
    ModelMetadata,
    ModelRegistry,
    RegistryError,
    TamperedArtefact,
    UnknownVersion,
    check_features,
)
from models.registry_artefact import EXPECTED_TYPES
from models.registry_watch import ModelHolder
from tests.unit.model_metadata import model_metadata

FEATURES = ("calls_per_hour", "short_call_ratio", "distinct_callees")
CLASSES = ("marketing", "normal", "one_ring")


def train(seed: int = 0, n_features: int = 3) -> CalibratedClassifierCV:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(240, n_features))
    labels = np.where(features[:, 0] > 0.6, "one_ring",
                      np.where(features[:, 1] > 0.6, "marketing", "normal"))
    base = HistGradientBoostingClassifier(max_iter=15, random_state=seed)
    return CalibratedClassifierCV(base, method="sigmoid", cv=2).fit(features, labels)


@pytest.fixture(scope="module")
def model() -> CalibratedClassifierCV:
    return train(0)


@pytest.fixture(scope="module")
def other_model() -> CalibratedClassifierCV:
    return train(1)


def draft(features: tuple[str, ...] = FEATURES, **changes: Any) -> ModelDraft:
    fields: dict[str, Any] = dict(
        feature_names=features,
        classes=CLASSES,
        thresholds={"block": 0.9, "watch": 0.6},
        metrics={"macro_f1": 0.81, "block_precision": 0.97},
        training_data_sha256=hashlib.sha256(b"training rows").hexdigest(),
        notes="unit-test model",
    )
    fields.update(changes)
    return ModelDraft(**fields)


@pytest.fixture()
def clock() -> Callable[[], datetime]:
    ticks: Iterator[int] = iter(range(10_000))
    start = datetime(2026, 11, 22, 14, 30, tzinfo=UTC)
    return lambda: start + timedelta(minutes=next(ticks))


@pytest.fixture()
def registry(tmp_path: Path, clock: Callable[[], datetime]) -> ModelRegistry:
    return ModelRegistry(tmp_path / "models", clock=clock)


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_round_trip_keeps_predictions_and_metadata(registry: ModelRegistry, model: Any) -> None:
    meta = registry.register(model, draft())
    artefact = registry.root / meta.version / "model.skops"
    assert meta.artefact_sha256 == hashlib.sha256(artefact.read_bytes()).hexdigest()
    assert meta.version == f"20261122T143000Z-{meta.artefact_sha256[:8]}"
    assert meta.feature_names == FEATURES and meta.classes == CLASSES
    assert {"python", "scikit-learn", "numpy", "skops"} <= set(meta.library_versions)

    loaded = registry.load(meta.version)
    sample = np.random.default_rng(9).normal(size=(20, 3))
    np.testing.assert_allclose(loaded.model.predict_proba(sample), model.predict_proba(sample))
    assert loaded.metadata == meta == registry.show(meta.version)
    assert ModelMetadata.from_json_dict(json.loads(json.dumps(meta.to_json_dict()))) == meta


def test_nothing_is_pickled(registry: ModelRegistry, model: Any) -> None:
    meta = registry.register(model, draft())
    files = sorted(p.name for p in (registry.root / meta.version).iterdir())
    assert files == ["MODEL_CARD.md", "metadata.json", "model.skops"]


def test_model_card_is_generated_from_metadata(registry: ModelRegistry, model: Any) -> None:
    meta = registry.register(model, draft())
    card = registry.card(meta.version)
    assert meta.version in card and meta.training_data_sha256 in card
    assert "| block_precision | 0.9700 |" in card
    assert all(f"`{name}`" in card for name in FEATURES)
    custom = registry.register(model, draft(), card_text="# hand-written\n")
    assert registry.card(custom.version) == "# hand-written\n"


def test_tampered_artefact_is_refused(registry: ModelRegistry, model: Any) -> None:
    meta = registry.register(model, draft())
    artefact = registry.root / meta.version / "model.skops"
    flip_a_byte(artefact)
    with pytest.raises(TamperedArtefact) as refused:
        registry.load(meta.version)
    message = str(refused.value)
    assert str(artefact) in message and meta.artefact_sha256 in message
    with pytest.raises(TamperedArtefact):
        registry.promote(meta.version, actor="ops", why="should not pass")
    assert registry.pointer() is None


def test_unexpected_types_are_refused_even_with_a_matching_hash(
    registry: ModelRegistry, model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    meta = registry.register(model, draft())
    narrowed = EXPECTED_TYPES - {"sklearn.calibration._CalibratedClassifier"}
    monkeypatch.setattr("models.registry_artefact.EXPECTED_TYPES", narrowed)
    with pytest.raises(RegistryError, match=r"allow-list.*_CalibratedClassifier"):
        registry.load(meta.version)


def test_register_refuses_metadata_that_disagrees_with_the_model(
    registry: ModelRegistry, model: Any
) -> None:
    with pytest.raises(RegistryError, match="takes 3 features"):
        registry.register(model, draft(features=("a", "b")))
    with pytest.raises(RegistryError, match="predicts classes"):
        registry.register(model, draft(classes=("normal", "marketing", "one_ring")))
    with pytest.raises(RegistryError, match="predict_proba"):
        registry.register(object(), draft())
    assert registry.list_versions() == []


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"thresholds": {"block": 0.5, "watch": 0.7}}, "watch <= block"),
        ({"thresholds": {"block": 0.5, "watch": 0.0}}, "0 < watch"),
        ({"thresholds": {"block": 0.9}}, "block and watch"),
        ({"classes": ("marketing", "one_ring")}, "normal"),
        ({"training_data_sha256": "abc"}, "64 lowercase hex"),
        ({"feature_names": ("a", "a", "b")}, "unique"),
    ],
)
def test_draft_validation(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(RegistryError, match=match):
        draft(**changes)


def test_unknown_and_malformed_versions(registry: ModelRegistry) -> None:
    with pytest.raises(UnknownVersion, match="no model version"):
        registry.show("20261122T143000Z-deadbeef")
    with pytest.raises(UnknownVersion, match="not a version id"):
        registry.show("../../etc")


def test_promote_rollback_and_history(
    registry: ModelRegistry, model: Any, other_model: Any
) -> None:
    first = registry.register(model, draft())
    second = registry.register(other_model, draft())
    assert [m.version for m in registry.list_versions()] == [first.version, second.version]
    assert registry.current() is None

    registry.promote(first.version, actor="li.wei", why="first model")
    registry.promote(second.version, actor="li.wei", why="better recall")
    assert registry.current() == second
    with pytest.raises(RegistryError, match="already current"):
        registry.promote(second.version, actor="li.wei", why="again")

    record = registry.rollback(actor="zhang.min", why="too many complaints")
    assert (record.from_version, record.to_version) == (second.version, first.version)
    assert registry.current() == first
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        registry.rollback(actor="zhang.min", why="again")

    history = registry.history()
    assert [(r.action, r.from_version, r.to_version) for r in history] == [
        ("promote", None, first.version),
        ("promote", first.version, second.version),
        ("rollback", second.version, first.version),
    ]
    assert history[-1].actor == "zhang.min" and history[-1].why == "too many complaints"
    assert all(r.ts.tzinfo is not None for r in history)


def test_promotion_needs_actor_and_reason(registry: ModelRegistry, model: Any) -> None:
    meta = registry.register(model, draft())
    with pytest.raises(RegistryError, match="why"):
        registry.promote(meta.version, actor="ops", why="  ")
    with pytest.raises(RegistryError, match="who"):
        registry.promote(meta.version, actor="", why="because")


def test_check_features_names_the_difference() -> None:
    meta = _metadata_with(FEATURES)
    check_features(meta, list(FEATURES))
    with pytest.raises(FeatureMismatch, match="missing from the running code: distinct_callees"):
        check_features(meta, FEATURES[:2])
    with pytest.raises(FeatureMismatch, match="unknown to the model: night_ratio"):
        check_features(meta, (*FEATURES, "night_ratio"))
    with pytest.raises(FeatureMismatch, match="another order"):
        check_features(meta, tuple(reversed(FEATURES)))


def _metadata_with(features: tuple[str, ...]) -> ModelMetadata:
    return model_metadata(CLASSES, feature_names=features)


# ModelHolder: what the worker uses


def test_holder_hot_swaps_to_a_newly_promoted_model(
    registry: ModelRegistry, model: Any, other_model: Any
) -> None:
    holder = ModelHolder(registry, FEATURES)
    assert holder.refresh().status == "no_model" and holder.model is None

    first = registry.register(model, draft())
    registry.promote(first.version, actor="ops", why="first")
    assert holder.refresh().status == "loaded"
    assert holder.metadata == first
    assert holder.refresh().status == "unchanged"

    second = registry.register(other_model, draft())
    registry.promote(second.version, actor="ops", why="retrained")
    result = holder.refresh()
    assert (result.status, result.serving) == ("loaded", second.version)
    sample = np.zeros((1, 3))
    np.testing.assert_allclose(holder.model.predict_proba(sample),
                               other_model.predict_proba(sample))


def test_holder_refuses_a_mismatched_model_and_keeps_serving(
    registry: ModelRegistry, model: Any, caplog: pytest.LogCaptureFixture
) -> None:
    good = registry.register(model, draft())
    registry.promote(good.version, actor="ops", why="good")
    holder = ModelHolder(registry, FEATURES)
    holder.refresh()

    renamed = ("calls_per_hour", "short_call_ratio", "night_call_ratio")
    mismatched = registry.register(train(2), draft(features=renamed))
    registry.promote(mismatched.version, actor="ops", why="new features")
    result = holder.refresh()
    assert result.status == "refused" and result.attempted == mismatched.version
    assert result.serving == good.version and holder.metadata == good
    assert "missing from the running code: night_call_ratio" in (result.error or "")
    assert "refused model" in caplog.text
    assert holder.refresh() == result  # not reloaded on every poll

    registry.rollback(actor="ops", why="features not deployed yet")
    assert holder.refresh().status == "loaded" and holder.metadata == good


def test_holder_refuses_a_tampered_artefact_and_keeps_serving(
    registry: ModelRegistry, model: Any, other_model: Any
) -> None:
    good = registry.register(model, draft())
    registry.promote(good.version, actor="ops", why="good")
    holder = ModelHolder(registry, FEATURES)
    holder.refresh()

    bad = registry.register(other_model, draft())
    registry.promote(bad.version, actor="ops", why="retrained")
    flip_a_byte(registry.root / bad.version / "model.skops")
    result = holder.refresh()
    assert result.status == "refused" and "sha256" in (result.error or "")
    assert holder.metadata == good


def test_holder_refuses_an_artefact_rehashed_after_promotion(
    registry: ModelRegistry, model: Any, other_model: Any
) -> None:
    """Swapping the artefact *and* its recorded hash is caught by the pointer's hash."""
    good = registry.register(model, draft())
    registry.promote(good.version, actor="ops", why="good")
    holder = ModelHolder(registry, FEATURES)
    holder.refresh()
    target = registry.register(other_model, draft())
    registry.promote(target.version, actor="ops", why="retrained")

    swapped = registry.register(train(3), draft())
    version_dir = registry.root / target.version
    (version_dir / "model.skops").write_bytes(
        (registry.root / swapped.version / "model.skops").read_bytes())
    metadata = json.loads((version_dir / "metadata.json").read_text())
    metadata["artefact_sha256"] = swapped.artefact_sha256
    (version_dir / "metadata.json").write_text(json.dumps(metadata))

    result = holder.refresh()
    assert result.status == "refused" and "promoted with" in (result.error or "")
    assert holder.metadata == good


def test_holder_starts_empty_when_the_first_model_is_refused(
    registry: ModelRegistry,
) -> None:
    meta = registry.register(LogisticRegression().fit(np.eye(4)[:, :2], ["normal", "x"] * 2),
                             draft(features=("a", "b"), classes=("normal", "x")))
    registry.promote(meta.version, actor="ops", why="try")
    holder = ModelHolder(registry, FEATURES)
    result = holder.refresh()
    assert result.status == "refused" and result.serving is None and holder.model is None


def test_loading_logs_library_drift(
    registry: ModelRegistry, model: Any, caplog: pytest.LogCaptureFixture
) -> None:
    meta = registry.register(model, draft(library_versions={"scikit-learn": "0.24.2"}))
    registry.load(meta.version)
    assert "scikit-learn 0.24.2 -> 1.9" in caplog.text
