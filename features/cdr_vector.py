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

_SEPARATORS = r"[ \-().]"
# features.numbers' fast patterns for mobile, fixed-line and 400/800 numbers
# in one alternation, tried in the same order; a match becomes "=+86<digits>"
# ("=" marks it: no compacted number holds one). Only ASCII digits match, so
# where this matches, normalise() strips the same separators and matches
# too; what it misses (other Unicode spaces or digits) goes to normalise().
_CN_NATIONAL = (
    r"^(?:(?:\+86|0086|86)?(1[3-9][0-9]{9})"
    r"|(?:\+86|0086|0)((?:10|2[0-9])[0-9]{8}|[3-9][0-9]{2}[0-9]{7,8})"
    r"|(?:\+86|0086)?([48]00[0-9]{7}))$"
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
    fast = _normalise_cn_fast(texts) if default_region == "CN" else _nulls(texts)

    def slow(text: str) -> str | None:
        try:
            return normalise(text, default_region)
        except NumberError:
            return None

    return _settle(texts, fast, slow)


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
    parsed = (
        texts.str.replace(r"Z$", "+00:00")
        .str.strptime(pl.Datetime("ms", "UTC"), _INSTANT_FORMAT, strict=False)
        .dt.epoch("ms")
    )
    fast = (
        pl.DataFrame({"plain": texts.str.contains(_PLAIN_INSTANT), "ms": parsed})
        .select(pl.when("plain").then(_in_range(pl.col("ms"))))
        .to_series()
    )

    def slow(text: str) -> int | None:
        try:
            return epoch_ms_field({"start_time": text}, "start_time")
        except FieldError:
            return None

    return _settle(texts, fast, slow)


def _normalise_cn_fast(texts: pl.Series) -> pl.Series:
    # Step by step: each regex runs once per value (an expression that used
    # a column twice would compute it twice).
    compact = texts.str.replace_all(_SEPARATORS, "")
    marked = compact.str.replace(_CN_NATIONAL, "=+86${1}${2}${3}")
    return (
        pl.DataFrame({"compact": compact, "marked": marked})
        .select(
            pl.when(pl.col("marked").str.starts_with("="))
            .then(pl.col("marked").str.slice(1))
            .when(pl.col("compact").str.contains(_CN_SERVICE))
            .then(pl.col("compact"))
        )
        .to_series()
    )


def _settle(values: pl.Series, fast: pl.Series, slow: Callable[[str], object]) -> pl.Series:
    """``fast``, with each value it left null (and ``values`` did not) passed once to ``slow``."""
    unsettled = values.filter(fast.is_null() & values.is_not_null()).unique()
    if unsettled.is_empty():
        return fast
    answers = pl.Series([slow(value) for value in unsettled.to_list()], dtype=fast.dtype)
    return fast.fill_null(values.replace_strict(unsettled, answers, default=None))


def _in_range(epoch_ms: pl.Expr) -> pl.Expr:
    return pl.when((epoch_ms >= _MIN_EPOCH_MS) & (epoch_ms < _MAX_EPOCH_MS)).then(epoch_ms)


def _nulls(like: pl.Series) -> pl.Series:
    return pl.Series(like.name, [None] * len(like), like.dtype)
