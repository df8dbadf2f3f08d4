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
# # Explore the features of scored callers
#
# Which callers the worker scores (at least 5 calls in its 10-minute window),
# how their features differ by category, and the reasons an operator would see.
#
# Data: the Parquet tables of `callguard simulate --out DIR`, named by the
# environment variable `CALLGUARD_NOTEBOOK_DATA`; without it, the `small`
# simulated set is generated into `var/notebooks/small`.

# %%
import os
from pathlib import Path

import polars as pl

from features.vector import FEATURE_NAMES
from models.dataset import NORMAL, build_training_data
from models.reasons import Explainer, reference_from_table
from models.training_presets import training_scenario
from simulator.parquet import write_parquet

data_dir = Path(os.environ.get("CALLGUARD_NOTEBOOK_DATA", "var/notebooks/small"))
if not (data_dir / "cdrs.parquet").is_file():
    write_parquet(training_scenario("small"), data_dir, progress=False)
data = build_training_data(data_dir)
table = data.table
print(f"{table.height} scored rows of {table['caller'].n_unique()} callers from {data_dir}")

# %% [markdown]
# ## Who gets scored
#
# Rows per label, callers per label, and campaigns. Legitimate bulk callers
# (couriers, banks' service lines, hotlines) are `normal` and marked.

# %%
summary = (
    table.group_by("label", "is_legit_bulk")
    .agg(
        rows=pl.len(),
        callers=pl.col("caller").n_unique(),
        campaigns=pl.col("campaign_id").n_unique(),
    )
    .sort("label", "is_legit_bulk")
)
summary

# %% [markdown]
# Campaigns none of whose numbers ever reach 5 calls in 10 minutes are never
# scored by the worker, so no model can flag them:

# %%
scored = set(table["campaign_id"].drop_nulls().unique())
data.campaigns.with_columns(scored=pl.col("campaign_id").is_in(list(scored))).group_by(
    "category"
).agg(campaigns=pl.len(), scored=pl.col("scored").sum()).sort("category")

# %% [markdown]
# ## Features by label: medians

# %%
short_features = [name for name in FEATURE_NAMES if name.startswith("short_")]
medians = table.group_by("label").agg(pl.col(short_features).median()).sort("label")
medians.transpose(include_header=True, header_name="feature", column_names="label")

# %% [markdown]
# ## The normal range, and reasons
#
# The 1st, 50th and 99th percentiles of the normal rows are what reasons are
# measured against. Here are the reasons for a few nuisance rows.

# %%
reference = reference_from_table(table)
pl.DataFrame(
    [{"feature": name, **vars(bounds)} for name, bounds in reference.items()]
).head(16)

# %%
explainer = Explainer(FEATURE_NAMES, reference)
sample = table.filter(pl.col("label") != NORMAL).group_by("label").head(2).sort("label")
for row, reasons in zip(
    sample.select("caller", "label").iter_rows(),
    explainer.explain(sample.select(FEATURE_NAMES).to_numpy()),
    strict=True,
):
    print(row[1], row[0])
    for reason in reasons:
        print("   -", reason)

# %% [markdown]
# ## Operators' labels
#
# Every upheld appeal, confirmed watch and dismissed flag is kept in the
# store's `operator_labels` table as a labelled example: the number, the label
# (the confirmed category, or `normal`), who, why, when (event time), the
# model version and the features of the flag judged. Point
# `CALLGUARD_NOTEBOOK_STORE` at the store (`clickhouse://user@host:9000/db`,
# or a chDB path no worker holds) to pull them; without it, the
# `operator_labels.parquet` of the data directory is read, if there is one.
# Written there, `callguard train --data DIR` trains on them with the rest
# (`callguard review labels --out DIR` does the same from the command line).

# %%
from datetime import UTC, datetime, timedelta

from models.operator_labels import LABELS_FILE, label_training_rows, labels_frame
from sinks.clickhouse import open_store
from sinks.clickhouse.labels import fetch_labels

store_url = os.environ.get("CALLGUARD_NOTEBOOK_STORE")
if store_url:
    with open_store(store_url) as store:
        since = datetime.now(UTC) - timedelta(days=365)
        labels = labels_frame(fetch_labels(store, since=since))
    labels.write_parquet(data_dir / LABELS_FILE)  # where `callguard train --data` reads them
elif (data_dir / LABELS_FILE).is_file():
    labels = pl.read_parquet(data_dir / LABELS_FILE)
else:
    labels = labels_frame([])
print(f"{labels.height} operator labels, {label_training_rows(labels).height} with every feature")
labels.group_by("action", "label").agg(
    numbers=pl.col("number").n_unique(), examples=pl.len()
).sort("action", "label")
