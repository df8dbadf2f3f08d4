"""Simulated data sets to train on: the built-in scenarios, and ``small`` for tests and notebooks.

``tiny`` is too small to hold out campaigns of every category (12 campaigns,
6 hours, a dozen legitimate callers); ``small`` is ``tiny`` over a day with
40 campaigns, 5,000 subscribers and 160 legitimate bulk callers, and trains
in a few seconds.
"""

from __future__ import annotations

from simulator.scenario import Scenario, ScenarioError, builtin_scenario, with_overrides

__all__ = ["PRESETS", "training_scenario"]

PRESETS = ("tiny", "small", "default")
# With 40 campaigns a category has a few, and the split keeps whole campaigns
# apart: some draws leave one with no campaign to fit. This seed's draw gives
# every category campaigns in each part.
SMALL_SEED = 8


def training_scenario(name: str, *, seed: int | None = None) -> Scenario:
    """The scenario called ``name`` (one of :data:`PRESETS`), with ``seed`` if given."""
    if name not in PRESETS:
        raise ScenarioError(f"no training data set named {name!r}; try {', '.join(PRESETS)}")
    if name != "small":
        return with_overrides(builtin_scenario(name), seed=seed)
    return with_overrides(
        builtin_scenario("tiny"),
        name="small",
        seed=SMALL_SEED if seed is None else seed,
        duration="1d",
        subscribers={"count": 5000},
        campaigns={"count": 40},
        legit={
            "bank_service": 3,
            "utility_service": 2,
            "courier": 60,
            "ride_hailing": 80,
            "school_hospital": 5,
            "government_hotline": 2,
            "enterprise_switchboard": 10,
        },
    )
