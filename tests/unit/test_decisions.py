"""Flag lifecycle: tiers, renewal, expiry, appeal, allow-list."""

from __future__ import annotations

import pytest

from contracts.flag import Action, decode_flag, encode_flag
from models.decisions import (
    DecisionPolicy,
    FlagState,
    Score,
    confirm,
    decide,
    dismiss,
    expire,
    lift,
    material_change,
)

HOUR = 3600 * 1000
POLICY = DecisionPolicy(block_threshold=0.9, watch_threshold=0.6, flag_ttl_ms=24 * HOUR)
HOLD = POLICY.appeal_hold_ms
T0 = 1_714_528_800_000


def score(p: float, at: int = T0, category: str = "finance_marketing") -> Score:
    return Score("+8613800138000", category, p, "v1", at, ("short-call ratio 0.93",))


def test_tiers_from_thresholds() -> None:
    assert decide(FlagState(), score(0.5), POLICY, allowed=False) == (FlagState(), None)
    _, watch = decide(FlagState(), score(0.6), POLICY, allowed=False)
    _, block = decide(FlagState(), score(0.95), POLICY, allowed=False)
    assert watch.action is Action.WATCH and block.action is Action.BLOCK
    assert block.expires_at_ms == T0 + 24 * HOUR
    assert block.reasons == ("short-call ratio 0.93",)


def test_a_block_needs_the_population_to_agree_else_it_is_a_watch() -> None:
    policy = DecisionPolicy(block_threshold=0.9, watch_threshold=0.6, block_anomaly=0.5)
    lone = Score("+8613800138000", "fraud", 0.95, "v1", T0, anomaly=0.2)
    agreed = Score("+8613800138000", "fraud", 0.95, "v1", T0, anomaly=0.7)
    assert decide(FlagState(), lone, policy, allowed=False)[1].action is Action.WATCH
    assert decide(FlagState(), agreed, policy, allowed=False)[1].action is Action.BLOCK



def test_a_block_needs_enough_calls_in_the_long_window_else_it_is_a_watch() -> None:
    policy = DecisionPolicy(block_threshold=0.9, watch_threshold=0.6, block_min_calls=20)

    def calling(calls: float) -> Score:
        return Score("+8613800138000", "fraud", 0.95, "v1", T0,
                     features={"long_call_volume": calls})

    assert decide(FlagState(), calling(10), policy, allowed=False)[1].action is Action.WATCH
    assert decide(FlagState(), calling(20), policy, allowed=False)[1].action is Action.BLOCK
    # A score without the feature (an older caller of the API) is not held back.
    assert decide(FlagState(), score(0.95), policy, allowed=False)[1].action is Action.BLOCK


def test_a_block_needs_the_models_paths_to_agree_else_it_is_a_watch() -> None:
    alone = Score("+8613800138000", "fraud", 0.95, "v1", T0, block_agreed=False)
    assert decide(FlagState(), alone, POLICY, allowed=False)[1].action is Action.WATCH
    assert decide(FlagState(), score(0.95), POLICY, allowed=False)[1].action is Action.BLOCK

def test_renewal_publishes_upgrades_at_once_and_repeats_only_past_half_life() -> None:
    state, first = decide(FlagState(), score(0.7), POLICY, allowed=False)
    assert first.action is Action.WATCH
    state, same = decide(state, score(0.7, T0 + HOUR), POLICY, allowed=False)
    assert same is None and state.flag == first
    state, upgraded = decide(state, score(0.95, T0 + 2 * HOUR), POLICY, allowed=False)
    assert upgraded.action is Action.BLOCK
    state, renewed = decide(state, score(0.95, T0 + 15 * HOUR), POLICY, allowed=False)
    assert renewed is not None and renewed.expires_at_ms == T0 + 39 * HOUR
    _, new_category = decide(state, score(0.95, T0 + 16 * HOUR, "fraud"), POLICY, allowed=False)
    assert new_category.category == "fraud"


def test_expiry_emits_one_clear() -> None:
    state, flag = decide(FlagState(), score(0.95), POLICY, allowed=False)
    assert expire(state, T0 + 23 * HOUR) == (state, None)
    state, cleared = expire(state, T0 + 25 * HOUR)
    assert cleared.action is Action.CLEAR and cleared.source == "expiry"
    assert cleared.flagged_at_ms == flag.expires_at_ms and cleared.expires_at_ms is None
    assert expire(state, T0 + 26 * HOUR) == (state, None)


