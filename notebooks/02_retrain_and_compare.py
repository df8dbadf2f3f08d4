# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Retrain, compare with the serving model, register the candidate
#
# 1. Build the labelled table and train a candidate (hold-out: later time,
#    campaigns unseen in training).
# 2. Measure the serving model on the *same* hold-out and set the two side by side.
# 3. Register the candidate. Promotion is a separate, audited decision:
#    set `PROMOTE = True` below only when the comparison says so.
#
# Environment: `CALLGUARD_NOTEBOOK_DATA` (Parquet tables; default: the
# `small` simulated set in `var/notebooks/small`) and `CALLGUARD_MODEL_DIR`
# (the registry; default `var/callguard/models`).

# %%
import os
from pathlib import Path

from models.dataset import build_training_data
from models.registry import ModelRegistry
from models.called_evidence import called_of
from models.training import compare, evaluate, register_candidate, train
from models.training_presets import training_scenario
from simulator.parquet import write_parquet

PROMOTE = False
ACTOR = os.environ.get("USER", "analyst")

data_dir = Path(os.environ.get("CALLGUARD_NOTEBOOK_DATA", "var/notebooks/small"))
if not (data_dir / "cdrs.parquet").is_file():
    write_parquet(training_scenario("small"), data_dir, progress=False)
registry = ModelRegistry(os.environ.get("CALLGUARD_MODEL_DIR", "var/callguard/models"))
data = build_training_data(data_dir)

# %% [markdown]
# ## Train the candidate

# %%
candidate = train(data, seed=0)
print(candidate.split.describe())
print(candidate.report)

# %% [markdown]
# ## The serving model on the same hold-out
#
# Each model is judged with its own thresholds. With no serving model yet,
# the candidate stands alone.

# %%
serving = registry.current()
side_by_side = {"candidate": candidate.metrics}
if serving is not None:
    loaded = registry.load(serving.version)
    print("serving model:", serving.version)
    side_by_side["serving"] = evaluate(
        loaded.model, loaded.metadata.classes, loaded.metadata.thresholds, data, candidate.split,
        called=called_of(loaded.metadata),
    )
comparison = compare(side_by_side)
print(comparison.head(12))

# %% [markdown]
# ## Register the candidate
#
# Registering never changes what serves. Promote with `PROMOTE = True`, or later
# with `callguard models promote VERSION --actor ... --why ...`.

# %%
first_model = serving is None
metadata = register_candidate(
    candidate,
    registry,
    promote=PROMOTE or first_model,
    actor=ACTOR,
    why="first model" if first_model else "promoted from notebook 02 after comparison",
    notes="Trained from notebooks/02_retrain_and_compare.py.",
)
current = registry.current()
print("registered", metadata.version, "| serving:", current.version if current else None)
