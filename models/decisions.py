"""The flag lifecycle: from a score to block/watch, renewal, expiry, appeal.

Pure functions over plain values; the worker keeps one :class:`FlagState`
per number in a Faust table and publishes every :class:`Flag` these return.

Policy, in event time (the CDRs' clock, so a replay decides the same way):

- a score at or above the ``block`` threshold gives ``block``; at or above
  ``watch``, ``watch``; the category is the most probable nuisance class;
- an active flag is renewed while the behaviour goes on: a higher tier or a
  new category is published at once; the same decision is re-published only
  when less than half of its lifetime is left, so the topic is not flooded;
- a flag not renewed lapses at ``expires_at``: :func:`expire` publishes
  ``clear`` (source ``expiry``);
- an operator's appeal lifts the flag with ``clear`` (source ``appeal``) and
  suppresses new flags for the number for ``appeal_suppression_ms``;
- allow-listed numbers are never flagged; an active flag on a number that
  becomes allow-listed is cleared (source ``allowlist``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from sinks.flag_record import Action, Flag

__all__ = ["DecisionPolicy", "FlagState", "Score", "decide", "expire", "lift"]

_DAY_MS = 24 * 3600 * 1000
_TIER_RANK = {Action.CLEAR: 0, Action.WATCH: 1, Action.BLOCK: 2}


@dataclass(frozen=True, slots=True)
class DecisionPolicy:
    """Thresholds (from the model's metadata) and lifetimes."""

    block_threshold: float
    watch_threshold: float
    flag_ttl_ms: int = _DAY_MS
    appeal_suppression_ms: int = 7 * _DAY_MS

    def __post_init__(self) -> None:
        if not 0 < self.watch_threshold <= self.block_threshold <= 1:
            raise ValueError(
                "thresholds must satisfy 0 < watch <= block <= 1, got "
                f"watch={self.watch_threshold}, block={self.block_threshold}"
            )
        if self.flag_ttl_ms <= 0:
            raise ValueError("flag_ttl_ms must be positive")

    def tier(self, probability: float) -> Action | None:
        """The action tier a nuisance probability reaches, if any."""
        if probability >= self.block_threshold:
            return Action.BLOCK
        if probability >= self.watch_threshold:
            return Action.WATCH
        return None


@dataclass(frozen=True, slots=True)
class Score:
    """The model's verdict on one caller at one window end."""

    number: str
    category: str
    probability: float
    model_version: str
    window_end_ms: int
    reasons: tuple[str, ...] = ()
    features: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FlagState:
    """What the worker remembers about one number."""

    flag: Flag | None = None
    suppressed_until_ms: int = 0

    def active(self, now_ms: int) -> bool:
        """Whether a block or watch applies at ``now_ms``."""
        return self.flag is not None and self.flag.active_at(now_ms)


def decide(
    state: FlagState, score: Score, policy: DecisionPolicy, *, allowed: bool
) -> tuple[FlagState, Flag | None]:
    """Apply one score; return the new state and the decision to publish, if any."""
    now = score.window_end_ms
    if allowed:
        if state.active(now):
            return _clear(state, now, source="allowlist", reason="number is on the allow-list")
        return state, None
    tier = policy.tier(score.probability)
    if tier is None or now < state.suppressed_until_ms:
        return state, None
    current = state.flag if state.active(now) else None
    if current is not None and not _worth_publishing(current, tier, score, policy, now):
        return state, None
    flag = Flag(
        number=score.number,
        action=tier,
        category=score.category,
        score=score.probability,
        reasons=score.reasons,
        model_version=score.model_version,
        window_end_ms=now,
        flagged_at_ms=now,
        expires_at_ms=now + policy.flag_ttl_ms,
        source="model",
        features=dict(score.features),
    )
    return replace(state, flag=flag), flag


def _worth_publishing(
    current: Flag, tier: Action, score: Score, policy: DecisionPolicy, now: int
) -> bool:
    if _TIER_RANK[tier] > _TIER_RANK[current.action] or score.category != current.category:
        return True
    remaining = (current.expires_at_ms or now) - now
    return remaining < policy.flag_ttl_ms // 2


def expire(state: FlagState, now_ms: int) -> tuple[FlagState, Flag | None]:
    """Lapse a flag whose lifetime is over: publish ``clear`` once."""
    flag = state.flag
    if flag is None or flag.action is Action.CLEAR or flag.active_at(now_ms):
        return state, None
    assert flag.expires_at_ms is not None  # active_at is False only past expiry
    return _clear(state, flag.expires_at_ms, source="expiry", reason="no nuisance behaviour since")


def lift(
    state: FlagState, now_ms: int, *, suppression_ms: int, why: str
) -> tuple[FlagState, Flag | None]:
    """An operator upholds an appeal: clear now and suppress re-flagging for ``suppression_ms``.

    Needs no model: an appeal is honoured even while no model serves.
    """
    if not why.strip():
        raise ValueError("an appeal needs a reason (why)")
    suppressed = replace(state, suppressed_until_ms=now_ms + suppression_ms)
    if not state.active(now_ms):
        return suppressed, None
    return _clear(suppressed, now_ms, source="appeal", reason=f"appeal upheld: {why.strip()}")


def _clear(state: FlagState, at_ms: int, *, source: str, reason: str) -> tuple[FlagState, Flag]:
    previous = state.flag
    assert previous is not None
    cleared = Flag(
        number=previous.number,
        action=Action.CLEAR,
        category=previous.category,
        score=previous.score,
        reasons=(reason,),
        model_version=previous.model_version,
        window_end_ms=previous.window_end_ms,
        flagged_at_ms=at_ms,
        expires_at_ms=None,
        source=source,
    )
    return replace(state, flag=cleared), cleared
