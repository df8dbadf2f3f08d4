"""SQL literals, parameter binding and chDB type mapping, without a server."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone

import pyarrow as pa
import pytest

from sinks.clickhouse.chdb_types import arrow_type, json_decoder, split_type
from sinks.clickhouse.errors import StoreError, StoreURLError
from sinks.clickhouse.sqltext import bind, quote_identifier, quote_string, render_literal


@pytest.mark.parametrize(
    ("text", "literal"),
    [
        ("plain", "'plain'"),
        ("it's", "'it\\'s'"),
        ("a\\b", "'a\\\\b'"),
        ("\\'", "'\\\\\\''"),
        ("line\nbreak\t\r\0", "'line\\nbreak\\t\\r\\0'"),
        ('"double"', "'\"double\"'"),
    ],
)
def test_strings_are_escaped(text: str, literal: str) -> None:
    assert quote_string(text) == literal


def test_literals_for_each_supported_type() -> None:
    moment = datetime(2026, 11, 22, 20, 30, 5, tzinfo=timezone(timedelta(hours=8)))

    assert render_literal(None) == "NULL"
    assert render_literal(True) == "1"
    assert render_literal(42) == "42"
    assert render_literal(0.5) == "0.5"
    assert render_literal(math.nan) == "nan"
    assert render_literal(-math.inf) == "-inf"
    assert render_literal(moment) == "toDateTime('2026-11-22 12:30:05', 'UTC')"
    assert render_literal(date(2026, 1, 2)) == "toDate('2026-01-02')"
    assert render_literal(["a", 1]) == "['a', 1]"
    assert render_literal(("x'",)) == "('x\\'')"
    assert render_literal({"b", "a"}) == "('a', 'b')"


NAIVE = datetime(2026, 1, 1, tzinfo=UTC).replace(tzinfo=None)


@pytest.mark.parametrize(
    "value",
    [NAIVE, object(), (), b"bytes"],
    ids=["naive datetime", "object", "empty tuple", "bytes"],
)
def test_values_without_a_safe_literal_are_refused(value: object) -> None:
    with pytest.raises(StoreError):
        render_literal(value)


def test_bind_replaces_only_placeholders_written_in_the_statement() -> None:
    sql = "SELECT * FROM t WHERE a = %(a)s AND b = %(b)s AND c LIKE 'x%'"

    bound = bind(sql, {"a": "%(b)s", "b": "'); DROP TABLE t; --"})

    assert bound == (
        "SELECT * FROM t WHERE a = '%(b)s' AND b = '\\'); DROP TABLE t; --' AND c LIKE 'x%'"
    )


def test_bind_without_params_leaves_percent_signs_alone() -> None:
    assert bind("SELECT '100%(x)s'", None) == "SELECT '100%(x)s'"


def test_bind_reports_a_missing_parameter() -> None:
    with pytest.raises(StoreError, match="%\\(missing\\)s"):
        bind("SELECT %(missing)s", {"other": 1})


def test_identifiers_are_checked_not_escaped() -> None:
    assert quote_identifier("flags_history") == "`flags_history`"
    with pytest.raises(StoreURLError):
        quote_identifier("flags`; DROP")


@pytest.mark.parametrize(
    ("type_name", "split"),
    [
        ("String", ("String", "")),
        ("Array(Nullable(String))", ("Array", "Nullable(String)")),
        ("DateTime('UTC')", ("DateTime", "'UTC'")),
        ("Enum8('block' = 1, 'watch' = 2)", ("Enum8", "'block' = 1, 'watch' = 2")),
    ],
)
def test_split_type(type_name: str, split: tuple[str, str]) -> None:
    assert split_type(type_name) == split


@pytest.mark.parametrize(
    ("type_name", "expected"),
    [
        ("String", pa.string()),
        ("LowCardinality(String)", pa.string()),
        ("Enum8('block' = 1, 'clear' = 3)", pa.string()),
        ("DateTime('UTC')", pa.timestamp("s", tz="UTC")),
        ("Array(Float64)", pa.list_(pa.float64())),
        ("Array(LowCardinality(String))", pa.list_(pa.string())),
        ("UInt64", pa.uint64()),
        ("Nullable(Int32)", pa.int32()),
        ("Map(String, UInt8)", None),
    ],
)
def test_arrow_type_for_clickhouse_type(type_name: str, expected: pa.DataType | None) -> None:
    assert arrow_type(type_name) == expected


def test_json_values_decode_by_declared_type() -> None:
    assert json_decoder("DateTime('UTC')")("2026-11-22 12:00:00") == datetime(
        2026, 11, 22, 12, tzinfo=UTC
    )
    assert json_decoder("DateTime('Asia/Shanghai')")("2026-11-22 20:00:00") == datetime(
        2026, 11, 22, 12, tzinfo=UTC
    )
    assert json_decoder("UInt64")("18446744073709551615") == 2**64 - 1
    assert math.isnan(json_decoder("Float64")(None))
    assert json_decoder("Nullable(Float64)")(None) is None
    assert json_decoder("Array(Float64)")([1, None]) == [1.0, pytest.approx(math.nan, nan_ok=True)]
    assert json_decoder("Date")("2026-01-02") == date(2026, 1, 2)
    assert json_decoder("Enum8('block' = 1)")("block") == "block"
