"""The flag lifecycle: from a score to block/watch, renewal, expiry, appeal.

Pure functions over plain values; the worker keeps one :class:`FlagState`
per number in a Faust table and publishes every :class:`Flag` these return.

Policy, in event time (the CDRs' clock, so a replay decides the same way):

- a score at or above the ``block`` threshold gives ``block`` when the
  caller's population anomaly also reaches the model's ``block_anomaly``
  (two signals agree), else ``watch``; at or above ``watch``, ``watch``;
  below ``watch``, the model's review rule gives ``watch`` when the score
  and the caller's population anomaly both reach it
  (:mod:`models.population`), with the anomaly's reasons first; a new flag's
  category is the most probable nuisance class;
- an active flag keeps its category unless another class has become clearly
  more probable: at least ``category_switch_ratio`` times the probability of
  the flag's category (two classes with close probabilities that swap from
  one window to the next do not change it); its reasons are then given for
  the category kept;
- an active ``block`` stays a ``block`` while the score stays within
  ``block_hold_margin`` below the ``block`` threshold; below that it may
  fall to ``watch``, but only when it is due for renewal (below) or its
  category changes;
- an active flag is renewed while the behaviour goes on: a higher tier or a
  new category is published at once; an unchanged decision (same tier, same
  or kept category), or a lower tier, is published only when less than half
  of the flag's lifetime is left, so the topic is not flooded;
- a flag not renewed lapses at ``expires_at``: :func:`expire` publishes
  ``clear`` (source ``expiry``);
- an operator's appeal lifts the flag with ``clear`` (source ``appeal``) and
  suppresses new flags for the number for ``appeal_suppression_ms``;
- allow-listed numbers are never flagged; an active flag on a number that
  becomes allow-listed is cleared (source ``allowlist``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from sinks.flag_record import Action, Flag

__all__ = ["DecisionPolicy", "Explain", "FlagState", "Score", "decide", "expire", "lift"]

_DAY_MS = 24 * 3600 * 1000
_TIER_RANK = {Action.CLEAR: 0, Action.WATCH: 1, Action.BLOCK: 2}


@dataclass(frozen=True, slots=True)
class DecisionPolicy:
    """Thresholds (from the model's metadata), lifetimes and hysteresis.

    ``category_switch_ratio``: how many times more probable than the flag's
    category another class must be to replace it. 1.5 keeps a caller whose
    two best classes sit at 0.48 and 0.47 where it is whichever way they
    swap, and moves one at 0.60 against 0.35; a ratio, not a difference, so
    it means the same at a nuisance score of 0.6 as at 0.99.

    ``block_hold_margin``: how far (in nuisance score) below the ``block``
    threshold an active block's score may fall and still renew it as a
    block. 0.05 absorbs the window-to-window jitter of a caller that goes
    on as before without holding a block on watch-level evidence.

    ``review_score`` and ``review_anomaly``: the model's review rule
    (:class:`models.population.ReviewRule`): a score below ``watch`` but at
    least ``review_score``, whose population anomaly is at least
    ``review_anomaly``, gives ``watch``. The defaults never fire.
    ``block_anomaly``: a ``block`` also needs the caller's population anomaly
    at least this; a block-level score with less gives ``watch``.
    """

    block_threshold: float
    watch_threshold: float
    flag_ttl_ms: int = _DAY_MS
    appeal_suppression_ms: int = 7 * _DAY_MS
    category_switch_ratio: float = 1.5
    block_hold_margin: float = 0.05
    review_score: float = 1.0
    review_anomaly: float = 1e9
    block_anomaly: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.watch_threshold <= self.block_threshold <= 1:
            raise ValueError(
                "thresholds must satisfy 0 < watch <= block <= 1, got "
                f"watch={self.watch_threshold}, block={self.block_threshold}"
            )
        if self.flag_ttl_ms <= 0:
            raise ValueError("flag_ttl_ms must be positive")
        if self.category_switch_ratio < 1:
            raise ValueError(
                f"category_switch_ratio must be at least 1, got {self.category_switch_ratio}"
            )
        if not 0 <= self.block_hold_margin < self.block_threshold:
            raise ValueError(
                "block_hold_margin must be at least 0 and below the block threshold, got "
                f"{self.block_hold_margin}"
            )

    def tier(self, probability: float, anomaly: float = 0.0) -> Action | None:
        """The action tier a nuisance probability (and population anomaly) reaches, if any."""
        if probability >= self.block_threshold and anomaly >= self.block_anomaly:
            return Action.BLOCK
        if probability >= self.block_threshold:
            return Action.WATCH  # the population does not agree enough for a block
        if probability >= self.watch_threshold or self.reviews(probability, anomaly):
            return Action.WATCH
        return None

    def reviews(self, probability: float, anomaly: float) -> bool:
        """Whether the review rule alone puts the caller on watch."""
        return (
            self.watch_threshold > probability >= self.review_score
            and anomaly >= self.review_anomaly
        )


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
    # P(class) for each nuisance class; empty: the category is taken as it comes.
    class_probabilities: Mapping[str, float] = field(default_factory=dict)
    # How far the caller lies in the population's suspicious tails (models.population),
    # and those tails in words.
    anomaly: float = 0.0
    anomaly_reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FlagState:
    """What the worker remembers about one number."""

    flag: Flag | None = None
    suppressed_until_ms: int = 0

    def active(self, now_ms: int) -> bool:
        """Whether a block or watch applies at ``now_ms``."""
        return self.flag is not None and self.flag.active_at(now_ms)


Explain = Callable[[Score, str], tuple[str, ...]]


def decide(
    state: FlagState,
    score: Score,
    policy: DecisionPolicy,
    *,
    allowed: bool,
    explain_as: Explain | None = None,
) -> tuple[FlagState, Flag | None]:
    """Apply one score; return the new state and the decision to publish, if any.

    ``explain_as(score, category)``: the reasons for the score's features as
    another category, used when the flag keeps a category that is not the
    score's most probable one (the worker passes
    :meth:`models.scoring.BatchScorer.reasons_for`); without it, the score's
    own reasons are published.
    """
    now = score.window_end_ms
    if allowed:
        if state.active(now):
            return _clear(state, now, source="allowlist", reason="number is on the allow-list")
        return state, None
    if now < state.suppressed_until_ms:
        return state, None
    current = state.flag if state.active(now) else None
    tier = _held_tier(current, score, policy)
    if tier is None:
        return state, None
    category = _held_category(current, score, policy)
    if current is not None and not _worth_publishing(current, tier, category, policy, now):
        return state, None
    reasons = score.reasons
    if category != score.category and explain_as is not None:
        reasons = explain_as(score, category)
    if policy.reviews(score.probability, score.anomaly):
        # The population signal carried the decision: its reasons come first.
        own = score.anomaly_reasons
        reasons = own + tuple(reason for reason in reasons if reason not in own)
    flag = Flag(
        number=score.number,
        action=tier,
        category=category,
        score=score.probability,
        reasons=reasons,
        model_version=score.model_version,
        window_end_ms=now,
        flagged_at_ms=now,
        expires_at_ms=now + policy.flag_ttl_ms,
        source="model",
        features=dict(score.features),
    )
    return replace(state, flag=flag), flag


def _held_tier(current: Flag | None, score: Score, policy: DecisionPolicy) -> Action | None:
    """The tier a score reaches; an active block holds within ``block_hold_margin``."""
    if (
        current is not None
        and current.action is Action.BLOCK
        and score.probability >= policy.block_threshold - policy.block_hold_margin
    ):
        return Action.BLOCK
    return policy.tier(score.probability, score.anomaly)


def _held_category(current: Flag | None, score: Score, policy: DecisionPolicy) -> str:
    """The score's category, or the active flag's while no class clearly beats it."""
    if current is None or current.category == score.category or not score.class_probabilities:
        return score.category
    held = score.class_probabilities.get(current.category, 0.0)
    best = score.class_probabilities.get(score.category, 0.0)
    if best > held and best >= held * policy.category_switch_ratio:
        return score.category
    return current.category


def _worth_publishing(
    current: Flag, tier: Action, category: str, policy: DecisionPolicy, now: int
) -> bool:
    if _TIER_RANK[tier] > _TIER_RANK[current.action] or category != current.category:
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
