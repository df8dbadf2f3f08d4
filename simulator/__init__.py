"""Synthetic CDR traffic: background subscribers, nuisance campaigns, legitimate bulk callers.

The simulator produces call detail records in the ``cdr.raw`` contract, a
complaints stream and the ground truth behind both, deterministically for a
scenario's seed. Entry points: :func:`simulator.run.simulate` (chunks in
memory), :func:`simulator.parquet.write_parquet` and
:func:`simulator.kafka.produce_to_kafka`; ``callguard simulate`` wraps them.
"""

from simulator.categories import Category, LegitKind
from simulator.scenario import Scenario, ScenarioError, builtin_scenario, load_scenario

__all__ = [
    "Category",
    "LegitKind",
    "Scenario",
    "ScenarioError",
    "builtin_scenario",
    "load_scenario",
]
