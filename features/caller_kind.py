"""What the caller's own number says: fixed line, service number, virtual range, abroad.

Window features describe how a number behaves; these describe the number
itself, as a carrier sees it when the call arrives. Call centres rent
95/96 and 400/800 numbers and fixed lines; spoofed and fraud calls favour
the virtual-operator ranges (170, 171, 162, 165, 167) and international
numbers; ordinary subscribers are mostly on ordinary mobiles, though
millions of them use virtual-operator SIMs too. None of these says
"nuisance" alone, so they are inputs to the classifier beside behaviour,
never a rule: the population anomaly and the block rule ignore them.

The worker's scorer appends them from the numbers it scores
(:class:`models.scoring.BatchScorer`); training and notebooks add them to a
table from its ``caller`` column (:func:`with_caller_kind`). Both go
through :func:`caller_kind_matrix`, so they agree exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from numpy.typing import NDArray

from features.numbers import NumberKind, number_kind

__all__ = ["CALLER_FEATURES", "VIRTUAL_PREFIXES", "caller_kind_matrix", "with_caller_kind"]

CALLER_FEATURES: tuple[str, ...] = (
    "caller_fixed",
    "caller_service",
    "caller_virtual",
    "caller_international",
)
# Mobile network codes of China's virtual operators (MVNOs).
VIRTUAL_PREFIXES = ("170", "171", "162", "165", "167")

_FIXED, _SERVICE, _VIRTUAL, _INTERNATIONAL = range(4)


def _kind_row(number: str) -> NDArray[np.float64]:
    row = np.zeros(len(CALLER_FEATURES))
    kind = number_kind(number) if number else NumberKind.SERVICE
    if kind is NumberKind.FIXED:
        row[_FIXED] = 1.0
    elif kind in (NumberKind.SERVICE, NumberKind.NON_GEOGRAPHIC):
        row[_SERVICE] = 1.0
    elif kind is NumberKind.INTERNATIONAL:
        row[_INTERNATIONAL] = 1.0
    elif number[3:6] in VIRTUAL_PREFIXES:
        row[_VIRTUAL] = 1.0
    return row


def caller_kind_matrix(numbers: Sequence[str]) -> NDArray[np.float64]:
    """``(len(numbers), 4)``: one-hot kind of each normalised number (mobile is all zeros).

    >>> caller_kind_matrix(["+8613800138000", "+861012345678", "95588", "+8617012345678",
    ...                     "+639171234567"]).astype(int).tolist()
    [[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    """
    if len(numbers) == 0:
        return np.zeros((0, len(CALLER_FEATURES)))
    return np.vstack([_kind_row(number) for number in numbers])


def with_caller_kind(table: pl.DataFrame, column: str = "caller") -> pl.DataFrame:
    """``table`` with the :data:`CALLER_FEATURES` columns, from its ``column`` of numbers."""
    numbers = table.get_column(column).unique()
    kinds = caller_kind_matrix(numbers.to_list())
    lookup = pl.DataFrame(
        {column: numbers, **{name: kinds[:, i] for i, name in enumerate(CALLER_FEATURES)}}
    )
    return table.drop([n for n in CALLER_FEATURES if n in table.columns]).join(
        lookup, on=column, how="left"
    )
