"""encode_flag output against the published JSON Schema (contracts/schemas/flag.schema.json)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from contracts.flag import Action, Flag, encode_flag
from models.decisions import (
    DecisionPolicy,
    FlagState,
    Score,
    confirm,
    decide,
    dismiss,
    expire,
    lift,
)

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "contracts" / "schemas" / "flag.schema.json"
T0 = 1_795_000_000_123
POLICY = DecisionPolicy(block_threshold=0.9, watch_threshold=0.6)
HOLD = POLICY.appeal_hold_ms
# jsonschema checks "date-time" only with an optional package; this is RFC 3339's grammar.
RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
)
FORMATS = FormatChecker()


@FORMATS.checks("date-time")
def is_rfc3339(value: object) -> bool:
    return not isinstance(value, str) or RFC3339.fullmatch(value) is not None


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FORMATS)


def lifecycle_flags() -> list[Flag]:
    """Every kind of decision the worker publishes, from the real decision functions."""
    score = Score("+8613800138000", "finance_marketing", 0.95, "hgb-1", T0, ("short calls",))
    state, block = decide(FlagState(), score, POLICY, allowed=False)
    _, expired = expire(state, T0 + POLICY.flag_ttl_ms)
    _, appealed = lift(state, T0 + 1000, hold_ms=HOLD, why="school notices")
    _, allowed = decide(state, score, POLICY, allowed=True)
    watch_score = Score("95588", "debt_collection", 0.7, "hgb-1", T0, ())
    watched, watch = decide(FlagState(), watch_score, POLICY, allowed=False)
    _, confirmed = confirm(watched, T0 + 1000, ttl_ms=POLICY.flag_ttl_ms, why="complaints")
    _, dismissed = dismiss(watched, T0 + 1000, hold_ms=HOLD, why="a bank's reminders")
    found = [block, expired, appealed, allowed, watch, confirmed, dismissed]
    assert all(item is not None for item in found)
    return [item for item in found if item is not None]


def encoded(flag: Flag) -> dict[str, Any]:
    return orjson.loads(encode_flag(flag))


def test_every_published_kind_of_flag_is_valid(validator: Draft202012Validator) -> None:
    published = lifecycle_flags()

    for flag in published:
        errors = [error.message for error in validator.iter_errors(encoded(flag))]
        assert errors == [], (flag, errors)
    assert {flag.source for flag in published} == {
        "model", "expiry", "appeal", "allowlist", "operator"
    }
    assert {flag.action for flag in published} == set(Action)


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"action": "delete"}, "is not one of"),
        ({"source": "reviewer"}, "is not one of"),
        ({"number": "13800138000"}, "does not match"),
        ({"score": 1.5}, "greater than the maximum"),
        ({"flagged_at": "yesterday"}, "is not a 'date-time'"),
        ({"reasons": "short calls"}, "is not of type 'array'"),
        ({"extra": 1}, "Additional properties"),
    ],
)
def test_a_bad_value_is_refused(
    validator: Draft202012Validator, change: dict[str, Any], complaint: str
) -> None:
    value = encoded(lifecycle_flags()[0]) | change

    messages = [error.message for error in validator.iter_errors(value)]

    assert any(complaint in message for message in messages), messages


@pytest.mark.parametrize("field", ["number", "action", "decision_id", "expires_at", "source"])
def test_a_missing_field_is_refused(validator: Draft202012Validator, field: str) -> None:
    value = encoded(lifecycle_flags()[0])
    del value[field]

    messages = [error.message for error in validator.iter_errors(value)]

    assert messages == [f"'{field}' is a required property"]
