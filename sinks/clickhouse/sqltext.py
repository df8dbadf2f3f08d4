"""Safe SQL text: quoted identifiers, escaped literals, and ``%(name)s`` parameters.

Both stores bind parameters here, so a value reaches either backend the same
way: as a literal whose quotes, backslashes and control characters are escaped.
Only the placeholders in the statement as written are replaced; text inside a
bound value is never scanned again, so a value cannot inject a placeholder or
close its own quote.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from sinks.clickhouse.errors import StoreError
from sinks.clickhouse.url import check_identifier

__all__ = ["bind", "quote_identifier", "quote_string", "render_literal"]

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    "\0": "\\0",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
_NEEDS_ESCAPE = re.compile("[\\\\'\0\b\f\n\r\t]")


def quote_identifier(name: str) -> str:
    """Backquote a plain identifier (anything else is refused, not escaped)."""
    return f"`{check_identifier(name, 'identifier')}`"


def quote_string(text: str) -> str:
    r"""A ClickHouse string literal for ``text``.

    >>> print(quote_string("it's a \\ test"))
    'it\'s a \\ test'
    """
    return "'" + _NEEDS_ESCAPE.sub(lambda match: _ESCAPES[match.group()], text) + "'"


def render_literal(value: Any) -> str:
    """A SQL literal for a Python value.

    Strings, ints, floats, bools (as 1/0), ``None``, aware datetimes (as
    ``toDateTime(..., 'UTC')``), dates, lists (arrays) and tuples or sets
    (``(a, b)``, for ``IN``). Naive datetimes are refused: times are UTC.
    """
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return quote_string(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_literal(value)
    if isinstance(value, datetime):
        return _datetime_literal(value)
    if isinstance(value, date):
        return f"toDate('{value.isoformat()}')"
    if isinstance(value, list):
        return "[" + ", ".join(render_literal(item) for item in value) + "]"
    if isinstance(value, tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        if not items:
            raise StoreError("an empty tuple has no SQL form; check for no values before IN")
        return "(" + ", ".join(render_literal(item) for item in items) + ")"
    raise StoreError(f"no SQL literal for {type(value).__name__}")


def bind(sql: str, params: Mapping[str, Any] | None) -> str:
    r"""Replace each ``%(name)s`` in ``sql`` by the literal of ``params[name]``.

    >>> bind("SELECT %(n)s, %(s)s", {"n": 1, "s": "x'y"})
    "SELECT 1, 'x\\'y'"
    """
    if not params:
        return sql

    def literal(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            raise StoreError(f"no value for parameter %({name})s")
        return render_literal(params[name])

    return _PLACEHOLDER.sub(literal, sql)


def _float_literal(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)


def _datetime_literal(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise StoreError(f"naive datetime {value.isoformat()}: pass an aware datetime (UTC)")
    utc = value.astimezone(UTC)
    return f"toDateTime('{utc:%Y-%m-%d %H:%M:%S}', 'UTC')"
