"""The serving side of the registry: hold the current model, swap in promoted ones.

The worker builds one :class:`ModelHolder` at start and calls
:meth:`ModelHolder.refresh` in an executor every few seconds (it blocks on
file I/O and, after a promotion, on loading). A refused model, for a changed
hash, unexpected types or a feature list the running code does not compute,
never replaces the one serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from models.registry import LoadedModel, ModelRegistry
from models.registry_errors import RegistryError
from models.registry_files import CurrentPointer
from models.registry_metadata import ModelMetadata, check_features

__all__ = ["ModelHolder", "RefreshResult"]

logger = logging.getLogger(__name__)

RefreshStatus = Literal["loaded", "unchanged", "refused", "no_model"]


@dataclass(frozen=True)
class RefreshResult:
    """What a refresh did.

    ``serving`` is the version in use afterwards (``None`` if none);
    ``attempted`` the version the pointer named; ``error`` why it was refused.
    """

    status: RefreshStatus
    serving: str | None
    attempted: str | None = None
    error: str | None = None


class ModelHolder:
    """The model a worker scores with, kept in step with the registry's ``current`` pointer.

    Read :attr:`current` once per batch: it is swapped as one reference, so a
    batch never mixes one version's model with another's metadata.
    """

    def __init__(self, registry: ModelRegistry, running_feature_names: Sequence[str]) -> None:
        self.registry = registry
        self.running_feature_names = tuple(running_feature_names)
        self._current: LoadedModel | None = None
        self._seen_pointer: CurrentPointer | None = None
        self._last_refusal: RefreshResult | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> LoadedModel | None:
        """The serving model and its metadata, or ``None`` before one loads."""
        return self._current

    @property
    def model(self) -> Any | None:
        """The serving estimator (``None`` before one loads)."""
        current = self._current
        return None if current is None else current.model

    @property
    def metadata(self) -> ModelMetadata | None:
        """The serving model's metadata (``None`` before one loads)."""
        current = self._current
        return None if current is None else current.metadata

    def refresh(self) -> RefreshResult:
        """Load the promoted model if the pointer moved; on any failure keep the old one.

        A refused pointer is not retried until it changes again (promote the
        version again to retry), so a bad promotion costs one load, not one per poll.
        """
        with self._lock:
            try:
                pointer = self.registry.pointer()
            except RegistryError as error:
                return self._refuse(None, str(error), remember=False)
            if pointer is None:
                return RefreshResult("no_model" if self._current is None else "unchanged",
                                     self._serving())
            if pointer == self._seen_pointer:
                if self._last_refusal is not None:
                    return self._last_refusal
                return RefreshResult("unchanged", self._serving())
            self._seen_pointer = pointer
            self._last_refusal = None
            try:
                # Features first: a cheap metadata read spares loading a model we would refuse.
                check_features(self.registry.show(pointer.version), self.running_feature_names)
                loaded = self.registry.load_pointer(pointer)
            except RegistryError as error:
                return self._refuse(pointer.version, str(error), remember=True)
            previous = self._serving()
            self._current = loaded
            logger.info("serving model %s (was %s)", pointer.version, previous)
            return RefreshResult("loaded", pointer.version, attempted=pointer.version)

    def _refuse(self, attempted: str | None, error: str, *, remember: bool) -> RefreshResult:
        serving = self._serving()
        logger.error(
            "refused model %s, still serving %s: %s", attempted or "(pointer)", serving, error
        )
        result = RefreshResult("refused", serving, attempted=attempted, error=error)
        if remember:
            self._last_refusal = result
        return result

    def _serving(self) -> str | None:
        current = self._current
        return None if current is None else current.metadata.version
