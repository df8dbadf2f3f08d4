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
  holds the number for ``appeal_hold_ms``: while held, it is not flagged
  again unless its behaviour changes materially (:func:`material_change`:
  a score at least ``appeal_review_margin`` of the way to 1 from the
  ``block`` threshold or the lifted flag's score, whichever is higher, or a
  new category), and then only as ``watch``, with a reason saying it goes
  to review, never as ``block``;
- ``watch`` decisions are the operators' review queue: :func:`confirm` turns
  a watch into ``block`` (source ``operator``) and ends any hold;
  :func:`dismiss` clears the flag (source ``operator``) and holds the number
  as an appeal does;
- allow-listed numbers are never flagged; an active flag on a number that
  becomes allow-listed is cleared (source ``allowlist``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from contracts.flag import Action, Flag

__all__ = [
    "DecisionPolicy",
    "Explain",
    "FlagState",
    "Score",
    "confirm",
    "decide",
    "dismiss",
    "expire",
    "lift",
    "material_change",
]

_DAY_MS = 24 * 3600 * 1000
OPERATOR = "operator"  # the source of an operator's confirm or dismiss
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
    ``block_min_calls``: a ``block`` also needs this many calls in the long
    window (the score's ``long_call_volume``); with fewer, ``watch``.

    ``appeal_hold_ms``: how long an upheld appeal (or a dismissed review)
    keeps the number from being flagged again on the same behaviour.
    ``appeal_review_margin``: while held, a score counts as a material change
    when it reaches at least this share of the way to 1 from the ``block``
    threshold or from the score of the flag that was lifted, whichever is
    higher (:meth:`material_score`; 0.5 with block 0.9 and a lifted watch:
    0.95; with a lifted block of 0.96: 0.98). So going on as before is not a
    change, however high the score was. A share, not a difference, so it
    stays reachable however close to 1 the threshold is; 0 makes any
    block-level score above the lifted one material, 1 only a certain one.
    """

    block_threshold: float
    watch_threshold: float
    flag_ttl_ms: int = _DAY_MS
    appeal_hold_ms: int = 30 * _DAY_MS
    appeal_review_margin: float = 0.5
    category_switch_ratio: float = 1.5
    block_hold_margin: float = 0.05
    review_score: float = 1.0
    review_anomaly: float = 1e9
    block_anomaly: float = 0.0
    block_min_calls: float = 0.0

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
        if self.appeal_hold_ms < 0:
            raise ValueError(f"appeal_hold_ms must be at least 0, got {self.appeal_hold_ms}")
        if not 0 <= self.appeal_review_margin <= 1:
            raise ValueError(
                f"appeal_review_margin must be between 0 and 1, got {self.appeal_review_margin}"
            )

    def tier(
        self,
        probability: float,
        anomaly: float = 0.0,
        long_calls: float = math.inf,
        block_agreed: bool = True,
    ) -> Action | None:
        """The action tier a nuisance probability (anomaly, long-window calls) reaches, if any.

        ``block_agreed``: the model's own say on a block (:attr:`Score.block_agreed`).
        """
        if probability >= self.block_threshold:
            if (block_agreed and anomaly >= self.block_anomaly
                    and long_calls >= self.block_min_calls):
                return Action.BLOCK
            return Action.WATCH  # the population does not agree, or too little evidence yet
        if probability >= self.watch_threshold or self.reviews(probability, anomaly):
            return Action.WATCH
        return None

    def may_act(
        self, probabilities: NDArray[np.float64], anomaly: NDArray[np.float64]
    ) -> NDArray[np.bool_]:
        """Per row: whether a score could reach a tier (:meth:`tier` not None), vectorised.

        A number with no flag state and a row that reaches no tier gives no
        decision whatever else it holds, so the worker builds scores only for
        the rows this admits and the numbers that have a state.

        >>> policy = DecisionPolicy(block_threshold=0.9, watch_threshold=0.6,
        ...                         review_score=0.4, review_anomaly=1.0)
        >>> policy.may_act(np.array([0.95, 0.7, 0.5, 0.5, 0.1]),
        ...                np.array([0.0, 0.0, 1.5, 0.5, 3.0])).tolist()
        [True, True, True, False, False]
        """
        probabilities = np.asarray(probabilities, dtype=np.float64)
        reach = probabilities >= self.watch_threshold  # at most block (checked at start)
        reach |= (probabilities >= self.review_score) & (np.asarray(anomaly) >= self.review_anomaly)
        return np.asarray(reach)

    def material_score(self, held_score: float = 0.0) -> float:
        """The score that counts as a material change for a number held at ``held_score``."""
        base = max(self.block_threshold, held_score)
        return base + self.appeal_review_margin * (1 - base)

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
    # Whether the model's paths let a block-level score block
    # (models.complaint_paths.ComplaintPaths.block_agreed); False: watch at most.
    block_agreed: bool = True


@dataclass(frozen=True, slots=True)
class FlagState:
    """What the worker remembers about one number.

    ``suppressed_until_ms``: the end of the hold an upheld appeal or a
    dismissed review put on the number (event time); ``held_category`` and
    ``held_score``: the category and score of the flag lifted then, against
    which a material change is judged.
    """

    flag: Flag | None = None
    suppressed_until_ms: int = 0
    held_category: str = ""
    held_score: float = 0.0

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
    current = state.flag if state.active(now) else None
    tier = _held_tier(current, score, policy)
    if tier is None:
        return state, None
    change = None
    if now < state.suppressed_until_ms:
        change = material_change(state, score, policy)
        if change is None:
            return state, None
        tier = Action.WATCH  # a held number goes to review, never straight to block
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
    if change is not None:
        reasons = (f"{change} since the appeal: goes to review, not blocked while the "
                   "appeal holds",) + reasons
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


def material_change(state: FlagState, score: Score, policy: DecisionPolicy) -> str | None:
    """How a held number's behaviour changed materially, in words; ``None`` if it did not.

    Material: a score of at least :meth:`DecisionPolicy.material_score`, or a
    category other than the one it was held as, clearly more probable (by
    ``category_switch_ratio``, as a flag's category changes).
    """
    material = policy.material_score(state.held_score)
    if score.probability >= material:
        return (f"score {score.probability:.3f} at or above {material:.3f} (the review margin "
                f"above block {policy.block_threshold:.3f} and the lifted flag's "
                f"{state.held_score:.3f})")
    held = state.held_category
    if held and _switches(held, score, policy):
        return f"new category {score.category} (held as {held})"
    return None


def _held_tier(current: Flag | None, score: Score, policy: DecisionPolicy) -> Action | None:
    """The tier a score reaches; an active block holds within ``block_hold_margin``.

    A block an operator confirmed holds while the caller still reaches a tier.
    """
    tier = policy.tier(
        score.probability, score.anomaly, score.features.get("long_call_volume", math.inf),
        score.block_agreed,
    )
    if current is None or current.action is not Action.BLOCK:
        return tier
    if score.probability >= policy.block_threshold - policy.block_hold_margin:
        return Action.BLOCK
    if current.source == OPERATOR and tier is not None:
        return Action.BLOCK
    return tier


def _held_category(current: Flag | None, score: Score, policy: DecisionPolicy) -> str:
    """The score's category, or the active flag's while no class clearly beats it."""
    if current is None or _switches(current.category, score, policy):
        return score.category
    return current.category


def _switches(category: str, score: Score, policy: DecisionPolicy) -> bool:
    """Whether the score's category clearly replaces ``category``."""
    if category == score.category:
        return False
    if not score.class_probabilities:
        return True
    held = score.class_probabilities.get(category, 0.0)
    best = score.class_probabilities.get(score.category, 0.0)
    return best > held and best >= held * policy.category_switch_ratio


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
    state: FlagState, now_ms: int, *, hold_ms: int, why: str
) -> tuple[FlagState, Flag | None]:
    """An operator upholds an appeal: clear now and hold the number for ``hold_ms``.

    The clear carries the lifted flag's features (the labelled example).
    Needs no model: an appeal is honoured even while no model serves.
    """
    if not why.strip():
        raise ValueError("an appeal needs a reason (why)")
    held = _held(state, now_ms, hold_ms)
    if not state.active(now_ms):
        return held, None
    return _clear(held, now_ms, source="appeal", reason=f"appeal upheld: {why.strip()}",
                  keep_features=True)


def confirm(
    state: FlagState, now_ms: int, *, ttl_ms: int, why: str
) -> tuple[FlagState, Flag | None]:
    """An operator confirms a ``watch`` under review: ``block`` (source ``operator``).

    The block lasts ``ttl_ms`` and is renewed as a block while the caller
    goes on reaching a tier; any hold ends. A number without an active watch
    is left as it is (``None``): there is nothing under review to confirm.
    """
    if not why.strip():
        raise ValueError("a confirmation needs a reason (why)")
    current = state.flag
    if current is None or not current.active_at(now_ms) or current.action is not Action.WATCH:
        return state, None
    block = replace(
        current,
        action=Action.BLOCK,
        reasons=(f"confirmed by an operator: {why.strip()}", *current.reasons),
        flagged_at_ms=now_ms,
        expires_at_ms=now_ms + ttl_ms,
        source=OPERATOR,
        actor="",
    )
    return FlagState(block), block


def dismiss(
    state: FlagState, now_ms: int, *, hold_ms: int, why: str
) -> tuple[FlagState, Flag | None]:
    """An operator dismisses a flag as a false positive: clear it and hold it like an appeal."""
    if not why.strip():
        raise ValueError("a dismissal needs a reason (why)")
    if not state.active(now_ms):
        return state, None
    return _clear(_held(state, now_ms, hold_ms), now_ms, source=OPERATOR,
                  reason=f"dismissed by an operator: {why.strip()}", keep_features=True)


def _held(state: FlagState, now_ms: int, hold_ms: int) -> FlagState:
    if state.flag is None:  # nothing flagged: a later flag is judged as a new one
        return replace(state, suppressed_until_ms=now_ms + hold_ms)
    return replace(state, suppressed_until_ms=now_ms + hold_ms,
                   held_category=state.flag.category, held_score=state.flag.score)


def _clear(
    state: FlagState, at_ms: int, *, source: str, reason: str, keep_features: bool = False
) -> tuple[FlagState, Flag]:
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
        features=dict(previous.features) if keep_features else {},
    )
    return replace(state, flag=cleared), cleared