def test_appeal_clears_and_holds() -> None:
    state, block = decide(FlagState(), score(0.92), POLICY, allowed=False)
    with pytest.raises(ValueError, match="needs a reason"):
        lift(state, T0 + HOUR, hold_ms=HOLD, why=" ")
    state, cleared = lift(state, T0 + HOUR, hold_ms=HOLD, why="school notices")
    assert cleared.action is Action.CLEAR and cleared.source == "appeal"
    assert "school notices" in cleared.reasons[0]
    assert cleared.features == block.features  # the labelled example's snapshot
    assert POLICY.appeal_hold_ms == 30 * 24 * HOUR
    # The same behaviour, hour after hour, for the whole hold: never flagged again.
    for hours in range(2, 30 * 24, 7):
        assert decide(state, score(0.92, T0 + hours * HOUR), POLICY, allowed=False)[1] is None
    after = T0 + HOUR + HOLD
    assert decide(state, score(0.92, after), POLICY, allowed=False)[1].action is Action.BLOCK


def test_allow_listed_numbers_are_never_flagged_and_get_cleared() -> None:
    assert decide(FlagState(), score(0.999), POLICY, allowed=True) == (FlagState(), None)
    state, _ = decide(FlagState(), score(0.95), POLICY, allowed=False)
    state, cleared = decide(state, score(0.999, T0 + HOUR), POLICY, allowed=True)
    assert cleared.action is Action.CLEAR and cleared.source == "allowlist"


def test_bad_thresholds_fail_fast() -> None:
    with pytest.raises(ValueError, match="watch <= block"):
        DecisionPolicy(block_threshold=0.5, watch_threshold=0.8)


def test_flag_json_round_trip_and_stable_id() -> None:
    _, flag = decide(FlagState(), score(0.95), POLICY, allowed=False)
    decoded = decode_flag(encode_flag(flag))
    assert decoded == flag
    assert decoded.decision_id == flag.decision_id


def classed(p: float, at: int, **classes: float) -> Score:
    """A score whose category is the most probable of ``classes``."""
    best = max(classes, key=classes.__getitem__)
    return Score("+8613800138000", best, p, "v1", at, (f"reasons as {best}",),
                 class_probabilities=classes)


def as_category(score: Score, category: str) -> tuple[str, ...]:
    return (f"reasons as {category}",)


def test_category_holds_while_two_close_classes_swap() -> None:
    state, first = decide(FlagState(), classed(0.95, T0, finance_marketing=0.48,
                                               other_marketing=0.47), POLICY, allowed=False)
    assert first.category == "finance_marketing"
    published = []
    for hour in range(1, 30):
        swapped = {"finance_marketing": 0.47, "other_marketing": 0.48}
        if hour % 2 == 0:
            swapped = {"finance_marketing": 0.48, "other_marketing": 0.47}
        state, flag = decide(state, classed(0.95, T0 + hour * HOUR, **swapped), POLICY,
                             allowed=False, explain_as=as_category)
        if flag is not None:
            published.append((hour, flag.category, flag.reasons))
    # Renewed only once less than half the lifetime was left, never re-categorised.
    assert published == [(13, "finance_marketing", ("reasons as finance_marketing",)),
                         (26, "finance_marketing", ("reasons as finance_marketing",))]
    assert state.flag.category == "finance_marketing"


def test_a_clearly_more_probable_category_is_published_at_once() -> None:
    state, _ = decide(FlagState(), classed(0.95, T0, finance_marketing=0.5, fraud=0.45),
                      POLICY, allowed=False)
    state, kept = decide(state, classed(0.95, T0 + HOUR, finance_marketing=0.4, fraud=0.55),
                         POLICY, allowed=False)
    assert kept is None  # 0.55 is not 1.5 times 0.4
    state, moved = decide(state, classed(0.95, T0 + 2 * HOUR, finance_marketing=0.3, fraud=0.65),
                          POLICY, allowed=False, explain_as=as_category)
    assert moved.category == "fraud" and moved.reasons == ("reasons as fraud",)
    assert state.flag == moved


