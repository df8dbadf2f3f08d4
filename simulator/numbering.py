"""Phone numbers as int64 codes, drawn from real Chinese number ranges.

Generation works on integer codes, not strings: a code is the E.164 number's
digits (``8613800138000`` for ``+8613800138000``), or minus the digits of a
short service number (``-95588``). Strings are made once per chunk, in
polars, by :func:`e164_expr`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from contracts.numbers import VIRTUAL_OPERATOR_PREFIXES

__all__ = [
    "AREA_CODES",
    "Draw",
    "MOBILE_PREFIXES",
    "NumberAllocator",
    "carrier_expr",
    "e164_expr",
    "fixed_numbers",
    "international_numbers",
    "mobile_numbers",
    "mobile_segments",
    "special_numbers",
    "virtual_operator_numbers",
]

_CN = 86
_MOBILE_BASE = _CN * 10**11  # +86 and an 11-digit national number
MOBILE_PREFIXES: dict[str, tuple[int, ...]] = {
    "CMCC": (
        134,
        135,
        136,
        137,
        138,
        139,
        147,
        150,
        151,
        152,
        157,
        158,
        159,
        178,
        182,
        183,
        184,
        187,
        188,
        198,
    ),
    "CUCC": (130, 131, 132, 145, 155, 156, 166, 175, 176, 185, 186),
    "CTCC": (133, 149, 153, 173, 177, 180, 181, 189, 191, 199),
}
_VIRTUAL_PREFIXES = tuple(int(prefix) for prefix in VIRTUAL_OPERATOR_PREFIXES)
_CARRIER_SHARE = {"CMCC": 0.6, "CUCC": 0.2, "CTCC": 0.2}
# Area codes of large cities; all of them have 8-digit local numbers.
AREA_CODES = (10, 21, 20, 22, 23, 24, 25, 27, 28, 29, 755, 571, 512, 532, 731, 769)
_NORTHERN_AREAS = (10, 22, 24, 532)  # where China Unicom holds the fixed network


def _mobile_prefix_pool() -> tuple[np.ndarray, np.ndarray]:
    prefixes: list[int] = []
    weights: list[float] = []
    for carrier, carrier_prefixes in MOBILE_PREFIXES.items():
        prefixes += carrier_prefixes
        weights += [_CARRIER_SHARE[carrier] / len(carrier_prefixes)] * len(carrier_prefixes)
    return np.array(prefixes, dtype=np.int64), np.array(weights) / sum(weights)


_PREFIXES, _PREFIX_WEIGHTS = _mobile_prefix_pool()


def mobile_segments(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` distinct 7-digit mobile segments (``1380013``), carriers by market share."""
    segments = np.empty(0, dtype=np.int64)
    while segments.size < count:
        prefix = rng.choice(_PREFIXES, size=count, p=_PREFIX_WEIGHTS)
        candidates = prefix * 10_000 + rng.integers(0, 10_000, size=count)
        segments = _first_unique(np.concatenate([segments, candidates]))
    return segments[:count]


def mobile_numbers(
    rng: np.random.Generator, count: int, segments: np.ndarray | None = None
) -> np.ndarray:
    """Mobile codes, inside ``segments`` when given, else anywhere in the carriers' ranges."""
    if segments is None:
        segments = rng.choice(_PREFIXES, size=count, p=_PREFIX_WEIGHTS) * 10_000 + rng.integers(
            0, 10_000, size=count
        )
    else:
        segments = segments[rng.integers(0, segments.size, size=count)]
    return _MOBILE_BASE + segments * 10_000 + rng.integers(0, 10_000, size=count)


def virtual_operator_numbers(rng: np.random.Generator, count: int) -> np.ndarray:
    """Mobile codes in the 170/171/165/167 virtual-operator ranges, favoured by spoofers."""
    prefix = rng.choice(np.array(_VIRTUAL_PREFIXES, dtype=np.int64), size=count)
    return _MOBILE_BASE + prefix * 10**8 + rng.integers(0, 10**8, size=count)


def fixed_numbers(rng: np.random.Generator, count: int) -> np.ndarray:
    """Fixed-line codes: a big city's area code and an 8-digit local number."""
    area = rng.choice(np.array(AREA_CODES, dtype=np.int64), size=count)
    area_digits = np.where(area < 100, 2, 3)
    local = rng.integers(2 * 10**7, 9 * 10**7, size=count)
    return (_CN * 10**area_digits + area) * 10**8 + local


