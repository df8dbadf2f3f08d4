"""The decision stage builds scores only for rows that can act, and decides as if it built all."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from features.vector import FEATURE_NAMES, WINDOW_FEATURE_NAMES
from models.allowlist_patterns import AllowMatcher, parse_pattern
from models.decisions import DecisionPolicy, decide
from models.registry import LoadedModel
from models.scoring import BatchScorer
from streams.stages.caller_features import Emission
from streams.stages.decision_stage import decide_emission, decode_state, encode_state
from streams.stages.model_service import DecisionKit
from tests.unit.model_metadata import model_metadata

CLASSES = ("fraud", "normal", "one_ring")


@pytest.fixture(scope="module")
def kit() -> DecisionKit:
    rng = np.random.default_rng(11)
    rows = rng.uniform(0, 1, size=(600, len(FEATURE_NAMES))) * 50
    labels = np.array(CLASSES)[(rows[:, 0] > 25).astype(int) + (rows[:, 1] > 40).astype(int)]
    model = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(rows, labels)
    metadata = model_metadata(CLASSES, thresholds={"block": 0.8, "watch": 0.6})
    policy = DecisionPolicy(block_threshold=0.8, watch_threshold=0.6, block_hold_margin=0.3,
                            category_switch_ratio=1.0)
    return DecisionKit(BatchScorer(LoadedModel(model, metadata)), policy)


def every_row(kit: DecisionKit, emission: Emission, matcher: AllowMatcher,
              table: dict[str, bytes]) -> list:
    """The decisions with a Score built for every row, one after the other."""
    scores = kit.scorer.score(emission.numbers, emission.window_end_ms, emission.matrix())
    flags = []
    for score, allowed in zip(scores, matcher.allows_many(emission.numbers), strict=True):
        state, flag = decide(decode_state(table.get(score.number)), score, kit.policy,
                             allowed=allowed, explain_as=kit.scorer.reasons_for)
        if flag is not None:
            table[score.number] = encode_state(state)
            flags.append(flag)
    return flags


@pytest.mark.parametrize("seed", range(6))
def test_the_same_decisions_as_scoring_every_row(kit: DecisionKit, seed: int) -> None:
    rng = np.random.default_rng(seed)
    numbers = [f"+8613800{n:06d}" for n in range(40)]
    matcher = AllowMatcher([parse_pattern(numbers[0]), parse_pattern(numbers[1])])
    table_a: dict[str, bytes] = {}
    table_b: dict[str, bytes] = {}
    published = 0
    for message in range(8):
        count = int(rng.integers(1, 60))
        emission = Emission(
            # Few numbers, so one message often holds several rows of the same number.
            numbers=[numbers[i] for i in rng.integers(0, len(numbers), count)],
            window_end_ms=[1_000_000 * (message + 1) + 1_000 * i for i in range(count)],
            rows=list(rng.uniform(0, 1, size=(count, len(WINDOW_FEATURE_NAMES))) * 50),
        )
        flags, stats = decide_emission(emission, kit, matcher, table_a)
        assert flags == every_row(kit, emission, matcher, table_b)
        assert table_a == table_b and stats.scored == count
        published += len(flags)
    assert published > 0