def test_without_class_probabilities_the_category_is_taken_as_it_comes() -> None:
    state, _ = decide(FlagState(), score(0.95), POLICY, allowed=False)
    _, moved = decide(state, score(0.95, T0 + HOUR, "other_marketing"), POLICY, allowed=False)
    assert moved.category == "other_marketing"


def test_a_block_holds_near_its_threshold_and_falls_to_watch_only_when_due() -> None:
    state, block = decide(FlagState(), score(0.92), POLICY, allowed=False)
    # Early in its life, a watch-level score publishes nothing (the block stands).
    state, early = decide(state, score(0.7, T0 + HOUR), POLICY, allowed=False)
    assert early is None and state.flag == block
    # Due for renewal: just under the block threshold renews the block...
    state, held = decide(state, score(0.87, T0 + 13 * HOUR), POLICY, allowed=False)
    assert held.action is Action.BLOCK and held.expires_at_ms == T0 + 37 * HOUR
    # ...clearly under it publishes the watch the evidence supports.
    state, fell = decide(state, score(0.7, T0 + 26 * HOUR), POLICY, allowed=False)
    assert fell.action is Action.WATCH
    _, back = decide(state, score(0.92, T0 + 27 * HOUR), POLICY, allowed=False)
    assert back.action is Action.BLOCK


def test_policy_refuses_hysteresis_that_means_nothing() -> None:
    with pytest.raises(ValueError, match="category_switch_ratio"):
        DecisionPolicy(block_threshold=0.9, watch_threshold=0.6, category_switch_ratio=0.9)
    with pytest.raises(ValueError, match="block_hold_margin"):
        DecisionPolicy(block_threshold=0.9, watch_threshold=0.6, block_hold_margin=0.95)


def test_a_material_change_while_held_goes_to_review_as_a_watch() -> None:
    state, _ = decide(FlagState(), score(0.92), POLICY, allowed=False)
    state, _ = lift(state, T0 + HOUR, hold_ms=HOLD, why="school notices")
    assert (state.held_category, state.held_score) == ("finance_marketing", 0.92)
    assert POLICY.material_score() == pytest.approx(0.95)  # halfway from block 0.9 to 1
    assert POLICY.material_score(0.92) == pytest.approx(0.96)  # from the lifted flag's score
    assert material_change(state, score(0.959, T0 + 2 * HOUR), POLICY) is None
    state, review = decide(state, score(0.97, T0 + 2 * HOUR), POLICY, allowed=False)
    assert review.action is Action.WATCH and review.source == "model"
    assert "goes to review" in review.reasons[0] and "0.970" in review.reasons[0]
    assert review.reasons[1:] == ("short-call ratio 0.93",)
    # Still held: a higher score again is renewed as a watch, never a block.
    later, again = decide(state, score(0.999, T0 + 20 * HOUR), POLICY, allowed=False)
    assert again.action is Action.WATCH and later.suppressed_until_ms == state.suppressed_until_ms


def test_a_new_category_while_held_goes_to_review() -> None:
    state, _ = decide(FlagState(), score(0.92), POLICY, allowed=False)
    state, _ = lift(state, T0 + HOUR, hold_ms=HOLD, why="school notices")
    close = classed(0.92, T0 + 2 * HOUR, fraud=0.46, finance_marketing=0.44)
    assert decide(state, close, POLICY, allowed=False)[1] is None  # not clearly another class
    fraud = classed(0.7, T0 + 3 * HOUR, fraud=0.6, finance_marketing=0.2)
    _, review = decide(state, fraud, POLICY, allowed=False)
    assert review.action is Action.WATCH and review.category == "fraud"
    assert "new category fraud (held as finance_marketing)" in review.reasons[0]
    # Below every tier a new category is not a flag at all.
    quiet = classed(0.3, T0 + 4 * HOUR, fraud=0.25, finance_marketing=0.05)
    assert decide(state, quiet, POLICY, allowed=False)[1] is None


