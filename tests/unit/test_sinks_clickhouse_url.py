"""Store URLs: what each form gives, and the errors that say what is expected."""

from __future__ import annotations

import pytest

from sinks.clickhouse import StoreURLError, parse_store_url


def test_native_url_gives_every_part() -> None:
    url = parse_store_url("clickhouse://writer:p%40ss%3Aword@ch.local:9440/flags")

    assert (url.scheme, url.host, url.port, url.database) == (
        "clickhouse",
        "ch.local",
        9440,
        "flags",
    )
    assert (url.user, url.password) == ("writer", "p@ss:word")
    assert "p@ss" not in repr(url) and "p@ss" not in url.redacted()


def test_native_url_defaults_user_password_and_port() -> None:
    url = parse_store_url("clickhouse://127.0.0.1/callguard")

    assert (url.user, url.password, url.port) == ("default", "", 9000)


def test_chdb_url_gives_path_and_default_database() -> None:
    url = parse_store_url("chdb:///var/lib/callguard/chdb")

    assert (url.scheme, url.path, url.database) == ("chdb", "/var/lib/callguard/chdb", "callguard")
    assert parse_store_url("chdb:///tmp/x?database=flags_test").database == "flags_test"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgres://u:p@h:5432/db", "unknown store URL scheme"),
        ("clickhouse://u:p@h:9000", "needs a database"),
        ("clickhouse://u:p@h:9000/", "needs a database"),
        ("clickhouse://:9000/db", "needs a host"),
        ("clickhouse://u:p@h:notaport/db", "bad store URL"),
        ("clickhouse://u:p@h:9000/db?secure=1", "takes no ?query"),
        ("clickhouse://u:p@h:9000/my-db", "must be letters"),
        ("clickhouse://u:p@h:9000/db;DROP", "must be letters"),
        ("chdb://relative/path", "absolute path"),
        ("chdb:///tmp/x?mode=ro", "only ?database"),
        ("chdb:///tmp/x?database=a`b", "must be letters"),
        ("", "unknown store URL scheme"),
    ],
)
def test_bad_urls_say_what_is_expected(url: str, says: str) -> None:
    with pytest.raises(StoreURLError) as raised:
        parse_store_url(url)

    assert says in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_unknown_scheme_names_both_forms() -> None:
    with pytest.raises(StoreURLError) as raised:
        parse_store_url("mysql://x/y")

    assert "expected clickhouse://user:password@host:9000/db or chdb:///path" in str(raised.value)
