"""Features offline, with polars, from CDR tables (Parquet, notebooks, training).

:func:`compute_features` runs the streaming path's arithmetic on a whole
table: calls are aggregated per caller and *short* bucket by
:func:`~features.aggregate.aggregate_calls`, and each window is the
:func:`~features.aggregate.combine` of the short buckets it covers (a long
bucket is a run of whole short buckets, and combining is associative, so
this is the long bucket's aggregate). The features are the same functions
of :mod:`features.vector`; sketch-based features therefore carry the same
values, not exact counts, so training sees what serving sees.

A window "at" ``end_ms`` holds the calls started before ``end_ms``: the
short window is ``[end_ms - short_window_s, end_ms)``; the long window
starts where the long window whose last bucket holds ``end_ms - 1``
starts, as in :meth:`features.reference.state.CallerState.features`.

Differences from the streaming path, by design: no call is late here (the
stream drops calls beyond the grace), and reciprocity and the inbound ratio
are exact (did the sampled callee call the caller between the start of the
previous inbound generation and ``end_ms``? how many numbers did?) where
the stream uses a Bloom filter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import polars as pl
from numpy.typing import NDArray

from features.aggregate import COMPLAINTS, Aggregates, aggregate_calls, combine
from features.batch import CallBatch, key_hash32
from features.caller_number import caller_number_features
from features.config import FeatureConfig
from features.runs import run_starts
from features.sketch import EMPTY_HASH
from features.vector import FEATURE_NAMES, reciprocity, window_features

__all__ = ["compute_features"]

_BUCKET_BITS = 32  # composite row key: caller id << 32 | short bucket
_TIME_BITS = 42  # composite key: caller id << 42 | epoch ms (ms below 2**42: until 2109)


def compute_features(
    cdrs: pl.DataFrame | pl.LazyFrame,
    config: FeatureConfig,
    *,
    at: Sequence[int] | Literal["bucket ends"] = "bucket ends",
    complaints: pl.DataFrame | pl.LazyFrame | None = None,
) -> pl.DataFrame:
    """One row per caller and window end: ``caller``, ``end_ms`` and :data:`FEATURE_NAMES`.

    ``cdrs`` needs ``caller``, ``callee`` (normalised numbers), ``start_ms``
    (epoch ms), ``duration_s``, ``disposition`` (text) and ``ring_s``
    (nullable). ``at``: window ends in epoch ms, multiples of the short hop,
    evaluated for every caller with a call in the long window; or "bucket
    ends": for each caller, the end of every short bucket in which it
    called. ``complaints``: optional ``reported`` (the caller's number) and
    ``time_ms``.
    """
    frame = _prepare(cdrs)
    if frame.is_empty():
        schema = {"caller": pl.String, "end_ms": pl.Int64} | dict.fromkeys(
            FEATURE_NAMES, pl.Float64
        )
        return pl.DataFrame(schema=schema)
    callers = frame["caller"].unique(maintain_order=True)
    short_hop_ms = config.short_hop_s * 1000
    calls = CallBatch.from_arrays(
        config,
        start_ms=frame["start_ms"].to_numpy(),
        callee=frame["callee_key"].to_numpy(),
        duration_s=frame["duration_s"].to_numpy(),
        answered=frame["answered"].to_numpy(),
        ring_s=frame["ring_s"].to_numpy(),
    )
    caller_ids = frame["caller_id"].to_numpy().astype(np.int64)
    row_keys = (caller_ids << _BUCKET_BITS) | (calls.start_ms // short_hop_ms)
    starts = run_starts(row_keys)
    buckets, bucket_keys = aggregate_calls(calls, starts, config), row_keys[starts]
    caller_of_end, end_ms = _evaluation_ends(bucket_keys, at, config)
    if complaints is not None:
        buckets, bucket_keys = _add_complaints(buckets, bucket_keys, complaints, callers, config)
    blocks, windows_kept = [], np.zeros(len(end_ms), bool)
    calls_in = _calls_received(frame, callers)
    inbound = _inbound_callers(caller_of_end, end_ms, calls_in, config)
    for name in ("short", "long"):
        rows, groups = _window_rows(bucket_keys, caller_of_end, end_ms, name, config)
        windows_kept[groups] = True
        window = Aggregates.empty(len(end_ms), config)
        if len(rows):
            present = np.unique(groups)
            group_starts = run_starts(groups)
            combined = combine(buckets.take(rows), group_starts, config)
            window.counters[present] = combined.counters
            window.kmv_hash[present] = combined.kmv_hash
            window.kmv_count[present] = combined.kmv_count
            window.segment_hist[present] = combined.segment_hist
        called_back = _reciprocity(window, caller_of_end, end_ms, calls_in, config)
        blocks.append(window_features(window, called_back, inbound))
    blocks.append(caller_number_features(callers.to_list())[caller_of_end])
    values = np.hstack(blocks)[windows_kept]
    result = pl.DataFrame(
        {
            "caller": callers.gather(caller_of_end[windows_kept]),
            "end_ms": end_ms[windows_kept],
        }
    )
    return result.with_columns(
        [pl.Series(name, values[:, column]) for column, name in enumerate(FEATURE_NAMES)]
    )


def _prepare(cdrs: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    lazy = cdrs.lazy() if isinstance(cdrs, pl.DataFrame) else cdrs
    return (
        lazy.select(
            pl.col("caller").cast(pl.String),
            pl.col("callee").cast(pl.String),
            pl.col("start_ms").cast(pl.Int64),
            pl.col("duration_s").cast(pl.Float64),
            (pl.col("disposition").cast(pl.String) == "ANSWERED").alias("answered"),
            pl.col("ring_s").cast(pl.Float64).fill_null(float("nan")),
            _number_key("callee").alias("callee_key"),
        )
        .sort(["caller", "start_ms", "callee_key"])
        .with_columns(pl.col("caller").rank("dense").cast(pl.Int64).sub(1).alias("caller_id"))
        .collect()
    )


def _number_key(column: str) -> pl.Expr:
    """Polars twin of :func:`features.batch.callee_keys`."""
    return pl.col(column).cast(pl.String).str.strip_prefix("+").cast(pl.UInt64)


def _add_complaints(
    buckets: Aggregates,
    bucket_keys: NDArray[np.int64],
    complaints: pl.DataFrame | pl.LazyFrame,
    callers: pl.Series,
    config: FeatureConfig,
) -> tuple[Aggregates, NDArray[np.int64]]:
    lookup = pl.DataFrame({"reported": callers, "caller_id": np.arange(len(callers))})
    reports = (
        complaints.lazy()
        .select(pl.col("reported").cast(pl.String), pl.col("time_ms").cast(pl.Int64))
        .join(lookup.lazy(), on="reported", how="inner")
        .collect()
    )
    if reports.is_empty():
        return buckets, bucket_keys
    short_hop_ms = config.short_hop_s * 1000
    report_keys = (reports["caller_id"].to_numpy().astype(np.int64) << _BUCKET_BITS) | (
        reports["time_ms"].to_numpy() // short_hop_ms
    )
    distinct, counts = np.unique(report_keys, return_counts=True)
    extra = Aggregates.empty(len(distinct), config)
    extra.counters[:, COMPLAINTS] = counts
    keys = np.concatenate((bucket_keys, distinct))
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    merged = Aggregates(
        np.concatenate((buckets.counters, extra.counters))[order],
        np.concatenate((buckets.kmv_hash, extra.kmv_hash))[order],
        np.concatenate((buckets.kmv_count, extra.kmv_count))[order],
        np.concatenate((buckets.segment_hist, extra.segment_hist))[order],
    )
    starts = run_starts(keys)
    return combine(merged, starts, config), keys[starts]


def _evaluation_ends(
    call_keys: NDArray[np.int64],
    at: Sequence[int] | Literal["bucket ends"],
    config: FeatureConfig,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    short_hop_ms = config.short_hop_s * 1000
    mask = (1 << _BUCKET_BITS) - 1
    if isinstance(at, str):
        if at != "bucket ends":
            raise ValueError(f"at must be window ends in ms or 'bucket ends', got {at!r}")
        return call_keys >> _BUCKET_BITS, ((call_keys & mask) + 1) * short_hop_ms
    ends = np.asarray(sorted(set(at)), dtype=np.int64)
    if (ends % short_hop_ms).any():
        raise ValueError(f"window ends must be multiples of the short hop ({short_hop_ms} ms)")
    callers = np.unique(call_keys >> _BUCKET_BITS)
    return np.repeat(callers, len(ends)), np.tile(ends, len(callers))


def _window_rows(
    bucket_keys: NDArray[np.int64],
    caller_of_end: NDArray[np.int64],
    end_ms: NDArray[np.int64],
    name: Literal["short", "long"],
    config: FeatureConfig,
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Rows of ``bucket_keys`` in each window, and the window (end) each belongs to."""
    short_hop_ms = config.short_hop_s * 1000
    spec = config.window(name)
    last_short = end_ms // short_hop_ms
    if name == "short":
        first_short = last_short - spec.buckets_per_window
    else:
        last_long = -(-end_ms // spec.hop_ms)
        first_short = (last_long - spec.buckets_per_window) * spec.hop_ms // short_hop_ms
    base = caller_of_end << _BUCKET_BITS
    low = np.searchsorted(bucket_keys, base | first_short)
    high = np.searchsorted(bucket_keys, base | last_short)
    lengths = high - low
    groups = np.repeat(np.arange(len(end_ms)), lengths)
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(low, lengths) + offsets, groups


def _calls_received(frame: pl.DataFrame, callers: pl.Series) -> pl.DataFrame:
    """Calls to the table's callers: ``caller_id`` (the callee's), ``hash`` (who called), time.

    ``hash`` is the calling number's 32-bit key hash, as the stream's inbound
    filter and the callee sketches hold it.
    """
    lookup = pl.DataFrame({"callee": callers, "caller_id": np.arange(len(callers))})
    inbound = (
        frame.lazy()
        .select("callee", "start_ms", hash=pl.col("caller"))
        .join(lookup.lazy(), on="callee", how="inner")
        .collect()
    )
    return inbound.select(
        "caller_id",
        pl.Series(
            "hash", key_hash32(inbound["hash"].str.strip_prefix("+").cast(pl.UInt64).to_numpy())
        ),
        "start_ms",
    )


def _reciprocity(
    window: Aggregates,
    caller_of_end: NDArray[np.int64],
    end_ms: NDArray[np.int64],
    inbound: pl.DataFrame,
    config: FeatureConfig,
) -> NDArray[np.float64]:
    """Per window: share of its sampled callees who called the caller in the horizon."""
    sampled = window.kmv_hash != EMPTY_HASH
    sampled_count = sampled.sum(axis=1)
    window_of, position = np.nonzero(sampled)
    samples = pl.DataFrame(
        {
            "window": window_of,
            "caller_id": caller_of_end[window_of],
            "hash": window.kmv_hash[window_of, position],
            "horizon_ms": _horizon_start(end_ms[window_of], config),
            "end_ms": end_ms[window_of],
        }
    )
    matched = (
        samples.join(inbound, on=["caller_id", "hash"])
        .filter(
            (pl.col("start_ms") >= pl.col("horizon_ms")) & (pl.col("start_ms") < pl.col("end_ms"))
        )
        .group_by("window")
        .agg(pl.col("hash").n_unique().alias("called_back"))
    )
    called_back = np.zeros(len(end_ms), np.int64)
    called_back[matched["window"].to_numpy()] = matched["called_back"].to_numpy()
    return reciprocity(called_back, sampled_count)


def _inbound_callers(
    caller_of_end: NDArray[np.int64],
    end_ms: NDArray[np.int64],
    inbound: pl.DataFrame,
    config: FeatureConfig,
) -> NDArray[np.float64]:
    """Per window end: numbers that called the caller in the inbound horizon, exactly.

    Each number counts once per inbound generation, as the stream's filter
    keeps one generation per half: the pairs (generation, number) whose
    first call in that generation started from the horizon to ``end_ms``.
    """
    if inbound.is_empty():
        return np.zeros(len(end_ms))
    generation_ms = config.inbound_generation_s * 1000
    firsts = (
        inbound.with_columns(generation=pl.col("start_ms") // generation_ms)
        .group_by("caller_id", "generation", "hash")
        .agg(pl.col("start_ms").min())
    )
    keys = np.sort(
        (firsts["caller_id"].to_numpy().astype(np.int64) << _TIME_BITS)
        | firsts["start_ms"].to_numpy().astype(np.int64)
    )
    base = caller_of_end.astype(np.int64) << _TIME_BITS
    before_end = np.searchsorted(keys, base | end_ms)
    before_horizon = np.searchsorted(keys, base | _horizon_start(end_ms, config))
    counts: NDArray[np.float64] = (before_end - before_horizon).astype(np.float64)
    return counts


def _horizon_start(end_ms: NDArray[np.int64], config: FeatureConfig) -> NDArray[np.int64]:
    generation_ms = config.inbound_generation_s * 1000
    horizon: NDArray[np.int64] = (config.inbound_generation(end_ms) - 1) * generation_ms
    return horizon
