"""Batch scoring: many callers' feature vectors through one ``predict_proba`` call.

A scikit-learn ``predict_proba`` call costs about a millisecond whatever the
batch size, so the worker gathers the vectors a message emits and scores
them together. Each row gets a :class:`~models.decisions.Score`:

- ``category``: the most probable class among the nuisance classes (never
  ``normal``), even when ``normal`` is more probable overall;
- ``probability``: the *nuisance score* ``1 - P(normal)`` the model's
  thresholds apply to (see :mod:`models.registry_metadata`);
- ``class_probabilities``: ``P(class)`` for every nuisance class, so the
  flag lifecycle can tell a close call between two classes from a change
  (:func:`models.decisions.decide`);
- ``reasons``: the features that stand out most from normal traffic, those
  that characterise the category first, in an operator's words
  (:func:`models.reasons.explain`; :meth:`BatchScorer.reasons_for` explains
  a row as another category);
- ``features``: the whole vector by name, for audit, as measured.

A model trained for it (:func:`models.called_evidence.called_of`) sees the
features of calls received only while the feed shows such calls
(:class:`models.called_evidence.CalledEvidence`); otherwise they are missing
for the classifier, the reasons and the population check.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import ThreadpoolController, threadpool_limits

from models.called_evidence import CalledEvidence, CalledPaths, called_of, with_called_missing
from models.complaint_paths import ComplaintPaths, block_agreed, compiled_form
from models.decisions import Score
from models.forest import CompiledForest, warm_up
from models.population import may_block, population_of
from models.reasons import Explainer, Reference, reference_from_metadata
from models.registry import LoadedModel
from models.registry_metadata import NORMAL_CLASS

__all__ = ["Assessment", "BatchScorer", "nuisance_scores", "predict_proba"]

_BELOW_ONE = float(np.nextafter(1.0, 0.0))


def predict_proba(model: Any, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
    """``model.predict_proba(matrix)`` as float64 (offline use), on one thread.

    Through the model's compiled forests when it can be compiled (the same
    probabilities to the bit, about 2.5 times faster on 20,000 rows of the
    default model; compiled once per model object), else scikit-learn's on
    one OpenMP thread. Training and evaluation score whole tables: one
    thread keeps the runs reproducible and leaves the machine's other core
    to the worker.
    """
    compiled = _compiled_offline(model)
    if compiled is not None:
        return np.asarray(compiled.predict_proba(matrix), dtype=np.float64)
    with threadpool_limits(limits=1, user_api="openmp"):
        return np.asarray(model.predict_proba(matrix), dtype=np.float64)


_OFFLINE_FORMS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_ITSELF = object()  # the model compiled itself in place (the path models do)


def _compiled_offline(model: Any) -> Any | None:
    """``compiled_form(model)``, kept while the model lives (None if it cannot be compiled).

    A path model compiles in place and is its own compiled form: it is kept
    as a marker, since a value that refers to its key would keep it alive.
    """
    try:
        if model in _OFFLINE_FORMS:
            kept = _OFFLINE_FORMS[model]
            return model if kept is _ITSELF else kept
    except TypeError:  # not weakly referable or not hashable: compile each time
        return compiled_form(model)
    compiled = compiled_form(model)
    _OFFLINE_FORMS[model] = _ITSELF if compiled is model else compiled
    return compiled


def nuisance_scores(
    probabilities: NDArray[np.float64], classes: Sequence[str]
) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """Per row: the nuisance score ``1 - P(normal)`` and the most probable nuisance class.

    Scores stay below 1.0, so a ``block`` threshold of 1.0 (training found
    none that met its precision target) never fires.

    >>> proba = np.array([[0.1, 0.7, 0.2], [0.5, 0.1, 0.4]])
    >>> scores, best = nuisance_scores(proba, ["fraud", "normal", "one_ring"])
    >>> scores.round(6).tolist(), best.tolist()
    ([0.3, 0.9], [2, 0])
    """
    nuisance = np.array([label != NORMAL_CLASS for label in classes])
    if not nuisance.any():
        raise ValueError(f"no nuisance class among {list(classes)}")
    columns = np.flatnonzero(nuisance)
    best = np.argmax(probabilities[:, columns], axis=1)
    # Below 1.0: a threshold of 1.0 (no threshold met its target) flags nothing.
    score = np.clip(probabilities[:, columns].sum(axis=1), 0.0, _BELOW_ONE)
    return score, columns[best]


@dataclass(frozen=True)
class Assessment:
    """:meth:`BatchScorer.assess` of a batch: one entry per row, as arrays."""

    measured: NDArray[np.float64]  # the features as given (published with a score)
    served: NDArray[np.float64]  # as the model saw them (models.called_evidence)
    probabilities: NDArray[np.float64]  # a column per class of the model
    scores: NDArray[np.float64]  # the nuisance score, 1 - P(normal)
    category_index: NDArray[np.intp]  # the most probable nuisance class
    anomaly: NDArray[np.float64]  # the population check (0 without a reference)
    block_agreed: NDArray[np.bool_]  # the model's paths let a block-level score block


class BatchScorer:
    """Scores batches with one loaded model; cheap to call, safe to reuse.

    The model's trees are walked by :class:`models.forest.CompiledForest`
    (one compiled call a batch, the same probabilities to the bit) when it
    can reproduce the model, else by scikit-learn. ``threads``: OpenMP
    threads for scikit-learn's ``predict_proba``; one by default: the
    worker's batches are small, and with the default of one thread per core
    a 10-row call on a busy 2-core machine took 260 ms instead of 7.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        reference: Reference | None = None,
        top_reasons: int = 3,
        threads: int = 1,
    ) -> None:
        self.model: Any = loaded.model
        self.metadata = loaded.metadata
        self.feature_names = tuple(loaded.metadata.feature_names)
        self.classes = tuple(loaded.metadata.classes)
        self.reference = reference or reference_from_metadata(loaded.metadata)
        self.explainer = Explainer(self.feature_names, self.reference, top=top_reasons)
        self.population, self.review = population_of(loaded.metadata)
        self.threads = threads
        # Built once: inspecting the loaded libraries costs milliseconds, limiting them does not.
        self._threadpools = ThreadpoolController()
        self.forest: CompiledForest | CalledPaths | ComplaintPaths | None = compiled_form(
            self.model
        )
        names = list(self.feature_names)
        self._long_calls = (
            names.index("long_call_volume") if "long_call_volume" in names else None
        )
        policy = called_of(loaded.metadata)
        self.called = None if policy is None else CalledEvidence(self.feature_names, policy)

    def warm(self) -> float:
        """Compile (or load from numba's disk cache) the kernels scoring uses; seconds it took."""
        started = time.perf_counter()
        warm_up(self.forest)
        if self.called is not None:
            CalledEvidence(self.feature_names, self.called.policy).shown(
                np.zeros((1, len(self.feature_names)))
            )
        return time.perf_counter() - started

    def reasons_for(self, score: Score, category: str) -> tuple[str, ...]:
        """The reasons for ``score``'s features as ``category`` (its own reasons if it is that).

        The flag lifecycle keeps a number's category through small swaps of
        the class probabilities; the reasons it publishes are then this.
        """
        if category == score.category:
            return score.reasons
        if any(name not in score.features for name in self.feature_names):
            return score.reasons
        row = np.array([[score.features[name] for name in self.feature_names]], dtype=np.float64)
        if self.called is not None and self.called.hiding:  # as the batch it came from
            row = with_called_missing(row, self.feature_names)
        return self.explainer.explain(row, [category])[0]

    def score(
        self,
        numbers: Sequence[str],
        window_end_ms: Sequence[int] | int,
        matrix: NDArray[np.float64],
    ) -> list[Score]:
        """One :class:`Score` per row of ``matrix`` (columns in the model's feature order).

        ``window_end_ms``: one per row, or one for the whole batch. Rows keep
        their order.
        """
        if len(numbers) != len(matrix):
            raise ValueError(f"{len(numbers)} numbers for {len(matrix)} feature rows")
        return self.scores_of(self.assess(matrix), numbers, window_end_ms)

    def assess(self, matrix: NDArray[np.float64]) -> Assessment:
        """Probabilities, nuisance scores and population anomaly of every row, as arrays.

        The cheap part of scoring: what a decision needs to know whether a
        row can act at all. :meth:`scores_of` builds the :class:`Score` (the
        reasons, the features by name) for the rows that can.
        """
        measured = self._checked(matrix)
        served = self._served(measured)
        probabilities = self._probabilities(served)
        scores, category_index = nuisance_scores(probabilities, self.classes)
        anomaly = (
            np.zeros(len(served)) if self.population is None
            else self.population.anomaly(served, self.feature_names)
        )
        # The paths' say on a block matters only where the population and the calls allow one.
        long_calls = (
            measured[:, self._long_calls] if self._long_calls is not None
            else np.full(len(measured), np.inf)
        )
        agreed = block_agreed(self.model, served, scores,
                              may_block(anomaly, self.review, long_calls))
        return Assessment(measured, served, probabilities, scores, category_index, anomaly, agreed)

    def scores_of(
        self,
        assessed: Assessment,
        numbers: Sequence[str],
        window_end_ms: Sequence[int] | int,
        rows: Sequence[int] | NDArray[np.intp] | None = None,
    ) -> list[Score]:
        """The :class:`Score` of each of ``rows`` (default: every row) of an assessment.

        ``numbers`` and ``window_end_ms`` cover every row of the assessment;
        the scores come in the order of ``rows``.
        """
        ends = self._ends(window_end_ms, len(numbers))
        picked = (
            np.arange(len(numbers)) if rows is None else np.asarray(rows, dtype=np.intp)
        )
        served = assessed.served[picked]
        categories = [self.classes[index] for index in assessed.category_index[picked]]
        reasons = self.explainer.explain(served, categories) if len(picked) else []
        anomaly = assessed.anomaly[picked]
        anomaly_reasons = self._anomaly_reasons(served, anomaly)
        nuisance = [c for c, label in enumerate(self.classes) if label != NORMAL_CLASS]
        nuisance_labels = [self.classes[c] for c in nuisance]
        class_rows = assessed.probabilities[picked][:, nuisance].tolist()
        measured = assessed.measured[picked].tolist()
        scores = assessed.scores[picked].tolist()
        agreed = assessed.block_agreed[picked].tolist()
        version = self.metadata.version
        return [
            Score(
                number=numbers[row],
                category=categories[at],
                probability=float(scores[at]),
                model_version=version,
                window_end_ms=ends[row],
                reasons=reasons[at],
                features=dict(zip(self.feature_names, measured[at], strict=True)),
                class_probabilities=dict(zip(nuisance_labels, class_rows[at], strict=True)),
                anomaly=float(anomaly[at]),
                anomaly_reasons=anomaly_reasons.get(at, ()),
                block_agreed=bool(agreed[at]),
            )
            for at, row in enumerate(picked.tolist())
        ]

    def _anomaly_reasons(
        self, served: NDArray[np.float64], anomaly: NDArray[np.float64]
    ) -> dict[int, tuple[str, ...]]:
        """Population reasons for the rows the review rule may act on (by position)."""
        if self.population is None:
            return {}
        rows = np.flatnonzero(anomaly >= self.review.anomaly_floor)
        texts = self.population.reasons(served[rows], self.feature_names) if len(rows) else []
        return dict(zip(rows.tolist(), texts, strict=True))

    def _probabilities(self, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
        """``predict_proba`` for checked rows: one column per class of the model."""
        if len(matrix) == 0:
            return np.zeros((0, len(self.classes)))
        if self.forest is not None:
            return self.forest.predict_proba(matrix)
        with self._threadpools.limit(limits=self.threads, user_api="openmp"):
            probabilities = self.model.predict_proba(matrix)
        return np.asarray(probabilities, dtype=np.float64)

    def _served(self, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
        """``matrix`` as the model sees it: features of calls received hidden where not shown."""
        return matrix if self.called is None else self.called.mask(matrix)

    def _checked(self, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(self.feature_names):
            raise ValueError(
                f"model {self.metadata.version} takes rows of {len(self.feature_names)} "
                f"features ({', '.join(self.feature_names[:3])}, ...); got shape {matrix.shape}"
            )
        return matrix

    @staticmethod
    def _ends(window_end_ms: Sequence[int] | int, count: int) -> list[int]:
        if isinstance(window_end_ms, int | np.integer):
            return [int(window_end_ms)] * count
        ends = [int(end) for end in window_end_ms]
        if len(ends) != count:
            raise ValueError(f"{len(ends)} window ends for {count} numbers")
        return ends
