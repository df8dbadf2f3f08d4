"""Features of the calling number itself: what kind of number places the calls.

Call centres dial from the number resources they rent (95/96 short codes,
400 numbers), from virtual-operator ranges (170/171, 165/167) and from
abroad, far more often than people do (``../shared/DOMAIN.md``); people call
from ordinary mobile and fixed lines. A number's kind is therefore evidence
about its caller, though never proof on its own: banks and utilities call
from 955xx, ride-hailing and courier platforms mask their drivers behind
virtual numbers, and some subscribers' own lines are on virtual operators.
The classifier weighs it with the behaviour of the windows.

The kind comes from the normalised number alone (no lookup, no personal
data beyond the number the CDR already carries), so the worker and the
offline path compute it alike. An ordinary mobile number has all four
features at 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from contracts.numbers import VIRTUAL_OPERATOR_PREFIXES, NumberKind, number_kind

__all__ = [
    "CALLER_FEATURES",
    "caller_number_features",
    "caller_number_dict",
]

CALLER_FEATURES: tuple[str, ...] = (
    "caller_fixed_line",
    "caller_service_number",
    "caller_virtual_operator",
    "caller_international",
)

_MOBILE = (0.0, 0.0, 0.0, 0.0)
_BY_KIND = {
    NumberKind.FIXED: (1.0, 0.0, 0.0, 0.0),
    NumberKind.SERVICE: (0.0, 1.0, 0.0, 0.0),
    NumberKind.NON_GEOGRAPHIC: (0.0, 1.0, 0.0, 0.0),
    NumberKind.INTERNATIONAL: (0.0, 0.0, 0.0, 1.0),
}
_VIRTUAL = (0.0, 0.0, 1.0, 0.0)


@lru_cache(maxsize=1 << 16)
def _features_of(number: str) -> tuple[float, float, float, float]:
    kind = number_kind(number) if number else NumberKind.SERVICE
    if kind is NumberKind.MOBILE:
        return _VIRTUAL if number[3:6] in VIRTUAL_OPERATOR_PREFIXES else _MOBILE
    return _BY_KIND[kind]


def caller_number_features(numbers: Sequence[str]) -> NDArray[np.float64]:
    """``(len(numbers), len(CALLER_FEATURES))``: each normalised number's kind, one-hot.

    >>> caller_number_features(["+8613800138000", "+861012345678", "95588", "+8617012345678"])
    array([[0., 0., 0., 0.],
           [1., 0., 0., 0.],
           [0., 1., 0., 0.],
           [0., 0., 1., 0.]])
    """
    out = np.zeros((len(numbers), len(CALLER_FEATURES)), np.float64)
    if len(numbers):
        out[:] = [_features_of(number) for number in numbers]
    return out


def caller_number_dict(number: str) -> dict[str, float]:
    """One number's features by name."""
    return dict(zip(CALLER_FEATURES, _features_of(number), strict=True))
