"""The labelled feature table training learns from, built with polars.

One row per caller and short-bucket end at which the caller called, with the
features of :func:`features.offline.compute_features` and a label. Only rows
the streaming worker would score are kept: those whose short window holds at
least ``min_short_calls`` calls (a burst, the worker's ``emit_min_calls``) or
whose long window holds at least ``min_long_calls`` (a steady caller, the
worker's ``emit_min_long_calls``), so the model is trained and judged on what
it will see in service: bursts and steady callers alike, and the ordinary
subscribers and legitimate callers busy enough to be scored.

Labels: a ground-truth nuisance number's rows carry its category while the
row's window end lies in the number's active window (plus
``label_slack_ms``, because a window ending just after the number stops
still describes its calls); every other row is ``normal``. Rows of
legitimate high-volume callers (banks, couriers, hotlines...) are ``normal``
and marked ``is_legit_bulk``, for the false-flag measure.

Where the data comes from is a :class:`LabelledCalls` value: Parquet files
written by ``callguard simulate --out`` today (:func:`read_parquet_dir`); a
ClickHouse reader only has to build the same four frames.

Operators' decisions: an ``operator_labels.parquet`` in the same directory
(``callguard review labels --out DIR``) adds one row per appeal,
confirmation and dismissal, with the features the flag carried and the
operator's label (:mod:`models.operator_labels`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from features.config import FeatureConfig
from features.emission import EmissionPolicy
from features.offline import compute_features
from features.vector import FEATURE_NAMES
from models.complaint_labels import complaint_truth
from models.operator_labels import LABELS_FILE, label_training_rows

__all__ = [
    "NORMAL",
    "DatasetConfig",
    "LabelledCalls",
    "TrainingData",
    "build_training_data",
    "build_training_table",
    "campaign_first_calls",
    "read_parquet_dir",
    "stable_unit_interval",
    "table_sha256",
]

NORMAL = "normal"
_TIME_MS = pl.col("active_from", "active_to").dt.epoch("ms")


@dataclass(frozen=True)
class LabelledCalls:
    """CDRs and complaints, with what is known about who made them.

    ``cdrs``: ``caller, callee, start_ms, duration_s, disposition, ring_s``.
    ``complaints``: ``reported, time_ms``. ``ground_truth``: nuisance numbers,
    ``number, category, campaign_id, active_from, active_to`` (datetimes or
    epoch ms). ``legit_callers``: ``number`` of legitimate bulk callers.
    """

    cdrs: pl.DataFrame
    complaints: pl.DataFrame
    ground_truth: pl.DataFrame
    legit_callers: pl.DataFrame
    # Operators' labelled examples (models.operator_labels.labels_frame), if any.
    operator_labels: pl.DataFrame | None = None


_EMISSION = EmissionPolicy()  # the worker's defaults (CALLGUARD_EMIT_MIN_*)
_NO_TRUTH = pl.DataFrame(schema={"number": pl.String, "category": pl.String,
                                 "campaign_id": pl.Int32, "active_from": pl.Int64,
                                 "active_to": pl.Int64})
_NO_LEGIT = pl.DataFrame(schema={"number": pl.String})


@dataclass(frozen=True)
class DatasetConfig:
    """How the table is built.

    ``normal_fraction`` < 1 keeps that share of ``normal`` callers (whole
    callers, chosen by a hash of the number, so the choice is stable) and
    gives their rows the weight ``1 / normal_fraction``; legitimate bulk
    callers and nuisance numbers are always kept. Use it only when the
    normal rows are too many to train on: the weights keep precision and
    calibration honest, but fewer distinct normal callers are seen.
    """

    features: FeatureConfig = field(default_factory=FeatureConfig)
    min_short_calls: int = _EMISSION.min_calls
    min_long_calls: int = _EMISSION.min_long_calls
    label_slack_ms: int = 600_000
    normal_fraction: float = 1.0
    # A number this many different people reported is labelled by their reports where
    # the ground truth does not name it (models.complaint_labels); 0: complaints are
    # evidence (a feature) only. In the simulator's default day, numbers reported by
    # 3 or more people were all nuisance numbers.
    complaint_label_reporters: int = 3

    def __post_init__(self) -> None:
        if not 0.0 < self.normal_fraction <= 1.0:
            raise ValueError(f"normal_fraction must be in (0, 1], got {self.normal_fraction}")
        if self.complaint_label_reporters < 0:
            raise ValueError(
                "complaint_label_reporters must be 0 (complaints label nothing) or more, "
                f"got {self.complaint_label_reporters}"
            )
        try:  # the emission rule checks its own minimums: one definition of what is valid
            EmissionPolicy(self.min_short_calls, self.min_long_calls)
        except ValueError as error:  # said in this config's field names
            raise ValueError("min_short_calls and min_long_calls must be at least 1") from error

    @property
    def emission(self) -> EmissionPolicy:
        """The worker's emission rule with these minimums."""
        return EmissionPolicy(self.min_short_calls, self.min_long_calls)