def test_the_hold_follows_event_time_not_the_order_of_arrival() -> None:
    state, _ = decide(FlagState(), score(0.92), POLICY, allowed=False)
    held, _ = lift(state, T0 + HOUR, hold_ms=2 * HOUR, why="school notices")
    assert held.suppressed_until_ms == T0 + 3 * HOUR
    assert decide(held, score(0.92, T0 + 3 * HOUR - 1), POLICY, allowed=False)[1] is None
    assert decide(held, score(0.92, T0 + 3 * HOUR), POLICY, allowed=False)[1] is not None


def test_confirm_blocks_a_watch_and_ends_the_hold() -> None:
    watched, watch = decide(FlagState(), score(0.7), POLICY, allowed=False)
    with pytest.raises(ValueError, match="needs a reason"):
        confirm(watched, T0 + HOUR, ttl_ms=24 * HOUR, why="")
    state, block = confirm(watched, T0 + HOUR, ttl_ms=24 * HOUR, why="complaints confirm it")
    assert (block.action, block.source, block.category) == (Action.BLOCK, "operator",
                                                            watch.category)
    assert block.reasons[0] == "confirmed by an operator: complaints confirm it"
    assert block.features == watch.features and block.expires_at_ms == T0 + 25 * HOUR
    assert state.suppressed_until_ms == 0 and state.flag == block
    # A confirmed block is renewed as a block while the caller still reaches a tier.
    _, renewed = decide(state, score(0.65, T0 + 14 * HOUR), POLICY, allowed=False)
    assert renewed.action is Action.BLOCK and renewed.source == "model"
    # Nothing under review: a block, a cleared or an unknown number stay as they are.
    blocked, _ = decide(FlagState(), score(0.95), POLICY, allowed=False)
    assert confirm(blocked, T0 + HOUR, ttl_ms=HOUR, why="x") == (blocked, None)
    assert confirm(FlagState(), T0, ttl_ms=HOUR, why="x") == (FlagState(), None)
    assert confirm(watched, T0 + 25 * HOUR, ttl_ms=HOUR, why="x") == (watched, None)


def test_a_held_review_confirmed_blocks_though_the_appeal_held() -> None:
    state, _ = decide(FlagState(), score(0.92), POLICY, allowed=False)
    state, _ = lift(state, T0 + HOUR, hold_ms=HOLD, why="school notices")
    state, review = decide(state, score(0.97, T0 + 2 * HOUR), POLICY, allowed=False)
    state, block = confirm(state, T0 + 3 * HOUR, ttl_ms=24 * HOUR, why="fraud after all")
    assert block.action is Action.BLOCK and block.category == review.category


def test_dismiss_clears_and_holds_like_an_appeal() -> None:
    watched, watch = decide(FlagState(), score(0.7), POLICY, allowed=False)
    state, cleared = dismiss(watched, T0 + HOUR, hold_ms=HOLD, why="a bank's reminders")
    assert (cleared.action, cleared.source) == (Action.CLEAR, "operator")
    assert cleared.reasons == ("dismissed by an operator: a bank's reminders",)
    assert cleared.features == watch.features
    assert state.suppressed_until_ms == T0 + HOUR + HOLD
    assert decide(state, score(0.92, T0 + 2 * HOUR), POLICY, allowed=False)[1] is None
    assert dismiss(state, T0 + 2 * HOUR, hold_ms=HOLD, why="again") == (state, None)
    assert cleared.decision_id != lift(watched, T0 + HOUR, hold_ms=HOLD, why="x")[1].decision_id


def test_bad_appeal_settings_fail_fast() -> None:
    with pytest.raises(ValueError, match="appeal_review_margin"):
        DecisionPolicy(block_threshold=0.9, watch_threshold=0.6, appeal_review_margin=1.5)
    with pytest.raises(ValueError, match="appeal_hold_ms"):
        DecisionPolicy(block_threshold=0.9, watch_threshold=0.6, appeal_hold_ms=-1)


def test_going_on_as_before_is_no_change_however_high_the_score() -> None:
    state, _ = decide(FlagState(), score(0.98), POLICY, allowed=False)
    state, _ = lift(state, T0 + HOUR, hold_ms=HOLD, why="school notices")
    for hours, probability in ((2, 0.98), (5, 0.94), (9, 0.985)):
        assert decide(state, score(probability, T0 + hours * HOUR), POLICY,
                      allowed=False)[1] is None
    assert decide(state, score(0.995, T0 + 10 * HOUR), POLICY, allowed=False)[1] is not None
