"""Why the model registry refused something: one root, one subclass per reason."""

from __future__ import annotations

__all__ = [
    "FeatureMismatch",
    "RegistryError",
    "TamperedArtefact",
    "UnknownVersion",
    "UntrustedArtefact",
]


class RegistryError(Exception):
    """Root of every registry refusal; the message says what is wrong and where."""


class UnknownVersion(RegistryError, LookupError):
    """No registered model has this version id."""


class TamperedArtefact(RegistryError):
    """The artefact's sha256 is not the one recorded when it was registered."""


class UntrustedArtefact(RegistryError):
    """The artefact would instantiate types outside our explicit allow-list."""


class FeatureMismatch(RegistryError):
    """The model was trained on other features (or another order) than the running code."""
