"""What the caller's number says, the same in training tables and in the worker's scorer."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from features.caller_kind import CALLER_FEATURES, caller_kind_matrix, with_caller_kind
from features.model_input import model_matrix, model_rows
from features.vector import FEATURE_NAMES, MODEL_FEATURES

NUMBERS = ["+8613800138000", "+8617112345678", "+862112345678", "95588", "+8640012345678",
           "+85291234567", "+8616512345678"]


def test_table_and_scorer_agree() -> None:
    window = np.arange(len(NUMBERS) * len(FEATURE_NAMES), dtype=np.float64).reshape(
        len(NUMBERS), len(FEATURE_NAMES))
    columns = {name: window[:, i] for i, name in enumerate(FEATURE_NAMES)}
    table = pl.DataFrame({"caller": NUMBERS, **columns})
    from_table = model_matrix(table)
    from_scorer = model_rows(NUMBERS, window, MODEL_FEATURES)
    assert from_table.shape == (len(NUMBERS), len(MODEL_FEATURES))
    np.testing.assert_array_equal(from_table, from_scorer)
    kinds = with_caller_kind(table).select(CALLER_FEATURES).to_numpy()
    np.testing.assert_array_equal(kinds, caller_kind_matrix(NUMBERS))
    # mobile, virtual, fixed, service, 400, abroad, virtual
    assert kinds.argmax(axis=1).tolist() == [0, 2, 0, 1, 1, 3, 2]
    assert kinds.sum(axis=1).tolist() == [0, 1, 1, 1, 1, 1, 1]


def test_a_window_only_model_reads_rows_unchanged() -> None:
    window = np.zeros((2, len(FEATURE_NAMES)))
    assert model_rows(NUMBERS[:2], window, FEATURE_NAMES) is window
    with pytest.raises(ValueError, match="features"):
        model_rows(NUMBERS[:2], window, ("a", "b"))
