"""From emitted feature vectors to decisions, one partition's numbers at a time.

Pure of Faust: flag state lives in a ``MutableMapping[str, bytes]`` (the
``flag-state`` table in the worker, co-partitioned with the callers).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from models.allowlist_patterns import AllowMatcher
from models.decisions import FlagState, decide, expire, lift
from sinks.flag_record import Flag, decode_flag, encode_flag
from streams.feature_stage import Emission
from streams.model_service import DecisionKit

__all__ = ["DecisionStats", "decide_emission", "decode_state", "encode_state", "expire_due",
           "lift_flag"]


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
    return orjson.dumps({"flag": flag, "suppressed_until_ms": state.suppressed_until_ms})


def decode_state(raw: bytes | None) -> FlagState:
    """Inverse of :func:`encode_state`; an empty state for ``None``."""
    if raw is None:
        return FlagState()
    value: dict[str, Any] = orjson.loads(raw)
    flag = None if value["flag"] is None else decode_flag(orjson.dumps(value["flag"]))
    return FlagState(flag, value["suppressed_until_ms"])


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
    scores = kit.scorer.score(emission.numbers, emission.window_end_ms, emission.matrix())
    allowed = matcher.allows_many(emission.numbers)
    flags = []
    for score, is_allowed in zip(scores, allowed, strict=True):
        state, flag = decide(
            decode_state(table.get(score.number)),
            score,
            kit.policy,
            allowed=is_allowed,
            explain_as=kit.scorer.reasons_for,
        )
        if flag is not None:
            table[score.number] = encode_state(state)
            flags.append(flag)
    stats.scored = len(scores)
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


def lift_flag(
    number: str, now_ms: int, suppression_ms: int, table: MutableMapping[str, bytes],
    *, actor: str, why: str,
) -> Flag | None:
    """An operator's appeal: clear the number's flag and suppress re-flagging."""
    if not why.strip():
        return None  # the CLI and the dashboard refuse empty reasons; never crash the agent
    state, flag = lift(decode_state(table.get(number)), now_ms, suppression_ms=suppression_ms,
                       why=why)
    table[number] = encode_state(state)
    if flag is None:
        return None
    return Flag(**{**_fields(flag), "actor": actor})


def _fields(flag: Flag) -> dict[str, Any]:
    return {name: getattr(flag, name) for name in Flag.__slots__}  # type: ignore[attr-defined]
