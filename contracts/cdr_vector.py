"""The CDR contract's value rules over whole columns (polars), for batches.

Same results as the per-record functions of :mod:`contracts.cdr` and
:mod:`contracts.numbers`, without a Python call per row: the common shapes
are recognised by regular expressions over a column, and every value that
the fast path does not settle is handed, once per *distinct* value, to the
per-record function itself. So the fast path only ever has to be right about
what it accepts; anything unusual gets the JSON path's answer.

Each function returns the normalised value, or null where the value is
invalid; *why* it is invalid is the JSON path's business (see
:mod:`contracts.cdr_arrow`).
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from contracts.cdr import FieldError, epoch_ms_field, in_time_bounds
from contracts.numbers import NumberError, normalise

__all__ = [
    "epoch_ms_from_instants",
    "epoch_ms_from_parts",
    "instant_parts",
    "normalise_numbers",
]

_SEPARATORS = r"[ \-().]"
# contracts.numbers' fast patterns for mobile, fixed-line and 400/800 numbers
# in one alternation. Only ASCII digits match, so where this matches,
# normalise() strips the same separators and matches too; what it misses
# (other Unicode spaces or digits) goes to normalise(). No capture group: a
# regex that must report groups runs several times slower than one that only
# answers whether it matches. Where it matches, the national number is what
# follows the trunk or country prefix (_prefix_length) instead.
_CN_NATIONAL = (
    r"^(?:(?:\+86|0086|86)?1[3-9][0-9]{9}"
    r"|(?:\+86|0086|0)(?:(?:10|2[0-9])[0-9]{8}|[3-9][0-9]{2}[0-9]{7,8})"
    r"|(?:\+86|0086)?[48]00[0-9]{7})$"
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
    """Each number normalised as :func:`contracts.numbers.normalise` does; null if invalid."""
    texts = raw.cast(pl.String)
    fast = _normalise_cn_fast(texts) if default_region == "CN" else _nulls(len(texts), pl.String())

    def slow(text: str) -> str | None:
        try:
            return normalise(text, default_region)
        except NumberError:
            return None

    return _settle(texts, fast, slow)


def epoch_ms_from_instants(column: pl.Series) -> pl.Series:
    """``start_time`` values in epoch ms (Int64), as :func:`contracts.cdr.epoch_ms_field` does.

    Integers are epoch ms, text is RFC 3339, a time-zone-aware Arrow
    timestamp is an instant (cut to the millisecond). Null where the value
    is missing, unreadable or outside :data:`contracts.cdr.TIME_BOUNDS_MS`.
    """
    return epoch_ms_from_parts(*instant_parts(column))


def instant_parts(column: pl.Series) -> tuple[pl.Series, pl.Series]:
    """``start_time`` as two columns: its text (String) and its epoch ms (Int64).

    The part the column's type does not give is all null. Columns of
    different types, split so, can be put end to end and read by
    :func:`epoch_ms_from_parts` in one pass.
    """
    dtype = column.dtype
    if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum):
        return column.cast(pl.String), _nulls(len(column), pl.Int64())
    if isinstance(dtype, pl.Datetime):
        epoch_ms = column.dt.epoch("ms")
    elif dtype.is_integer():
        epoch_ms = column.cast(pl.Int64, strict=False)  # a UInt64 past Int64 is out of range
    else:  # Null: a column with no value at all
        epoch_ms = column.cast(pl.Int64)
    return _nulls(len(column), pl.String()), epoch_ms


def epoch_ms_from_parts(texts: pl.Series, epoch_ms: pl.Series) -> pl.Series:
    """Epoch ms (Int64) of instants split by :func:`instant_parts`: at most one part per row."""
    if texts.null_count() == len(texts):
        return _epoch_ms_in_range(epoch_ms)
    from_text = _epoch_ms_from_text(texts)
    if epoch_ms.null_count() == len(epoch_ms):
        return from_text
    return from_text.zip_with(from_text.is_not_null(), _epoch_ms_in_range(epoch_ms))


def _epoch_ms_in_range(epoch_ms: pl.Series) -> pl.Series:
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
    """Common CN numbers normalised; null for any other (left to :func:`_settle`).

    A mobile, fixed-line or 400/800 number becomes ``+86`` and its national
    number, a service number its bare digits.
    """
    # The separators go first, as a Series step: an expression that used
    # the compacted column several times would compute it each time.
    compact = pl.col("compact")
    return (
        texts.str.replace_all(_SEPARATORS, "")
        .to_frame("compact")
        .select(
            pl.when(compact.str.contains(_CN_NATIONAL))
            .then(pl.lit("+86") + compact.str.slice(_prefix_length(compact)))
            .when(compact.str.contains(_CN_SERVICE))
            .then(compact)
        )
        .to_series()
    )


def _prefix_length(number: pl.Expr) -> pl.Expr:
    """Length of the prefix before the national number, for a number ``_CN_NATIONAL`` matches.

    The first prefix that fits is the one the match used: a national number
    starts with 1-9, so a fixed line's "0" never begins "0086"; a mobile
    starts with 1 and a 400/800 number with 40 or 80, so neither begins
    "86" or "0".
    """
    starts = number.str.starts_with
    return (
        pl.when(starts("+86"))
        .then(3)
        .when(starts("0086"))
        .then(4)
        .when(starts("86"))
        .then(2)
        .when(starts("0"))
        .then(1)
        .otherwise(0)
    )


def _settle(values: pl.Series, fast: pl.Series, slow: Callable[[str], object]) -> pl.Series:
    """``fast``, with each value it left null (and ``values`` did not) passed once to ``slow``."""
    unsettled = values.filter(fast.is_null() & values.is_not_null()).unique()
    if unsettled.is_empty():
        return fast
    answers = pl.Series([slow(value) for value in unsettled.to_list()], dtype=fast.dtype)
    return fast.fill_null(values.replace_strict(unsettled, answers, default=None))


def _in_range(epoch_ms: pl.Expr) -> pl.Expr:
    return pl.when(in_time_bounds(epoch_ms)).then(epoch_ms)


def _nulls(length: int, dtype: pl.DataType) -> pl.Series:
    """A column of ``length`` nulls (``new_from_index``: a few us; ``extend_constant``: 150)."""
    return pl.Series("", [None], dtype).new_from_index(0, length)
