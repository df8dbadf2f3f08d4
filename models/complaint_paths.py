"""Rows without complaints about the number, scored by a classifier that does not lean on them.

``complaints`` (in both windows) counts the reports people filed about a
number. Where it is above 0 it is strong evidence; where it is 0 it says
little: most nuisance numbers are never reported, and a feed may carry no
complaints at all (a carrier's CDRs without its 12321 reports). A
classifier fitted on traffic where reported numbers are nuisance learns
"no complaint, less likely nuisance", and then misses callers exactly where
no one has reported them: on the held-out family with every complaint
removed, the model that reads complaints caught finance marketing 66% and
fraud 54%, against 74% and 61% with them.

So a model has a path for each (:class:`ComplaintPaths`), chosen per row
from the row alone:

- rows with a complaint about the number go to the classifier fitted on the
  rows as measured;
- rows without go to one fitted on the same rows with complaints held at 0,
  whose thresholds are chosen on the validation rows without a complaint
  (the rows it will score) and whose scores are mapped onto the first's
  scale (:class:`~models.called_evidence.ScoreAlignment`), so one pair of
  thresholds serves both.

The choice depends on nothing but the row, so batches, restarts and
partitions decide as the offline path does. Interception asks more: a row
without a complaint blocks only when the first path, which reads the
missing complaints as evidence, reaches ``block`` too
(:meth:`ComplaintPaths.block_agreed`); otherwise a block-level score gives
``watch``. On the held-out family with its subscribers' missed calls
returned at 0.1, the second path alone blocked at 98.7% precision; with the
agreement, 100%, every number it held back still flagged ``watch``. Each path may itself be a
:class:`~models.called_evidence.CalledPaths` (rows without the features of
calls received).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.called_evidence import CalledPaths, ScoreAlignment, learned_alike, two_ways, zeroed
from models.forest import CompiledForest
from models.registry_metadata import NORMAL_CLASS

__all__ = [
    "COMPLAINT_FEATURES",
    "ComplaintPaths",
    "block_agreed",
    "compiled_form",
    "has_complaint",
    "with_complaints_held",
]

# Complaints about the number, in both windows.
COMPLAINT_FEATURES: tuple[str, ...] = ("short_complaints", "long_complaints")


def with_complaints_held(
    matrix: NDArray[np.float64], feature_names: Sequence[str]
) -> NDArray[np.float64]:
    """A copy of ``matrix`` with the complaint features at 0: what the second path reads.

    >>> with_complaints_held(np.array([[3.0, 2.0]]), ["long_call_volume", "long_complaints"])
    array([[3., 0.]])
    """
    return zeroed(matrix, _columns(feature_names))


def has_complaint(matrix: NDArray[np.float64], feature_names: Sequence[str]) -> NDArray[np.bool_]:
    """Per row: whether any complaint feature is above 0 (the row goes the first way).

    >>> has_complaint(np.array([[0.0, 1.0], [0.0, 0.0]]), ["long_call_volume", "long_complaints"])
    array([ True, False])
    """
    return _reported(np.asarray(matrix, dtype=np.float64), _columns(feature_names))


def _reported(
    matrix: NDArray[np.float64], columns: Sequence[int] | NDArray[np.intp]
) -> NDArray[np.bool_]:
    if not len(columns):
        return np.ones(len(matrix), dtype=np.bool_)
    return np.asarray((matrix[:, np.asarray(columns, dtype=np.intp)] > 0).any(axis=1))


def block_agreed(
    model: Any,
    matrix: NDArray[np.float64],
    scores: NDArray[np.float64],
    asked: NDArray[np.bool_] | None = None,
) -> NDArray[np.bool_]:
    """Per row: whether ``model``'s paths let a block-level score block.

    All True but for :class:`ComplaintPaths` (:meth:`ComplaintPaths.block_agreed`).
    ``asked``: the rows whose answer matters (those that may block otherwise,
    :func:`models.population.may_block`); the others are True unasked.
    """
    if isinstance(model, ComplaintPaths):
        return model.block_agreed(matrix, scores, asked)
    return np.ones(len(scores), dtype=np.bool_)


def compiled_form(model: Any) -> Any | None:
    """``model`` scoring through compiled forests, or None when it cannot be compiled."""
    if isinstance(model, ComplaintPaths | CalledPaths):
        return model.compiled()
    return CompiledForest.of(model)


class ComplaintPaths:
    """The registered model: one path for rows with a complaint, one for rows without.

    ``reported`` scores the rows with any complaint feature above 0;
    ``unreported`` the others (complaints are 0 there, as it was fitted), its
    scores mapped by ``alignment``; probabilities as in
    :class:`~models.called_evidence.CalledPaths`.
    """

    def __init__(
        self,
        reported: Any,
        unreported: Any,
        feature_names: Sequence[str],
        alignment: ScoreAlignment,
    ) -> None:
        self.classes_ = learned_alike(reported, unreported)
        self.reported = reported
        self.unreported = unreported
        self.alignment = alignment
        self.n_features = len(feature_names)
        self._columns = np.asarray(_columns(feature_names), dtype=np.intp)
        self._normal = list(self.classes_).index(NORMAL_CLASS)
        self._compiled: tuple[Any, Any] | None = None

    def compiled(self) -> ComplaintPaths | None:
        """The model, scoring through compiled forests from now on; None when a path cannot."""
        paths = (compiled_form(self.reported), compiled_form(self.unreported))
        if paths[0] is None or paths[1] is None:
            return None
        self._compiled = (paths[0], paths[1])
        return self

    def predict_proba(self, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
        """One column per class, rows in order."""
        matrix = np.asarray(matrix, dtype=np.float64)
        return two_ways(matrix, ~_reported(matrix, self._columns), self._path, self.alignment,
                        self._normal, len(self.classes_))

    def block_agreed(
        self,
        matrix: NDArray[np.float64],
        scores: NDArray[np.float64],
        asked: NDArray[np.bool_] | None = None,
    ) -> NDArray[np.bool_]:
        """Per row: False where a row without a complaint reaches ``block`` on this path only.

        ``scores``: this model's nuisance scores of ``matrix``; ``asked``, if
        given, the only rows to answer for (the others are True). The first
        path is walked for those rows alone, a few in a batch.
        """
        matrix = np.asarray(matrix, dtype=np.float64)
        block = self.alignment.target[1]
        agreed = np.ones(len(matrix), dtype=np.bool_)
        wanted = (np.asarray(scores) >= block) & ~_reported(matrix, self._columns)
        if asked is not None:
            wanted &= asked
        rows = np.flatnonzero(wanted)
        if len(rows):
            first = self._path(0, matrix[rows])
            agreed[rows] = 1.0 - first[:, self._normal] >= block
        return agreed

    def _path(self, which: int, rows: NDArray[np.float64]) -> NDArray[np.float64]:
        if which == 1:
            rows = zeroed(rows, self._columns)  # a NaN (not measured) complaint reads as none
        model = (
            self._compiled[which] if self._compiled is not None
            else (self.reported, self.unreported)[which]
        )
        return np.asarray(model.predict_proba(rows), dtype=np.float64)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_compiled"] = None  # rebuilt by compiled() where the model is loaded
        return state


def _columns(feature_names: Sequence[str]) -> list[int]:
    names = list(feature_names)
    return [names.index(name) for name in COMPLAINT_FEATURES if name in names]
