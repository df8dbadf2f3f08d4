"""Allow-list: patterns, durable storage with audit, and the hot-path matcher."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from models.allowlist import DEFAULT_ENTRIES, AllowList, AllowListError
from models.allowlist_patterns import AllowMatcher, PatternError, parse_pattern
from models.decisions import DecisionPolicy, FlagState, Score, decide


@pytest.fixture()
def clock() -> Callable[[], datetime]:
    ticks: Iterator[int] = iter(range(10_000))
    start = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    return lambda: start + timedelta(seconds=next(ticks))


@pytest.fixture()
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "allowlist.sqlite"


@pytest.fixture()
def allowlist(store_path: Path, clock: Callable[[], datetime]) -> Iterator[AllowList]:
    with AllowList.open(store_path, clock=clock) as opened:
        yield opened


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("13800138000", "+8613800138000"),
        ("+86 138 0013 8000", "+8613800138000"),
        ("0086-138-0013-8000", "+8613800138000"),
        ("010-12345678", "+861012345678"),
        ("95588", "95588"),
        ("955*", "955*"),
        ("955xx", "955xx"),
        ("95588*", "95588*"),
        ("12345", "12345"),
        ("1380013*", "+861380013*"),
        ("+86 138 0013*", "+861380013*"),
        ("0755-8601*", "+867558601*"),
        ("+86 755 8601*", "+867558601*"),
        ("400-812*", "+86400812*"),
        ("+86400812*", "+86400812*"),
        ("+1 650*", "+1650*"),
        ("1380013xxxx", "+861380013xxxx"),
    ],
)
def test_patterns_are_normalised(written: str, canonical: str) -> None:
    assert parse_pattern(written).text == canonical


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("", "neither a number"),
        ("bank", "neither a number"),
        ("1*", "too broad"),
        ("*", "too broad"),
        ("+8613*", "too broad"),
        ("21*", "ambiguous"),
        ("+86010*", "no leading 0"),
        ("955xxxx", "at most 6 digits"),
        ("95*5", "neither a number"),
    ],
)
def test_bad_patterns_are_refused_with_a_reason(written: str, reason: str) -> None:
    with pytest.raises(PatternError, match=reason):
        parse_pattern(written)


def test_matcher_exact_prefix_and_fixed_length() -> None:
    patterns = ["12345", "955xx", "+86400812*", "0755-8601*", "1380013*", "13900139000"]
    matcher = AllowMatcher([parse_pattern(p) for p in patterns])
    allowed = ["12345", "95588", "95533", "+864008123123", "+8675586013388",
               "+8613800130000", "+8613800139999", "+8613900139000"]
    flagged = ["123456", "955881", "9558", "96511", "+864008133123", "+8675586023388",
               "+8613800140000", "+8613900139001", "+8612345"]
    assert matcher.allows_many(allowed) == [True] * len(allowed)
    assert matcher.allows_many(flagged) == [False] * len(flagged)
    assert matcher.match("+8613800130000") == "+861380013*"


def test_matcher_accepts_unnormalised_numbers_and_never_allows_garbage() -> None:
    matcher = AllowMatcher([parse_pattern("1380013*"), parse_pattern("95588")])
    assert matcher.allows("138-0013-0000") and matcher.allows("008613800130000")
    assert not matcher.allows("not a number") and not matcher.allows("")


def test_add_remove_and_audit(allowlist: AllowList) -> None:
    entry = allowlist.add("0755-8601*", actor="wang.fang", why="Shenzhen hospital switchboard")
    assert (entry.pattern, entry.kind, entry.added_by) == ("+867558601*", "prefix", "wang.fang")
    allowlist.add("138 0013 8000", actor="wang.fang", why="registered enterprise, ticket 4411")
    assert [e.pattern for e in allowlist.entries()] == ["+8613800138000", "+867558601*"]

    removed = allowlist.remove("+8613800138000", actor="li.na", why="registration lapsed")
    assert removed.why == "registered enterprise, ticket 4411"
    assert [e.pattern for e in allowlist.entries()] == ["+867558601*"]

    log = allowlist.audit_log()
    assert [(r.actor, r.action, r.pattern, r.why) for r in log] == [
        ("wang.fang", "add", "+867558601*", "Shenzhen hospital switchboard"),
        ("wang.fang", "add", "+8613800138000", "registered enterprise, ticket 4411"),
        ("li.na", "remove", "+8613800138000", "registration lapsed"),
    ]
    assert all(r.ts.tzinfo is not None for r in log)
    assert log[0].ts < log[1].ts < log[2].ts


@pytest.mark.parametrize("why", ["", "   ", "\n"])
def test_changes_without_a_reason_are_refused(allowlist: AllowList, why: str) -> None:
    with pytest.raises(AllowListError, match="give a reason"):
        allowlist.add("95588", actor="ops", why=why)
    allowlist.add("95588", actor="ops", why="bank")
    with pytest.raises(AllowListError, match="give a reason"):
        allowlist.remove("95588", actor="ops", why=why)
    assert [e.pattern for e in allowlist.entries()] == ["95588"]
    assert len(allowlist.audit_log()) == 1


def test_changes_need_an_actor(allowlist: AllowList) -> None:
    with pytest.raises(AllowListError, match="who"):
        allowlist.add("95588", actor=" ", why="bank")


def test_duplicates_unknowns_and_bad_patterns_are_refused(allowlist: AllowList) -> None:
    allowlist.add("95588", actor="ops", why="ICBC")
    with pytest.raises(AllowListError, match="already allowed .*ICBC"):
        allowlist.add("955-88", actor="ops", why="again")
    with pytest.raises(AllowListError, match="not on the allow-list"):
        allowlist.remove("95533", actor="ops", why="never added")
    with pytest.raises(AllowListError, match="too broad"):
        allowlist.add("1*", actor="ops", why="oops")
    assert len(allowlist.audit_log()) == 1


def test_entries_and_audit_survive_reopening(
    store_path: Path, clock: Callable[[], datetime]
) -> None:
    with AllowList.open(store_path, clock=clock) as first:
        first.add("95588", actor="ops", why="ICBC")
        first.add("12345", actor="ops", why="hotline")
        first.remove("12345", actor="ops", why="covered by defaults")
    with AllowList.open(store_path, clock=clock) as reopened:
        assert [e.pattern for e in reopened.entries()] == ["95588"]
        assert [r.action for r in reopened.audit_log()] == ["add", "add", "remove"]
        assert reopened.matcher().allows("95588")


def test_audit_is_append_only(allowlist: AllowList, store_path: Path) -> None:
    allowlist.add("95588", actor="ops", why="ICBC")
    raw = sqlite3.connect(store_path)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            raw.execute("DELETE FROM audit")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            raw.execute("UPDATE audit SET why = 'nothing'")
    finally:
        raw.close()


def test_matcher_revision_follows_changes_from_another_connection(
    allowlist: AllowList, store_path: Path
) -> None:
    matcher = allowlist.matcher()
    assert not matcher.allows("+8613800138000") and matcher.revision == 0
    with AllowList.open(store_path) as cli_side:
        cli_side.add("13800138000", actor="ops", why="enterprise")
    assert allowlist.revision() > matcher.revision
    assert allowlist.matcher().allows("+8613800138000")


def test_seed_defaults_is_idempotent_and_audited(allowlist: AllowList) -> None:
    added = allowlist.seed_defaults()
    assert len(added) == len(DEFAULT_ENTRIES)
    assert all(entry.added_by == "callguard" and entry.why for entry in added)
    assert allowlist.seed_defaults() == []
    matcher = allowlist.matcher()
    service = ["95588", "95533", "12345", "10086", "10010", "10000", "110", "119", "120", "122"]
    assert matcher.allows_many(service) == [True] * len(service)
    assert not matcher.allows("+8613800138000") and not matcher.allows("96511")


def test_allow_listed_numbers_are_never_flagged(allowlist: AllowList) -> None:
    """Whatever the model says, the decision step publishes no flag for an allowed caller."""
    allowlist.seed_defaults()
    allowlist.add("1380013*", actor="ops", why="enterprise segment")
    policy = DecisionPolicy(block_threshold=0.9, watch_threshold=0.6)
    scores = {"95588": 0.99, "+8613800139999": 0.97, "12345": 0.7, "+8613900139000": 0.95}
    matcher = allowlist.matcher()
    published = {}
    for (number, probability), allowed in zip(
        scores.items(), matcher.allows_many(list(scores)), strict=True
    ):
        score = Score(number, "finance_marketing", probability, "v1", 1_714_528_800_000)
        _, flag = decide(FlagState(), score, policy, allowed=allowed)
        published[number] = None if flag is None else flag.action.value
    assert published == {"95588": None, "+8613800139999": None, "12345": None,
                         "+8613900139000": "block"}