def read_parquet_dir(data_dir: str | Path) -> LabelledCalls:
    """Read the Parquet files of ``callguard simulate --out DIR`` (or a carrier's export).

    ``cdrs.parquet`` and ``complaints.parquet`` are needed. ``ground_truth.parquet``
    (simulated data) and ``legit_callers.parquet`` (the allow-list's numbers)
    may be absent: a carrier's own traffic has no ground truth, and its labels
    then come from complaints (:mod:`models.complaint_labels`) and operators'
    decisions (``operator_labels.parquet``).
    """
    root = Path(data_dir)
    needed = ("cdrs", "complaints")
    missing = [name for name in needed if not (root / f"{name}.parquet").is_file()]
    if missing:
        raise FileNotFoundError(
            f"{root} lacks {', '.join(f'{name}.parquet' for name in missing)}; "
            "write a run there with `callguard simulate --out DIR`"
        )
    frames = {name: pl.read_parquet(root / f"{name}.parquet") for name in needed}
    for name, empty in (("ground_truth", _NO_TRUTH), ("legit_callers", _NO_LEGIT)):
        path = root / f"{name}.parquet"
        frames[name] = pl.read_parquet(path) if path.is_file() else empty
    labels = root / LABELS_FILE
    operator_labels = pl.read_parquet(labels) if labels.is_file() else None
    return LabelledCalls(**frames, operator_labels=operator_labels)


def build_training_table(
    data: LabelledCalls | str | Path, config: DatasetConfig | None = None
) -> pl.DataFrame:
    """The labelled table: ``caller, end_ms``, :data:`FEATURE_NAMES`, and label columns.

    Label columns: ``label`` (a category or ``normal``), ``campaign_id``
    (null for normal rows), ``is_legit_bulk``, ``first_call_ms`` (the
    caller's first call in the data) and ``weight``. Sorted by ``end_ms,
    caller``. Operators' labelled examples, when ``data`` has them, are rows
    of their own (:func:`models.operator_labels.label_training_rows`).
    """
    config = config or DatasetConfig()
    calls = data if isinstance(data, LabelledCalls) else read_parquet_dir(data)
    features = compute_features(
        calls.cdrs, config.features, at="bucket ends", complaints=calls.complaints
    )
    features = features.filter(
        pl.Series(
            config.emission.selects(
                features["short_call_volume"].to_numpy(), features["long_call_volume"].to_numpy()
            )
        )
    )
    first_calls = calls.cdrs.group_by("caller").agg(pl.col("start_ms").min().alias("first_call_ms"))
    truth = _truth(calls, config).rename({"number": "caller"})
    legit = calls.legit_callers.select(pl.col("number").alias("caller")).unique()
    in_window = (pl.col("end_ms") > pl.col("active_from")) & (
        pl.col("end_ms") <= pl.col("active_to") + config.label_slack_ms
    )
    table = (
        features.join(first_calls, on="caller", how="left")
        .join(truth, on="caller", how="left")
        .join(legit.with_columns(is_legit_bulk=pl.lit(True)), on="caller", how="left")
        .with_columns(
            label=pl.when(in_window).then(pl.col("category")).otherwise(pl.lit(NORMAL)),
            campaign_id=pl.when(in_window).then(pl.col("campaign_id")),
            is_legit_bulk=pl.col("is_legit_bulk").fill_null(False),
        )
    )
    table = _sample_normal(table, config.normal_fraction)
    columns = (
        "caller",
        "end_ms",
        *FEATURE_NAMES,
        "label",
        "campaign_id",
        "is_legit_bulk",
        "first_call_ms",
        "weight",
    )
    if calls.operator_labels is not None:
        table = table.select(columns)  # the labelled rows take its column types
        labelled = label_training_rows(calls.operator_labels).select(columns)
        table = pl.concat([table, labelled.cast(table.schema)])
    return table.select(columns).sort("end_ms", "caller")


@dataclass(frozen=True)
class TrainingData:
    """The labelled table and, per campaign, when it started calling.

    ``campaigns`` lists every campaign of the ground truth, including those
    whose numbers never reach a scored row, so the time-to-flag measure
    counts them as never flagged instead of forgetting them.
    """

    table: pl.DataFrame
    campaigns: pl.DataFrame


