"""Whether the feed shows the calls numbers receive; scoring without those features when not.

Two features of each window come from calls *to* a number, not from it:
``reciprocity`` (callees who called back) and ``inbound_ratio`` (numbers that
called it against numbers it called). They are what tells a busy subscriber
who calls strangers for work from a nuisance line: people call the one back
and not the other. They only mean that when the feed holds the calls the
scored numbers receive. A feed that does not (calls placed by one switch's
subscribers to numbers elsewhere, or a generator whose callees never call)
makes every number look like one that nobody calls, the look of a nuisance
line: on the held-out family with those features set to 0, a model trained
on full traffic flagged 0.54% of the ordinary subscribers and blocked at 94%
precision.

So a model has two paths, and scoring chooses per row:

- Training fits the classifier on the rows as measured and a second one on
  the same rows with the called features missing (:func:`with_called_missing`),
  chooses each one's thresholds on the validation rows, and maps the second's
  scores onto the first's scale (:class:`ScoreAlignment`), so one pair of
  thresholds serves both. :class:`CalledPaths` is the model registered: rows
  whose called features are missing go the second way. (One classifier
  fitted on both copies of every row cost up to 20 points of recall on the
  held-out family with calls received, where the first path alone loses
  nothing.)
- Scoring (:class:`CalledEvidence`) counts, over the last ``window`` rows
  scored, those with any call received in the long window. A row is scored
  without the called features (missing, NaN, for the classifier, its
  reasons and the population check) when at least ``min_rows`` rows have
  been seen and fewer than ``min_share`` of them had one; otherwise with
  them. The features published with a score stay as measured.

Each row's choice depends only on the rows scored before it, so the worker
and an offline evaluation that scores a table in event-time order
(:func:`called_shown_in_time_order`) decide alike. On simulated days with
calls between subscribers, 43-95% of the scored rows of each 2-hour stretch
had a call received; with none, 0%. A feed with calls received is therefore
scored with them from its first row, and whatever the worker's batches,
restarts or partitions, it decides as the offline path does; a feed
without them is scored without them from its ``min_rows``-th row on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit
from numpy.typing import NDArray

from features.vector import FEATURE_NAMES
from models.forest import CompiledForest
from models.registry_metadata import NORMAL_CLASS

__all__ = [
    "CALLED_FEATURES",
    "CalledEvidence",
    "CalledPaths",
    "CalledPolicy",
    "called_of",
    "ScoreAlignment",
    "called_shown_in_time_order",
    "learned_alike",
    "two_ways",
    "with_called_missing",
    "zeroed",
]

log = logging.getLogger(__name__)

# Features computed from calls *to* the number, in both windows.
CALLED_FEATURES: tuple[str, ...] = tuple(
    name for name in FEATURE_NAMES if name.endswith(("_reciprocity", "_inbound_ratio"))
)
# A row shows a call received when one of these is above 0.
_EVIDENCE: tuple[str, ...] = ("long_reciprocity", "long_inbound_ratio")


@dataclass(frozen=True)
class CalledPolicy:
    """When rows are scored with the called features (see the module doc)."""

    window: int = 50_000
    min_rows: int = 200
    min_share: float = 0.05

    def __post_init__(self) -> None:
        if self.window < 1 or self.min_rows < 0 or self.min_rows > self.window:
            raise ValueError(
                f"called-features policy needs 0 <= min_rows <= window and window >= 1; "
                f"got min_rows={self.min_rows}, window={self.window}"
            )
        if not 0.0 <= self.min_share <= 1.0:
            raise ValueError(f"called-features min_share must be in [0, 1]; got {self.min_share}")

    def to_json(self) -> dict[str, float]:
        """What the registry stores (``extra['called']``)."""
        return {"window": self.window, "min_rows": self.min_rows, "min_share": self.min_share}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CalledPolicy:
        """The policy :meth:`to_json` stored."""
        return cls(int(data["window"]), int(data["min_rows"]), float(data["min_share"]))


def called_of(metadata: Any) -> CalledPolicy | None:
    """The policy a model was trained for, or None (a model trained on measured rows only).

    >>> class Metadata:
    ...     extra = {"called": {"window": 10, "min_rows": 2, "min_share": 0.5}}
    >>> called_of(Metadata())
    CalledPolicy(window=10, min_rows=2, min_share=0.5)
    >>> called_of(object()) is None
    True
    """
    extra = getattr(metadata, "extra", None) or {}
    stored = extra.get("called")
    return None if stored is None else CalledPolicy.from_json(stored)


def with_called_missing(
    matrix: NDArray[np.float64], feature_names: Sequence[str]
) -> NDArray[np.float64]:
    """A copy of ``matrix`` with every called feature missing (NaN).

    >>> names = ["long_call_volume", "long_reciprocity"]
    >>> with_called_missing(np.array([[3.0, 0.5]]), names).tolist()
    [[3.0, nan]]
    """
    masked = np.array(matrix, dtype=np.float64, copy=True)
    masked[:, _columns(feature_names, CALLED_FEATURES)] = np.nan
    return masked


class CalledEvidence:
    """The scoring side: which rows are scored with the called features, row after row.

    >>> names = ["long_reciprocity", "long_inbound_ratio"]
    >>> evidence = CalledEvidence(names, CalledPolicy(window=4, min_rows=2, min_share=0.5))
    >>> evidence.shown(np.array([[0.0, 0.3], [0.0, 0.0], [0.0, 0.0], [0.2, 0.0]])).tolist()
    [True, True, True, False]
    >>> evidence.mask(np.array([[0.0, 0.0]])).tolist()  # 2 of the last 4 rows had one
    [[0.0, 0.0]]
    >>> quiet = CalledEvidence(names, CalledPolicy(window=4, min_rows=2, min_share=0.5))
    >>> quiet.mask(np.zeros((3, 2))).tolist()  # nobody called: hidden from the 2nd row seen
    [[0.0, 0.0], [0.0, 0.0], [nan, nan]]
    """

    def __init__(
        self, feature_names: Sequence[str], policy: CalledPolicy, *, log_changes: bool = True
    ) -> None:
        self.policy = policy
        self._log_changes = log_changes
        self._called = _columns(feature_names, CALLED_FEATURES)
        self._evidence = _columns(feature_names, _EVIDENCE)
        # The last rows seen: whether each had a call received, in a ring.
        self._ring = np.zeros(policy.window, dtype=np.bool_)
        self._start = 0  # the oldest
        self._size = 0
        self._hits = 0
        self._was_shown: bool | None = None

    @property
    def hiding(self) -> bool:
        """Whether the last row scored was scored without the called features."""
        return self._was_shown is False

    @property
    def recent_share(self) -> float:
        """Share of the recent rows with a call received (nan before any row)."""
        return self._hits / self._size if self._size else float("nan")

    def shown(self, matrix: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Per row of ``matrix``, in scoring order: True where scored with the called features."""
        matrix = np.asarray(matrix, dtype=np.float64)
        received = np.asarray(
            (matrix[:, self._evidence] > 0).any(axis=1) if len(self._evidence)
            else np.zeros(len(matrix)), dtype=np.bool_,
        )
        shown, self._start, self._size, self._hits = _slide(
            self._ring, self._start, self._size, self._hits, received,
            self.policy.min_rows, self.policy.min_share,
        )
        if len(shown):
            self._note(bool(shown[-1]))
        return np.asarray(shown)

    def mask(self, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
        """``matrix`` as the model should see it: called features missing where not shown."""
        shown = self.shown(matrix)
        if shown.all() or not self._called:
            return matrix
        masked = np.array(matrix, dtype=np.float64, copy=True)
        hidden = np.flatnonzero(~shown)
        masked[np.ix_(hidden, np.asarray(self._called, dtype=np.intp))] = np.nan
        return masked

    def _note(self, shown: bool) -> None:
        was, self._was_shown = self._was_shown, shown
        if shown == (True if was is None else was) or not self._log_changes:
            return
        if shown:
            log.info("the feed shows calls received again (%.0f%% of the last %d rows scored "
                     "had one): scoring with reciprocity and inbound ratio",
                     100 * self.recent_share, self._size)
        else:
            log.warning("the feed shows few calls received (%.1f%% of the last %d rows scored "
                        "had one, under %.0f%%): scoring without reciprocity and inbound ratio",
                        100 * self.recent_share, self._size, 100 * self.policy.min_share)


@njit(cache=True, nogil=True)  # type: ignore[misc]  # numba ships no type information
def _slide(
    ring: NDArray[np.bool_],
    start: int,
    size: int,
    hits: int,
    received: NDArray[np.bool_],
    min_rows: int,
    min_share: float,
) -> tuple[NDArray[np.bool_], int, int, int]:
    """Each row against the ring of rows before it, then into the ring (oldest out)."""
    window = len(ring)
    shown = np.empty(len(received), dtype=np.bool_)
    for row in range(len(received)):
        shown[row] = size < min_rows or hits >= min_share * size
        if size == window:
            hits -= ring[start]
            ring[start] = received[row]
            start = (start + 1) % window
        else:
            ring[(start + size) % window] = received[row]
            size += 1
        hits += received[row]
    return shown, start, size, hits


def called_shown_in_time_order(
    matrix: NDArray[np.float64],
    end_ms: NDArray[np.int64] | Sequence[int],
    feature_names: Sequence[str],
    policy: CalledPolicy,
) -> NDArray[np.float64]:
    """A table's matrix as the worker would score it: :class:`CalledEvidence` in event-time order.

    Rows keep their positions; ties in ``end_ms`` keep table order.
    """
    order = np.argsort(np.asarray(end_ms), kind="stable")
    evidence = CalledEvidence(feature_names, policy, log_changes=False)
    served = np.asarray(matrix, dtype=np.float64)
    ordered = served[order]
    masked = evidence.mask(ordered)
    if masked is ordered:
        return served
    result = np.empty_like(served)
    result[order] = masked
    return result


def zeroed(
    matrix: NDArray[np.float64], columns: Sequence[int] | NDArray[np.intp]
) -> NDArray[np.float64]:
    """A float64 copy of ``matrix`` with ``columns`` set to 0 in every row.

    >>> zeroed(np.array([[1.0, 2.0, 3.0]]), [0, 2]).tolist()
    [[0.0, 2.0, 0.0]]
    """
    rows = np.array(matrix, dtype=np.float64, copy=True)
    rows[:, np.asarray(columns, dtype=np.intp)] = 0.0
    return rows


def _columns(feature_names: Sequence[str], wanted: Sequence[str]) -> list[int]:
    names = list(feature_names)
    return [names.index(name) for name in wanted if name in names]


@dataclass(frozen=True)
class ScoreAlignment:
    """A monotone map of nuisance scores: ``source`` (watch, block) onto ``target``.

    Piecewise linear through (0, 0), the watch and block points and (1, 1):
    a score reaches the target's watch (block) exactly when it reached the
    source's.

    >>> align = ScoreAlignment(source=(0.5, 0.8), target=(0.9, 0.95))
    >>> align.apply(np.array([0.0, 0.25, 0.5, 0.65, 0.8, 0.9])).round(3).tolist()
    [0.0, 0.45, 0.9, 0.925, 0.95, 0.975]
    """

    source: tuple[float, float]
    target: tuple[float, float]

    def apply(self, scores: NDArray[np.float64]) -> NDArray[np.float64]:
        """``scores`` on the target's scale (at a repeated point, the higher one counts)."""
        (sw, sb), (tw, tb) = self.source, self.target
        xs = np.array([0.0, sw, sb, 1.0])
        ys = np.array([0.0, tw, tb, 1.0])
        values = np.asarray(scores, dtype=np.float64)
        upper = np.clip(np.searchsorted(xs, values, side="right"), 1, len(xs) - 1)
        lower = upper - 1
        span = xs[upper] - xs[lower]
        with np.errstate(invalid="ignore", divide="ignore"):
            along = np.where(span > 0, (values - xs[lower]) / span, 1.0)
        out = ys[lower] + along * (ys[upper] - ys[lower])
        return np.where(values >= 1.0, 1.0, out)

    def applied_to(self, probabilities: NDArray[np.float64], normal: int) -> NDArray[np.float64]:
        """Class probabilities whose nuisance score (1 - ``normal``'s) is mapped by :meth:`apply`.

        The nuisance classes keep their proportions.

        >>> align = ScoreAlignment(source=(0.5, 0.8), target=(0.9, 0.95))
        >>> align.applied_to(np.array([[0.5, 0.25, 0.25]]), normal=0).round(3).tolist()
        [[0.1, 0.45, 0.45]]
        """
        score = 1.0 - probabilities[:, normal]
        aligned = self.apply(score)
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = np.where(score > 0, aligned / score, 0.0)
        out = probabilities * scale[:, None]
        out[:, normal] = 1.0 - aligned
        return out


def learned_alike(first: Any, second: Any) -> Any:
    """The classes of two paths' classifiers (``first.classes_``), which must be the same."""
    if list(first.classes_) != list(second.classes_):
        raise ValueError(
            f"the two paths learned different classes: {list(first.classes_)} "
            f"and {list(second.classes_)}"
        )
    return first.classes_


def two_ways(
    matrix: NDArray[np.float64],
    second_way: NDArray[np.bool_],
    path: Callable[[int, NDArray[np.float64]], NDArray[np.float64]],
    alignment: ScoreAlignment,
    normal: int,
    classes: int,
) -> NDArray[np.float64]:
    """Probabilities of ``matrix`` (a column per class) from two paths.

    ``path(1, rows)`` scores the rows of ``second_way``, its scores mapped by
    ``alignment``; ``path(0, rows)`` the others.
    """
    out = np.empty((len(matrix), classes))
    if not second_way.all():
        out[~second_way] = path(0, matrix[~second_way])
    if second_way.any():
        out[second_way] = alignment.applied_to(path(1, matrix[second_way]), normal)
    return out


class CalledPaths:
    """The registered model: one classifier for rows with the called features, one without.

    Rows whose called features are all missing (NaN) are scored by
    ``without``, its scores mapped by ``alignment``; the others by
    ``measured``. Probabilities are what each path's classifier gives, the
    second's nuisance columns scaled to the aligned score. When both are
    models :class:`~models.forest.CompiledForest` reproduces, :meth:`compiled`
    scores with it (the same probabilities to the bit).
    """

    def __init__(
        self,
        measured: Any,
        without: Any,
        feature_names: Sequence[str],
        alignment: ScoreAlignment,
    ) -> None:
        self.classes_ = learned_alike(measured, without)
        self.measured = measured
        self.without = without
        self.alignment = alignment
        self.n_features = len(feature_names)
        self._columns = np.asarray(_columns(feature_names, CALLED_FEATURES), dtype=np.intp)
        self._normal = list(self.classes_).index(NORMAL_CLASS)
        self._forests: tuple[CompiledForest, CompiledForest] | None = None

    def compiled(self) -> CalledPaths | None:
        """The model, scoring through compiled forests from now on; None when a path cannot."""
        forests = (CompiledForest.of(self.measured), CompiledForest.of(self.without))
        if forests[0] is None or forests[1] is None:
            return None
        self._forests = (forests[0], forests[1])
        return self

    def predict_proba(self, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
        """One column per class, rows in order."""
        matrix = np.asarray(matrix, dtype=np.float64)
        hidden = (
            np.isnan(matrix[:, self._columns]).all(axis=1)
            if len(self._columns) else np.zeros(len(matrix), dtype=np.bool_)
        )
        second_way = np.asarray(hidden, dtype=np.bool_)
        return two_ways(matrix, second_way, self._path, self.alignment, self._normal,
                        len(self.classes_))

    @staticmethod
    def without_input(
        matrix: NDArray[np.float64], feature_names: Sequence[str]
    ) -> NDArray[np.float64]:
        """What the second path reads: the called features set to 0 in every row.

        Its classifier was fitted so, a constant it cannot split on (a column
        missing in every row cannot be fitted at all).
        """
        return zeroed(matrix, _columns(feature_names, CALLED_FEATURES))

    def _path(self, which: int, rows: NDArray[np.float64]) -> NDArray[np.float64]:
        if which == 1:
            rows = zeroed(rows, self._columns)
        if self._forests is not None:
            return self._forests[which].predict_proba(rows)
        model = self.measured if which == 0 else self.without
        return np.asarray(model.predict_proba(rows), dtype=np.float64)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_forests"] = None  # rebuilt by compiled() where the model is loaded
        return state
