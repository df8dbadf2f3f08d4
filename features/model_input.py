"""The rows a model reads: window features, then what the caller's number says.

:data:`~features.vector.MODEL_FEATURES` in order. Training, evaluation and
notebooks build them from a feature table with :func:`model_matrix`; the
worker's scorer from an emission's window features and its numbers with
:func:`model_rows`. Both append :func:`~features.caller_kind.caller_kind_matrix`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from numpy.typing import NDArray

from features.caller_kind import CALLER_FEATURES, caller_kind_matrix, with_caller_kind
from features.vector import FEATURE_NAMES, MODEL_FEATURES

__all__ = ["model_matrix", "model_rows"]


def model_matrix(table: pl.DataFrame, names: Sequence[str] = MODEL_FEATURES) -> NDArray[np.float64]:
    """``table``'s rows as a model on ``names`` reads them (caller kinds from ``caller``)."""
    if any(name in CALLER_FEATURES and name not in table.columns for name in names):
        table = with_caller_kind(table)
    return table.select(names).to_numpy().astype(np.float64)


def model_rows(
    numbers: Sequence[str], window: NDArray[np.float64], names: Sequence[str]
) -> NDArray[np.float64]:
    """Window feature rows (:data:`FEATURE_NAMES`) as a model on ``names`` reads them.

    A model on window features alone gets them unchanged; one on
    :data:`MODEL_FEATURES` gets each number's kind appended.
    """
    if tuple(names) == FEATURE_NAMES or window.shape[1] != len(FEATURE_NAMES):
        return window
    if tuple(names) != MODEL_FEATURES:
        raise ValueError(f"a model on {len(names)} features; the running code has "
                         f"{len(FEATURE_NAMES)} or {len(MODEL_FEATURES)}")
    return np.hstack([window, caller_kind_matrix(numbers)])
