"""The second signal: population tails, the review rule, and how decisions use it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from contracts.flag import Action
from models.decisions import DecisionPolicy, FlagState, Score, decide
from models.population import (
    NEVER,
    PopulationReference,
    ReviewRule,
    choose_review_rule,
    population_of,
)

NAMES = ["long_reciprocity", "long_distinct_callee_ratio", "long_call_volume", "long_gap_cv"]


def population(rows: int = 4000) -> np.ndarray:
    rng = np.random.default_rng(3)
    return np.column_stack(
        [
            rng.uniform(0.1, 0.6, rows),  # callees who call back
            rng.uniform(0.4, 0.9, rows),  # share of new callees
            rng.integers(10, 40, rows),  # calls in 24 h
            rng.uniform(0, 2, rows),  # not a suspicious feature: ignored
        ]
    )


def test_anomaly_grows_with_the_suspicious_direction_only() -> None:
    reference = PopulationReference.fit(population(), NAMES)
    assert reference.features == tuple(NAMES[:3])
    typical = [0.35, 0.65, 25, 1.0]
    cold_caller = [0.0, 1.0, 200, 1.0]  # nobody calls back, every callee new, many calls
    friendly = [0.9, 0.1, 5, 1.0]  # extreme too, but in the harmless direction
    anomaly = reference.anomaly(np.array([typical, cold_caller, friendly]), NAMES)
    assert anomaly[1] > 3 > 0.5 > anomaly[0]
    assert anomaly[2] < 0.1
    reasons = reference.reasons(np.array([cold_caller, typical]), NAMES)
    assert any("few callees call back" in reason for reason in reasons[0])
    assert reasons[1] == ()


def test_the_reference_survives_the_registry_round_trip() -> None:
    reference = PopulationReference.fit(population(), NAMES)
    rule = ReviewRule(0.9, 0.5)

    class Metadata:
        extra = {"population": reference.to_json() | {"review": rule.to_json()}}

    loaded, loaded_rule = population_of(Metadata())
    rows = population(50)
    assert loaded is not None and loaded_rule == rule
    np.testing.assert_allclose(loaded.anomaly(rows, NAMES), reference.anomaly(rows, NAMES))
    assert population_of(object()) == (None, NEVER)


def test_review_rule_adds_callers_only_within_the_false_flag_limits() -> None:
    # Two nuisance callers the classifier is unsure of (0.92), one of them far in
    # the tails; an ordinary caller at 0.92 too but typical; a legit caller high
    # in the tails but scored low.
    callers = np.array(["n1", "n2", "ordinary", "legit"])
    scores = np.array([0.92, 0.92, 0.92, 0.3])
    anomaly = np.array([1.2, 0.1, 0.2, 3.0])
    rule = choose_review_rule(
        callers,
        scores,
        anomaly,
        np.array([True, True, False, False]),
        np.array([False, False, False, True]),
        watch=0.99,
        target_precision=0.9,
        max_legit_flag_rate=0.001,
        max_ordinary_flag_rate=0.0001,
    )
    assert rule.fires(scores, anomaly).tolist() == [True, False, False, False]
    nothing_to_add = choose_review_rule(
        callers, np.full(4, 0.1), anomaly, np.array([True, True, False, False]),
        np.array([False, False, False, True]), watch=0.99, target_precision=0.9,
        max_legit_flag_rate=0.001, max_ordinary_flag_rate=0.0001,
    )
    assert nothing_to_add == NEVER


def test_the_review_rule_gives_watch_never_block_and_leads_with_its_reasons() -> None:
    policy = DecisionPolicy(
        block_threshold=0.99, watch_threshold=0.97, review_score=0.9, review_anomaly=1.0
    )
    base = Score(
        "+8613800138000", "real_estate", 0.93, "v1", 1_714_528_800_000,
        ("42 calls in 24 h",), anomaly=1.4,
        anomaly_reasons=("unlike 99.9% of callers: few callees call back",),
    )
    _, flag = decide(FlagState(), base, policy, allowed=False)
    assert flag is not None and flag.action is Action.WATCH
    assert flag.reasons == base.anomaly_reasons + ("42 calls in 24 h",)
    _, typical = decide(FlagState(), replace(base, anomaly=0.5), policy, allowed=False)
    assert typical is None
    _, unsure = decide(FlagState(), replace(base, probability=0.5), policy, allowed=False)
    assert unsure is None
    _, confident = decide(FlagState(), replace(base, probability=0.995), policy, allowed=False)
    assert confident is not None and confident.action is Action.BLOCK
    assert confident.reasons == ("42 calls in 24 h",)
