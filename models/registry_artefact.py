"""Model artefacts on disk: skops only, hash-checked, and only types we expect.

Pickle is never used: loading a pickle runs whatever code the file names.
skops refuses types it does not trust by default; we trust, beyond its
defaults, only the scikit-learn internals our classifier is made of
(:data:`EXPECTED_TYPES`), so a swapped artefact cannot smuggle in anything else.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import skops.io

from models.registry_errors import RegistryError, TamperedArtefact, UntrustedArtefact

__all__ = ["EXPECTED_TYPES", "dump_artefact", "load_artefact", "sha256_hex"]

EXPECTED_TYPES: frozenset[str] = frozenset(
    {
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.calibration._TemperatureScaling",
        "sklearn.isotonic.IsotonicRegression",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.frozen._frozen.FrozenEstimator",
        # A model with a path for rows scored without the features of calls received.
        "models.called_evidence.CalledPaths",
        "models.called_evidence.ScoreAlignment",
        # ... and one for rows without a complaint about the number.
        "models.complaint_paths.ComplaintPaths",
    }
)
"""Types skops does not trust by default that a callguard classifier legitimately holds."""

_CHUNK = 1 << 20


def sha256_hex(data: bytes) -> str:
    """The sha256 of ``data`` as 64 lowercase hex digits.

    >>> sha256_hex(b"")[:16]
    'e3b0c44298fc1c14'
    """
    return hashlib.sha256(data).hexdigest()


def dump_artefact(model: Any, path: Path) -> str:
    """Save ``model`` with skops at ``path``; return the file's sha256."""
    try:
        skops.io.dump(model, path)
    except (TypeError, ValueError, AttributeError) as error:
        raise RegistryError(f"skops cannot save this model: {error}") from error
    digest = hashlib.sha256()
    with path.open("rb") as artefact:
        for chunk in iter(lambda: artefact.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_artefact(path: Path, expected_sha256: str) -> Any:
    """Load the skops file at ``path`` after checking its sha256 and the types it holds.

    The bytes are read once and both checked and loaded from memory, so the
    file cannot change between the check and the load.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise RegistryError(f"cannot read model artefact {path}: {error}") from None
    actual = sha256_hex(data)
    if actual != expected_sha256:
        raise TamperedArtefact(
            f"{path}: sha256 is {actual} but the registry recorded {expected_sha256}; "
            "the artefact was changed after registration, refusing to load it"
        )
    try:
        untrusted = skops.io.get_untrusted_types(data=data)
    except Exception as error:  # noqa: BLE001 - any parse failure means unusable
        raise RegistryError(f"{path} is not a readable skops file: {error}") from None
    unexpected = sorted(set(untrusted) - EXPECTED_TYPES)
    if unexpected:
        raise UntrustedArtefact(
            f"{path} holds types outside callguard's allow-list, refusing to load: "
            + ", ".join(unexpected)
        )
    try:
        return skops.io.load(io.BytesIO(data), trusted=untrusted)
    except Exception as error:  # noqa: BLE001 - skops raises many types on bad files
        raise RegistryError(f"skops could not load {path}: {error}") from None
