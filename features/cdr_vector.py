"""The CDR contract's value rules over whole columns (polars), for batches.

Same results as the per-record functions of :mod:`features.cdr` and
:mod:`features.numbers`, without a Python call per row: the common shapes
are recognised by regular expressions over a column, and every value that
the fast path does not settle is handed, once per *distinct* value, to the
per-record function itself. So the fast path only ever has to be right about
what it accepts; anything unusual gets the JSON path's answer.

Each function returns the normalised value, or null where the value is
invalid; *why* it is invalid is the JSON path's business (see
:mod:`features.cdr_arrow`).
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from features.cdr import _MAX_EPOCH_MS, _MIN_EPOCH_MS, FieldError, epoch_ms_field
from features.numbers import NumberError, normalise

__all__ = ["epoch_ms_from_instants", "normalise_numbers"]

# Only plain ASCII digits and the separators normalise() strips: Python's
# \s and \d also match other Unicode characters, which are left to normalise().
_PLAIN_NUMBER = r"^[0-9+\-(). ]+$"
_SEPARATORS = r"[ \-().]"
# features.numbers' fast patterns, anchored (fullmatch) and in the same order.
_CN_PATTERNS = (
    r"^(?:\+86|0086|86)?(1[3-9][0-9]{9})$",  # mobile
    r"^(?:\+86|0086|0)((?:10|2[0-9])[0-9]{8}|[3-9][0-9]{2}[0-9]{7,8})$",  # fixed line
    r"^(?:\+86|0086)?([48]00[0-9]{7})$",  # 400/800
)
_CN_SERVICE = r"^(?:9[56][0-9]{3,4}|1[0-9]{4}|100[0-9]{2,3}|1[0-2][0-9])$"

# RFC 3339 as the simulator and most exporters write it: whole seconds or
# milliseconds, Z or +hh:mm. Ranges are spelled out because the parser
# behind strptime takes a leap second (:60) that Python's fromisoformat refuses.
_PLAIN_INSTANT = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{3})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)
_INSTANT_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%:z"


def normalise_numbers(raw: pl.Series, default_region: str = "CN") -> pl.Series:
    """Each number normalised as :func:`features.numbers.normalise` does; null if invalid."""
    texts = raw.cast(pl.String)
    distinct = texts.drop_nulls().unique()
    fast = _normalise_cn_fast(distinct) if default_region == "CN" else _nulls(distinct)

    def slow(text: str) -> str | None:
        try:
            return normalise(text, default_region)
        except NumberError:
            return None

    return _lookup(texts, distinct, fast, slow, pl.String)


def epoch_ms_from_instants(column: pl.Series) -> pl.Series:
    """``start_time`` values in epoch ms (Int64), as :func:`features.cdr.epoch_ms_field` reads them.

    Integers are epoch ms, text is RFC 3339, a time-zone-aware Arrow
    timestamp is an instant (cut to the millisecond). Null where the value
    is missing, unreadable or outside 2000-2100.
    """
    dtype = column.dtype
    if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum):
        return _epoch_ms_from_text(column.cast(pl.String))
    if isinstance(dtype, pl.Datetime):
        epoch_ms = column.dt.epoch("ms")
    elif dtype.is_integer():
        epoch_ms = column.cast(pl.Int64, strict=False)  # a UInt64 past Int64 is out of range
    else:  # Null: a column with no value at all
        epoch_ms = column.cast(pl.Int64)
    return epoch_ms.to_frame("ms").select(_in_range(pl.col("ms"))).to_series()


def _epoch_ms_from_text(texts: pl.Series) -> pl.Series:
    distinct = texts.drop_nulls().unique()
    text = pl.col("text")
    parsed = (
        text.str.replace(r"Z$", "+00:00")
        .str.strptime(pl.Datetime("ms", "UTC"), _INSTANT_FORMAT, strict=False)
        .dt.epoch("ms")
    )
    fast = (
        distinct.to_frame("text")
        .select(pl.when(text.str.contains(_PLAIN_INSTANT)).then(_in_range(parsed)))
        .to_series()
    )

    def slow(text: str) -> int | None:
        try:
            return epoch_ms_field({"start_time": text}, "start_time")
        except FieldError:
            return None

    return _lookup(texts, distinct, fast, slow, pl.Int64)


def _normalise_cn_fast(distinct: pl.Series) -> pl.Series:
    raw = pl.col("raw")
    compact = raw.str.replace_all(_SEPARATORS, "")
    national = [pl.lit("+86") + compact.str.extract(pattern, 1) for pattern in _CN_PATTERNS]
    service = pl.when(compact.str.contains(_CN_SERVICE)).then(compact)
    found = pl.coalesce([*national, service])
    plain = raw.str.contains(_PLAIN_NUMBER)
    return distinct.to_frame("raw").select(pl.when(plain).then(found)).to_series()


def _lookup(
    values: pl.Series,
    distinct: pl.Series,
    fast: pl.Series,
    slow: Callable[[str], object],
    dtype: pl.DataType | type[pl.DataType],
) -> pl.Series:
    """``values`` mapped through distinct -> fast result, or ``slow`` where fast is null."""
    unsettled = distinct.filter(fast.is_null())
    keys = pl.concat([distinct.filter(fast.is_not_null()), unsettled])
    answers = pl.concat(
        [
            fast.drop_nulls().cast(dtype),
            pl.Series([slow(text) for text in unsettled.to_list()], dtype=dtype),
        ]
    )
    return values.replace_strict(keys, answers, default=None, return_dtype=dtype)


def _in_range(epoch_ms: pl.Expr) -> pl.Expr:
    return pl.when((epoch_ms >= _MIN_EPOCH_MS) & (epoch_ms < _MAX_EPOCH_MS)).then(epoch_ms)


def _nulls(like: pl.Series) -> pl.Series:
    return pl.Series(like.name, [None] * len(like), like.dtype)
