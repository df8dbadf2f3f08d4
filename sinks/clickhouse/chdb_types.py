"""ClickHouse type names mapped to Arrow types (for inserts) and Python values (for reads).

chDB has no columnar insert call, so :class:`~sinks.clickhouse.embedded.ChdbStore`
sends an Arrow stream typed from the table's own column types, and reads
``JSONCompact`` results decoded by their declared types.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa

__all__ = ["arrow_type", "json_decoder", "split_type"]

Decoder = Callable[[Any], Any]

_ARROW_SCALARS: dict[str, pa.DataType] = {
    "String": pa.string(),
    "Float64": pa.float64(),
    "Float32": pa.float32(),
    "UInt8": pa.uint8(),
    "UInt16": pa.uint16(),
    "UInt32": pa.uint32(),
    "UInt64": pa.uint64(),
    "Int8": pa.int8(),
    "Int16": pa.int16(),
    "Int32": pa.int32(),
    "Int64": pa.int64(),
    "Date": pa.date32(),
}
_WRAPPERS = ("LowCardinality", "Nullable")


def split_type(type_name: str) -> tuple[str, str]:
    """``'Array(Nullable(String))'`` -> ``('Array', 'Nullable(String)')``; no args -> ``''``."""
    type_name = type_name.strip()
    if not type_name.endswith(")") or "(" not in type_name:
        return type_name, ""
    head, _, rest = type_name.partition("(")
    return head, rest[:-1]


def arrow_type(type_name: str) -> pa.DataType | None:
    """The Arrow type to send for a column of this ClickHouse type (``None``: let Arrow infer)."""
    head, inner = split_type(type_name)
    if head in _WRAPPERS:
        return arrow_type(inner)
    if head == "Array":
        element = arrow_type(inner)
        return None if element is None else pa.list_(element)
    if head in ("Enum8", "Enum16", "FixedString"):
        return pa.string()
    if head == "DateTime":
        return pa.timestamp("s", tz="UTC")
    return _ARROW_SCALARS.get(head)


def json_decoder(type_name: str, *, nullable: bool = False) -> Decoder:
    """A function turning one JSONCompact value of this type into its Python value."""
    head, inner = split_type(type_name)
    if head == "LowCardinality":
        return json_decoder(inner, nullable=nullable)
    if head == "Nullable":
        return json_decoder(inner, nullable=True)
    if head == "Array":
        element = json_decoder(inner)
        return lambda values: [element(value) for value in values]
    decoder = _scalar_decoder(head, inner)
    if nullable:
        return lambda value: None if value is None else decoder(value)
    return decoder


def _scalar_decoder(head: str, inner: str) -> Decoder:
    if head.startswith(("UInt", "Int")) and head[-1].isdigit():
        return int
    if head.startswith("Float"):
        # JSON has no NaN: ClickHouse writes it as null.
        return lambda value: math.nan if value is None else float(value)
    if head == "DateTime":
        zone = _zone(inner)
        return lambda value: datetime.fromisoformat(value).replace(tzinfo=zone)
    if head == "Date":
        return date.fromisoformat
    return _identity


def _zone(argument: str) -> tzinfo:
    name = argument.strip().strip("'")
    return UTC if name in ("", "UTC", "Etc/UTC") else ZoneInfo(name)


def _identity(value: Any) -> Any:
    return value