def special_numbers(rng: np.random.Generator, count: int) -> np.ndarray:
    """Rented call-centre numbers: 6-digit 95xxxx/96xxxx short codes and 400 numbers."""
    kind = rng.integers(0, 3, size=count)
    short = -(
        (rng.choice(np.array([95, 96]), size=count)) * 10_000 + rng.integers(0, 10_000, count)
    )
    four_hundred = (_CN * 1000 + 400) * 10**7 + rng.integers(0, 10**7, size=count)
    return np.where(kind == 0, short, four_hundred)


def international_numbers(rng: np.random.Generator, count: int) -> np.ndarray:
    """Hong Kong and Philippine mobile codes, as shown by spoofed international calls."""
    hong_kong = (
        852 * 10**8
        + rng.choice(np.array([5, 6, 9]), size=count) * 10**7
        + rng.integers(0, 10**7, size=count)
    )
    philippines = 63 * 10**10 + 9 * 10**9 + rng.integers(0, 10**9, size=count)
    return np.where(rng.random(count) < 0.5, hong_kong, philippines)


Draw = Callable[[np.random.Generator, int], np.ndarray]


def _first_unique(codes: np.ndarray) -> np.ndarray:
    """Drop repeats, keeping each code's first occurrence and the original order."""
    _, first = np.unique(codes, return_index=True)
    return codes[np.sort(first)]


class NumberAllocator:
    """Hands out caller numbers so that no two entities ever share one."""

    def __init__(self) -> None:
        self._used = np.empty(0, dtype=np.int64)

    def reserve(self, codes: np.ndarray) -> None:
        """Mark fixed numbers (95588, 12345...) as taken."""
        self._used = np.union1d(self._used, codes)

    def take(self, draw: Draw, rng: np.random.Generator, count: int) -> np.ndarray:
        """``count`` fresh codes from ``draw(rng, n)``, none seen before."""
        taken = np.empty(0, dtype=np.int64)
        while taken.size < count:
            wanted = count - taken.size
            candidates = draw(rng, wanted + wanted // 10 + 8)
            candidates = _first_unique(candidates)
            candidates = candidates[~np.isin(candidates, self._used)]
            candidates = candidates[~np.isin(candidates, taken)]
            taken = np.concatenate([taken, candidates[:wanted]])
        self._used = np.union1d(self._used, taken)
        return taken


def e164_expr(code: pl.Expr) -> pl.Expr:
    """Codes to callguard's normal form: ``+8613800138000`` or bare ``95588``."""
    return (
        pl.when(code < 0)
        .then((-code).cast(pl.String))
        .otherwise(pl.lit("+") + code.cast(pl.String))
    )


def _carrier_lookup() -> dict[int, str]:
    table = {
        prefix: carrier for carrier, prefixes in MOBILE_PREFIXES.items() for prefix in prefixes
    }
    table.update({prefix: "MVNO" for prefix in _VIRTUAL_PREFIXES})
    return table


_CARRIER_BY_PREFIX = _carrier_lookup()


def carrier_expr(code: pl.Expr) -> pl.Expr:
    """The caller's network: mobile by its 3-digit prefix, fixed lines by region."""
    mobile = (code >= _MOBILE_BASE + 13 * 10**9) & (code < _MOBILE_BASE + 2 * 10**10)
    mobile_prefix = ((code - _MOBILE_BASE) // 10**8).cast(pl.Int64)
    fixed_two_digit = (code >= 861 * 10**9) & (code < 863 * 10**9)
    fixed_three_digit = (code >= 863 * 10**10) & (code < 87 * 10**11)
    area = pl.when(fixed_two_digit).then(code // 10**8 - 8600).otherwise(code // 10**8 - 86000)
    return (
        pl.when(mobile)
        .then(
            mobile_prefix.replace_strict(_CARRIER_BY_PREFIX, default=None, return_dtype=pl.String)
        )
        .when(fixed_two_digit | fixed_three_digit)
        .then(pl.when(area.is_in(_NORTHERN_AREAS)).then(pl.lit("CUCC")).otherwise(pl.lit("CTCC")))
        .when(code < 0)
        .then(pl.when(code % 2 == 0).then(pl.lit("CMCC")).otherwise(pl.lit("CUCC")))
        .when((code >= 864 * 10**9) & (code < 8641 * 10**8))
        .then(pl.lit("CTCC"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
