"""From emitted feature vectors to decisions, one partition's numbers at a time.

Pure of Faust: flag state lives in a ``MutableMapping[str, bytes]`` (the
``flag-state`` table in the worker, co-partitioned with the callers).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, replace
from typing import Any

import orjson

from contracts.flag import Flag, decode_flag, encode_flag
from models.allowlist_patterns import AllowMatcher
from models.decisions import FlagState, confirm, decide, dismiss, expire, lift
from streams.stages.caller_features import Emission
from streams.stages.model_service import DecisionKit

__all__ = ["OPERATOR_ACTIONS", "DecisionStats", "apply_operator_action", "decide_emission",
           "decode_state", "encode_state", "expire_due"]

# What an operator's action on cdr.by_caller may ask (contracts.by_caller.AppealColumns.kind).
OPERATOR_ACTIONS = ("appeal", "confirm", "dismiss")


@dataclass(slots=True)
class DecisionStats:
    """Scores and published decisions by action (summed into the worker's metrics)."""

    scored: int = 0
    block: int = 0
    watch: int = 0
    clear: int = 0
    unscored_no_model: int = 0

    def count(self, flags: list[Flag]) -> None:
        """Count published decisions by action."""
        for flag in flags:
            name = flag.action.value
            setattr(self, name, getattr(self, name) + 1)

    def add(self, other: DecisionStats) -> None:
        """Accumulate ``other`` into this one."""
        for name in self.__slots__:  # type: ignore[attr-defined]
            setattr(self, name, getattr(self, name) + getattr(other, name))


def encode_state(state: FlagState) -> bytes:
    """Table value of a number's flag state."""
    flag = None if state.flag is None else orjson.loads(encode_flag(state.flag))
    return orjson.dumps({"flag": flag, "suppressed_until_ms": state.suppressed_until_ms,
                         "held_category": state.held_category,
                         "held_score": state.held_score})


def decode_state(raw: bytes | None) -> FlagState:
    """Inverse of :func:`encode_state`; an empty state for ``None``."""
    if raw is None:
        return FlagState()
    value: dict[str, Any] = orjson.loads(raw)
    flag = None if value["flag"] is None else decode_flag(orjson.dumps(value["flag"]))
    return FlagState(flag, value["suppressed_until_ms"], value.get("held_category", ""),
                     value.get("held_score", 0.0))


def decide_emission(
    emission: Emission,
    kit: DecisionKit | None,
    matcher: AllowMatcher,
    table: MutableMapping[str, bytes],
) -> tuple[list[Flag], DecisionStats]:
    """Score the emitted callers in one batch and apply the flag lifecycle."""
    stats = DecisionStats()
    if not len(emission):
        return [], stats
    if kit is None:
        stats.unscored_no_model = len(emission)
        return [], stats
    assessed = kit.scorer.assess(emission.matrix())
    # Only a number with a flag state, or a row that reaches a tier, can give a
    # decision (models.decisions.decide): the others need no Score built.
    reach = kit.policy.may_act(assessed.scores, assessed.anomaly).tolist()
    rows: list[int] = []
    stored: dict[str, bytes | None] = {}  # each kept number's state as the batch began
    for row, number in enumerate(emission.numbers):
        if number in stored:  # a later row sees the state the earlier one may leave
            rows.append(row)
            continue
        raw = table.get(number)
        if reach[row] or raw is not None:
            rows.append(row)
            stored[number] = raw
    scores = kit.scorer.scores_of(assessed, emission.numbers, emission.window_end_ms, rows)
    allowed = matcher.allows_many([score.number for score in scores])
    flags = []
    for score, is_allowed in zip(scores, allowed, strict=True):
        # The state read above, until a decision of this batch replaced it.
        raw = stored.pop(score.number) if score.number in stored else table.get(score.number)
        state, flag = decide(
            decode_state(raw),
            score,
            kit.policy,
            allowed=is_allowed,
            explain_as=kit.scorer.reasons_for,
        )
        if flag is not None:
            table[score.number] = encode_state(state)
            flags.append(flag)
    stats.scored = len(emission)
    return flags, stats


def expire_due(
    numbers: list[str], now_ms: int, table: MutableMapping[str, bytes]
) -> list[Flag]:
    """Publish ``clear`` for the given numbers whose flags have lapsed by ``now_ms``."""
    cleared = []
    for number in numbers:
        state, flag = expire(decode_state(table.get(number)), now_ms)
        if flag is not None:
            table[number] = encode_state(state)
            cleared.append(flag)
    return cleared


_AFTER_SEEN_MS = 1000  # the store's DateTime resolution


def apply_operator_action(
    kind: str, number: str, now_ms: int, table: MutableMapping[str, bytes],
    *, hold_ms: int, ttl_ms: int, actor: str, why: str,
) -> Flag | None:
    """An operator's action on the number's flag; the decision to publish, with its actor.

    ``appeal`` lifts the flag and holds the number (:func:`models.decisions.lift`),
    ``confirm`` blocks a watch under review, ``dismiss`` clears a flag and
    holds the number. An unknown kind or an empty reason does nothing: the
    CLI and the dashboard refuse both, and the agent must not crash on them.

    The action comes after the decision the operator saw: at least
    ``_AFTER_SEEN_MS`` past its time, even when the partition's stream time
    has not moved since. The store keeps decision times to the second and
    orders a number's history by them, so an appeal at the flag's own instant
    would tie with the flag it lifts.
    """
    if kind not in OPERATOR_ACTIONS or not why.strip():
        return None
    state = decode_state(table.get(number))
    if state.flag is not None:
        now_ms = max(now_ms, state.flag.flagged_at_ms + _AFTER_SEEN_MS)
    if kind == "confirm":
        state, flag = confirm(state, now_ms, ttl_ms=ttl_ms, why=why)
    elif kind == "dismiss":
        state, flag = dismiss(state, now_ms, hold_ms=hold_ms, why=why)
    else:
        state, flag = lift(state, now_ms, hold_ms=hold_ms, why=why)
    if flag is not None:
        flag = Flag(**{**_fields(flag), "actor": actor})
        state = replace(state, flag=flag)  # the state's flag names its actor too
    table[number] = encode_state(state)
    return flag


def _fields(flag: Flag) -> dict[str, Any]:
    return {name: getattr(flag, name) for name in Flag.__slots__}  # type: ignore[attr-defined]
