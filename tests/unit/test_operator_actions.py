"""Operators' actions on cdr.by_caller: the wire's kind column and the decision stage."""

from __future__ import annotations

import orjson
import pytest

from contracts.by_caller import AppealColumns, RoutedBatch, decode_routed, encode_routed
from contracts.flag import Action
from models.decisions import DecisionPolicy, FlagState, Score, decide
from streams.stages.decision_stage import apply_operator_action, decode_state, encode_state

HOUR = 3600 * 1000
DAY = 24 * HOUR
T0 = 1_714_528_800_000
NUMBER = "+8613800138000"
POLICY = DecisionPolicy(block_threshold=0.9, watch_threshold=0.6)


def flagged(probability: float) -> dict[str, bytes]:
    """A flag-state table holding one decision about NUMBER at T0."""
    scored = Score(NUMBER, "fraud", probability, "v1", T0, ("one-ring ratio 0.9",),
                   features={"one_ring_ratio": 0.9, "short_call_volume": 40.0})
    state, _ = decide(FlagState(), scored, POLICY, allowed=False)
    return {NUMBER: encode_state(state)}


def act(kind: str, table: dict[str, bytes], at_ms: int = T0 + HOUR, why: str = "checked"):
    return apply_operator_action(kind, NUMBER, at_ms, table, hold_ms=30 * DAY, ttl_ms=DAY,
                                 actor="op:li", why=why)


def test_a_message_without_kind_is_read_as_appeals() -> None:
    old = orjson.dumps({"appeals": {"number": [NUMBER], "actor": ["op:li"],
                                    "why": ["school notices"], "time_ms": [T0]}})
    assert decode_routed(old).appeals.actions() == [("appeal", NUMBER, "op:li",
                                                     "school notices", T0)]


def test_appeals_alone_are_written_as_before_and_kinds_travel() -> None:
    appeals = AppealColumns([NUMBER], ["op:li"], ["school notices"], [T0])
    assert "kind" not in orjson.loads(encode_routed(RoutedBatch(appeals=appeals)))["appeals"]
    mixed = AppealColumns([NUMBER, "+8613900139000"], ["op:li", "op:wu"], ["a", "b"],
                          [T0, T0 + 1], ["confirm", "dismiss"])
    decoded = decode_routed(encode_routed(RoutedBatch(appeals=mixed))).appeals
    assert [row[0] for row in decoded.actions()] == ["confirm", "dismiss"]


def test_a_kind_column_of_another_length_is_refused() -> None:
    bad = orjson.dumps({"appeals": {"number": [NUMBER], "actor": ["op:li"], "why": ["x"],
                                    "time_ms": [T0], "kind": []}})
    with pytest.raises(ValueError, match="different lengths"):
        decode_routed(bad)


def test_confirm_publishes_a_block_with_the_actor_and_keeps_it_in_the_table() -> None:
    table = flagged(0.7)
    block = act("confirm", table, why="complaints confirm it")
    assert (block.action, block.source, block.actor) == (Action.BLOCK, "operator", "op:li")
    assert block.features["one_ring_ratio"] == 0.9
    assert decode_state(table[NUMBER]).flag == block


def test_dismiss_and_the_hold_survive_the_table_s_encoding() -> None:
    table = flagged(0.7)
    cleared = act("dismiss", table, why="a bank's reminders")
    assert (cleared.action, cleared.source, cleared.actor) == (Action.CLEAR, "operator", "op:li")
    # What a restarted worker reads back from the changelog-backed table.
    restored = decode_state(bytes(table[NUMBER]))
    assert restored.suppressed_until_ms == T0 + HOUR + 30 * DAY
    assert (restored.held_category, restored.held_score) == ("fraud", 0.7)
    again = Score(NUMBER, "fraud", 0.93, "v1", T0 + 5 * HOUR, ())
    assert decide(restored, again, POLICY, allowed=False)[1] is None


def test_a_state_written_before_the_hold_had_a_category_still_reads() -> None:
    old = orjson.dumps({"flag": None, "suppressed_until_ms": T0})
    assert decode_state(old) == FlagState(None, T0, "")


def test_unknown_kinds_empty_reasons_and_nothing_to_confirm_do_nothing() -> None:
    table = flagged(0.95)  # a block: not under review
    before = dict(table)
    assert act("escalate", table) is None and act("confirm", table, why=" ") is None
    assert table == before
    assert act("confirm", table) is None
    assert act("appeal", table).source == "appeal"


def test_the_hold_setting_is_checked_at_start_and_the_old_name_refused(monkeypatch) -> None:
    from streams.settings import ConfigurationError, load_settings

    settings = load_settings()
    assert settings.appeal_hold_s == 30 * 86_400 and settings.appeal_suppression_s == 30 * 86_400
    with pytest.raises(ConfigurationError, match="CALLGUARD_APPEAL_HOLD_S"):
        load_settings(appeal_hold_s=-1)
    with pytest.raises(ConfigurationError, match="CALLGUARD_APPEAL_REVIEW_MARGIN"):
        load_settings(appeal_review_margin=2)
    monkeypatch.setenv("CALLGUARD_APPEAL_SUPPRESSION_S", "604800")
    with pytest.raises(ConfigurationError, match="set CALLGUARD_APPEAL_HOLD_S"):
        load_settings()


def test_an_action_at_the_flag_s_own_instant_is_decided_a_second_after_it() -> None:
    # The partition's stream time may not have moved since the flag: the appeal
    # must still sort after the flag it lifts in the store (times to the second).
    table = flagged(0.95)
    lifted = act("appeal", table, at_ms=T0, why="registered school notices")
    assert (lifted.action, lifted.source) == (Action.CLEAR, "appeal")
    assert lifted.flagged_at_ms == T0 + 1000
    later = act("confirm", flagged(0.7), at_ms=T0 + HOUR, why="complaints")
    assert later.flagged_at_ms == T0 + HOUR