def build_training_data(
    data: LabelledCalls | str | Path, config: DatasetConfig | None = None
) -> TrainingData:
    """:func:`build_training_table` and :func:`campaign_first_calls` from one read of the data."""
    calls = data if isinstance(data, LabelledCalls) else read_parquet_dir(data)
    return TrainingData(build_training_table(calls, config), campaign_first_calls(calls, config))


def campaign_first_calls(calls: LabelledCalls, config: DatasetConfig | None = None) -> pl.DataFrame:
    """``campaign_id, category, first_call_ms, numbers``: each campaign's first call in the CDRs.

    Campaigns none of whose numbers called have a null ``first_call_ms``.
    Numbers labelled by complaints are campaigns of their own.
    """
    firsts = calls.cdrs.group_by("caller").agg(pl.col("start_ms").min().alias("first_call_ms"))
    return (
        _truth(calls, config or DatasetConfig()).select(
            pl.col("number").alias("caller"),
            pl.col("campaign_id"),
            pl.col("category"),
        )
        .join(firsts, on="caller", how="left")
        .group_by("campaign_id")
        .agg(
            pl.col("category").first(),
            pl.col("first_call_ms").min(),
            pl.col("caller").n_unique().alias("numbers"),
        )
        .sort("campaign_id")
    )


def _truth(calls: LabelledCalls, config: DatasetConfig) -> pl.DataFrame:
    """The ground truth, and the numbers complaints label where it is silent.

    ``number, category, campaign_id, active_from, active_to`` (epoch ms).
    """
    truth = calls.ground_truth.select(
        pl.col("number").cast(pl.String),
        pl.col("category").cast(pl.String),
        pl.col("campaign_id").cast(pl.Int32),
        *[column.cast(pl.Int64) for column in _epoch_ms(calls.ground_truth)],
    )
    judged_normal = (
        calls.operator_labels.filter(pl.col("label") == NORMAL)["number"].to_list()
        if calls.operator_labels is not None else []
    )
    weak = complaint_truth(
        calls.complaints,
        min_reporters=config.complaint_label_reporters,
        exclude={*truth["number"].to_list(), *calls.legit_callers["number"].to_list(),
                 *judged_normal},
    )
    return pl.concat([truth, weak])


def _epoch_ms(frame: pl.DataFrame) -> list[pl.Expr]:
    if frame.schema["active_from"].is_temporal():
        return [_TIME_MS.cast(pl.Int64)]
    return [pl.col("active_from", "active_to").cast(pl.Int64)]


def _sample_normal(table: pl.DataFrame, fraction: float) -> pl.DataFrame:
    if fraction >= 1.0:
        return table.with_columns(weight=pl.lit(1.0))
    ordinary = (pl.col("label") == NORMAL) & ~pl.col("is_legit_bulk")
    # A hash of the number, not a random draw: the same callers are kept every run.
    bucket = pl.col("caller").map_batches(stable_unit_interval, return_dtype=pl.Float64)
    return table.filter(~ordinary | (bucket < fraction)).with_columns(
        weight=pl.when(ordinary).then(1.0 / fraction).otherwise(1.0)
    )


def stable_unit_interval(numbers: pl.Series) -> pl.Series:
    """A number's place in [0, 1) from a hash of it, the same on every machine and run.

    >>> stable_unit_interval(pl.Series(["+8613800138000"])).round(3).to_list()
    [0.056]
    """
    distinct = numbers.unique().drop_nulls().to_list()
    places = {
        number: int.from_bytes(hashlib.blake2b(number.encode(), digest_size=8).digest(), "big")
        / 2**64
        for number in distinct
    }
    return numbers.replace_strict(places, default=0.0, return_dtype=pl.Float64)


def table_sha256(table: pl.DataFrame) -> str:
    """A sha256 of the table's content: column names, types and values, rows in sorted order.

    Independent of the row order it was built in and of file formats, so the
    same data always gives the same digest.

    >>> frame = pl.DataFrame({"caller": ["b", "a"], "end_ms": [2, 1]})
    >>> table_sha256(frame) == table_sha256(frame.reverse())
    True
    """
    ordered = table.sort(table.columns)
    digest = hashlib.sha256()
    for name in ordered.columns:
        column = ordered[name]
        digest.update(f"{name}:{column.dtype}:{column.null_count()}\n".encode())
        if column.dtype.is_numeric() or column.dtype == pl.Boolean:
            values = column.to_numpy(allow_copy=True)
            digest.update(np.ascontiguousarray(values.astype("<f8")).tobytes())
        else:
            digest.update("\x1f".join("\x00" if v is None else str(v) for v in column).encode())
    return digest.hexdigest()
