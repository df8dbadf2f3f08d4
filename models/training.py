"""Training: a calibrated gradient-boosting classifier over the nuisance categories and normal.

The library API behind ``callguard train`` and the notebooks::

    data = build_training_data("var/sim")          # models.dataset
    result = train(data, seed=7)
    print(result.report)
    register_candidate(result, ModelRegistry(root), actor="ana", why="weekly retrain")

Steps: cut the table by campaign and time (:mod:`models.training_split`);
refuse when a category of the data has too few rows to learn; measure how
well each feature alone separates the table (:mod:`models.training_checks`);
fit a :class:`~sklearn.ensemble.HistGradientBoostingClassifier` (classes
balanced) inside :class:`~sklearn.calibration.CalibratedClassifierCV`, whose
folds keep each campaign and each normal caller whole; choose the ``block``
and ``watch`` thresholds as the lowest nuisance scores whose precision on the
*validation* campaigns and callers reaches the target precisions; then
measure everything, permutation importances included, on the *test* part.
The model registered is exactly the model measured: it is not refitted
afterwards. Fitting and prediction use one OpenMP thread, so runs are
reproducible and leave the machine to the worker.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from numpy.typing import NDArray
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedGroupKFold
from threadpoolctl import threadpool_limits

from features.vector import FEATURE_NAMES
from models.called_evidence import (
    CalledPaths,
    CalledPolicy,
    ScoreAlignment,
    called_shown_in_time_order,
)
from models.caller_metrics import caller_metrics, evaluate_family, table_roster
from models.complaint_paths import (
    ComplaintPaths,
    block_agreed,
    has_complaint,
    with_complaints_held,
)
from models.dataset import NORMAL, LabelledCalls, TrainingData, table_sha256
from models.population import (
    NEVER,
    PopulationReference,
    ReviewRule,
    choose_review_rule,
    effective_scores,
    may_block,
)
from models.reasons import FeatureRange, reference_extra, reference_from_table
from models.registry import ModelDraft, ModelMetadata, ModelRegistry
from models.scoring import nuisance_scores, predict_proba
from models.training_checks import (
    permutation_importances,
    require_categories,
    require_learned,
    separation_warnings,
    single_feature_separation,
)
from models.training_metrics import (
    classification_metrics,
    false_flag_metrics,
    threshold_for_precision,
    time_to_flag_metrics,
)
from models.training_report import FAMILY_PREFIX, TARGETS, metrics_text, targets_markdown
from models.training_split import Split, split_table

__all__ = [
    "TrainingOptions",
    "TrainingResult",
    "compare",
    "evaluate",
    "family_prefix",
    "register_candidate",
    "train",
    "with_family_evaluation",
]

DEFAULT_TARGET_PRECISION: Mapping[str, float] = {"block": 0.995, "watch": 0.9}


@dataclass(frozen=True)
class TrainingOptions:
    """Knobs of :func:`train`; the defaults are what ``callguard train`` uses."""

    seed: int = 0
    train_share: float = 0.6
    target_precision: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_TARGET_PRECISION)
    )
    # Boosting rounds (trees per class). The worker scores every emitted row through
    # every tree: at 200 rounds the seven-class model took 33 us a row and 26% of a
    # worker's CPU went to scoring (bench.profile_worker, batches of 500). At 100 the
    # held-out family gave the same recall, false flags and block precision, also with
    # its subscribers' missed calls returned at 0.1 or with nobody called
    # (bench.detection's shifted worlds). At 50 recall rose (fraud 71% against 61%) but
    # the shifted worlds flagged twice the ordinary subscribers (0.13% against 0.05%).
    max_iter: int = 100
    # 0.2 made the seven-class booster diverge on a table three times the default
    # day's (hold-out PR-AUC 0.40; 0.9999 at 0.1); at 0.1 the default day trains as well.
    learning_rate: float = 0.1
    max_leaf_nodes: int = 15
    calibration: Literal["sigmoid", "isotonic", "temperature"] = "sigmoid"
    calibration_folds: int = 3
    min_class_rows: int = 30
    # A block needs the population to agree (models.population.ReviewRule.block_anomaly):
    # the caller's mean -log10 tail share in the suspicious directions at least this. Not
    # tunable on the in-distribution validation rows, where every threshold separates;
    # on the held-out family 0.5 took block precision from 93% to 97% offline, every
    # number it held back from block still flagged watch.
    block_min_anomaly: float = 0.5
    # A block also needs this many calls in the long window (fewer: watch). Interception
    # is the one action with a cost to the caller, and a few calls say little: on one
    # small simulated day a courier line was blocked on 10 calls, one callee of ten not
    # calling back where a tenth had. Recall counts watch as flagged, so it is unchanged.
    block_min_calls: float = 20
    max_legit_flag_rate: float = 0.001
    max_ordinary_flag_rate: float = 0.0001
    # Training refuses a model whose in-distribution hold-out PR-AUC is below this.
    min_pr_auc: float = 0.9
    # Categories the model must learn; None: every category of the data's campaigns.
    required_categories: tuple[str, ...] | None = None
    # A second classifier, fitted without the features of calls received, scores the rows
    # of a feed that shows too few of them (models.called_evidence); None: one classifier,
    # every row scored as measured. On the held-out family with nobody ever called, one
    # classifier flagged 0.54% of the ordinary subscribers and blocked at 94% precision.
    called: CalledPolicy | None = field(default_factory=CalledPolicy)
    # Rows without a complaint about the number are scored by a classifier fitted with
    # complaints held at 0 (models.complaint_paths); False: one classifier reads them
    # everywhere. On the held-out family with no complaints in the feed, the one
    # classifier caught finance marketing 66% and fraud 54%, the two paths 75% and 63%.
    complaints: bool = True


@dataclass(frozen=True)
class TrainingResult:
    """A trained candidate and everything measured about it."""

    model: Any  # CalibratedClassifierCV, CalledPaths, or ComplaintPaths of those
    feature_names: tuple[str, ...]
    classes: tuple[str, ...]
    thresholds: dict[str, float]
    metrics: dict[str, float]
    reference: dict[str, FeatureRange]
    training_data_sha256: str
    split: Split
    report: str
    separation: dict[str, float] = field(default_factory=dict)
    importances: dict[str, float] = field(default_factory=dict)
    population: PopulationReference | None = None
    review: ReviewRule = NEVER
    # When the model scores with the features of calls received (None: always).
    called: CalledPolicy | None = None
    # The families measured by with_family_evaluation, as the report names them.
    families: tuple[str, ...] = ()

    def _population_extra(self) -> dict[str, Any]:
        assert self.population is not None  # noqa: S101  # the caller checked
        return self.population.to_json() | {"review": self.review.to_json()}

    @property
    def warnings(self) -> list[str]:
        """What the training-time checks found suspicious (:mod:`models.training_checks`)."""
        return separation_warnings(self.separation)

    def draft(self, notes: str = "") -> ModelDraft:
        """What the registry needs; the notes open with the targets table."""
        recorded = {k: v for k, v in self.metrics.items() if not math.isnan(v)}
        text = targets_markdown(self.metrics) + f"\n\nSplit: {self.split.describe()}."
        return ModelDraft(
            feature_names=self.feature_names,
            classes=self.classes,
            thresholds=self.thresholds,
            metrics=recorded,
            training_data_sha256=self.training_data_sha256,
            notes=text + (f"\n\n{notes}" if notes else ""),
            extra={
                "reference": reference_extra(self.reference),
                "checks": {
                    "warnings": self.warnings,
                    "single_feature_auc": self.separation,
                    "permutation_importance": self.importances,
                },
                **({} if self.population is None else {"population": self._population_extra()}),
                **({} if self.called is None else {"called": self.called.to_json()}),
            },
        )


def train(
    data: TrainingData | pl.DataFrame,
    *,
    seed: int | None = None,
    options: TrainingOptions | None = None,
) -> TrainingResult:
    """Fit, choose thresholds and measure a candidate on ``data`` (see the module doc)."""
    options = options or TrainingOptions()
    if seed is not None:
        options = TrainingOptions(**{**options.__dict__, "seed": seed})
    table = data.table if isinstance(data, TrainingData) else data
    campaigns = data.campaigns if isinstance(data, TrainingData) else _campaigns_in(table)
    split = split_table(table, seed=options.seed, train_share=options.train_share)
    matrix = table.select(FEATURE_NAMES).to_numpy().astype(np.float64)
    labels = table["label"].to_numpy().astype(str)
    weights = table["weight"].to_numpy().astype(np.float64)
    required = options.required_categories
    if required is None:
        required = tuple(campaigns["category"].drop_nulls().unique().sort())
    require_categories(labels[split.fit], required, options.min_class_rows)
    fit = split.fit & _trainable(labels, split.fit, options.min_class_rows)
    separation = single_feature_separation(matrix[fit], labels[fit], FEATURE_NAMES, weights[fit])
    fit_rows = table.filter(pl.Series(fit))
    validation_rows = table.filter(pl.Series(split.validation))
    fitting = _Fitting(labels, weights, fit, fit_rows, validation_rows, split, options)
    model, thresholds, validation = _fit_model(matrix, fitting)
    classes = tuple(str(c) for c in model.classes_)
    served = _as_served(matrix, table, options.called)
    probabilities = predict_proba(model, served)  # every row as the worker scores it
    scores, _categories = nuisance_scores(probabilities, classes)
    metrics = _measure(probabilities, classes, thresholds, table, campaigns, split)
    metrics |= validation | _sizes(split)
    if "pr_auc" in metrics:  # absent when the hold-out has one class only
        require_learned(metrics["pr_auc"], options.min_pr_auc)
    population = PopulationReference.fit(matrix[split.fit & (labels == NORMAL)], FEATURE_NAMES)
    anomaly = population.anomaly(served, FEATURE_NAMES)
    review = _review_rule(validation_rows, scores[split.validation], anomaly[split.validation],
                          thresholds["watch"], options)
    review = replace(review, block_anomaly=options.block_min_anomaly,
                     block_min_calls=options.block_min_calls)
    flagging = effective_scores(scores, anomaly, thresholds["watch"], review)
    blockable = may_block(anomaly, review, _long_calls(table))
    blockable &= block_agreed(model, served, scores, blockable)
    held_out = split.test | split.latency
    metrics |= caller_metrics(
        table.filter(pl.Series(held_out)),
        flagging[held_out],
        thresholds,
        table_roster(table.filter(pl.Series(held_out))),
        "holdout",
        blockable[held_out],
    )
    metrics["checks.max_single_feature_auc"] = max(separation.values(), default=float("nan"))
    importances = permutation_importances(
        model, matrix[split.test], labels[split.test], FEATURE_NAMES, seed=options.seed
    )
    report = _report(metrics, thresholds, separation, review, model, options.called)
    return TrainingResult(
        model=model,
        feature_names=FEATURE_NAMES,
        classes=classes,
        thresholds=thresholds,
        metrics=metrics,
        reference=reference_from_table(table.filter(pl.Series(split.fit))),
        training_data_sha256=table_sha256(table),
        split=split,
        report=report,
        separation=separation,
        importances=importances,
        population=population,
        review=review,
        called=options.called,
    )


@dataclass(frozen=True)
class _Fitting:
    """What every classifier of a model is fitted and given thresholds on."""

    labels: NDArray[np.str_]
    weights: NDArray[np.float64]
    fit: NDArray[np.bool_]
    fit_rows: pl.DataFrame
    validation_rows: pl.DataFrame
    split: Split
    options: TrainingOptions


def _fit_model(
    matrix: NDArray[np.float64], fitting: _Fitting
) -> tuple[Any, dict[str, float], dict[str, float]]:
    """Every classifier of the model, fitted two at a time, and its paths put together.

    Returns the model, the first classifier's thresholds (the scale every
    path is mapped onto) and how they did on the validation rows.
    """
    options = fitting.options
    inputs = [matrix]
    if options.complaints:
        inputs.append(with_complaints_held(matrix, FEATURE_NAMES))
    if options.called is not None:
        inputs += [CalledPaths.without_input(rows, FEATURE_NAMES) for rows in inputs]
    fitted = _fit_many(inputs, fitting)
    paths = len(inputs) // 2 if options.called is not None else len(inputs)
    model, thresholds, validation = _paths(inputs, fitted, 0, paths, fitting, None)
    if options.complaints:
        quiet = ~has_complaint(matrix, FEATURE_NAMES)
        unreported, own, _ = _paths(inputs, fitted, 1, paths, fitting, quiet)
        model = ComplaintPaths(model, unreported, FEATURE_NAMES, _alignment(own, thresholds))
    return model, thresholds, validation


def _paths(
    inputs: list[NDArray[np.float64]],
    fitted: list[CalibratedClassifierCV],
    index: int,
    paths: int,
    fitting: _Fitting,
    judged: NDArray[np.bool_] | None,
) -> tuple[Any, dict[str, float], dict[str, float]]:
    """Classifier ``index`` with its path without calls received (classifier ``index + paths``).

    Thresholds are chosen on the validation rows as measured (those of
    ``judged`` only if given: the rows the classifier will score); the
    second path's own are mapped onto the first's.
    """
    model: Any = fitted[index]
    thresholds, validation = _thresholds_on(model, inputs[index], fitting, judged)
    if fitting.options.called is not None:
        without = fitted[index + paths]
        own, _ = _thresholds_on(without, inputs[index + paths], fitting, judged)
        model = CalledPaths(model, without, FEATURE_NAMES, _alignment(own, thresholds))
    return model, thresholds, validation


def _thresholds_on(
    model: Any,
    matrix: NDArray[np.float64],
    fitting: _Fitting,
    judged: NDArray[np.bool_] | None,
) -> tuple[dict[str, float], dict[str, float]]:
    """:func:`_thresholds` of ``model`` on the validation rows (of ``judged`` if given)."""
    rows = fitting.split.validation if judged is None else fitting.split.validation & judged
    classes = tuple(str(c) for c in model.classes_)
    scores, _ = nuisance_scores(predict_proba(model, matrix[rows]), classes)
    table_rows = (
        fitting.validation_rows if judged is None
        else fitting.validation_rows.filter(pl.Series(judged[fitting.split.validation]))
    )
    return _thresholds(table_rows, scores, fitting.options)


def _alignment(own: Mapping[str, float], target: Mapping[str, float]) -> ScoreAlignment:
    return ScoreAlignment(source=(own["watch"], own["block"]),
                          target=(target["watch"], target["block"]))


def _as_served(
    matrix: NDArray[np.float64], table: pl.DataFrame, called: CalledPolicy | None
) -> NDArray[np.float64]:
    """``matrix`` as the worker would score it (called features hidden where it would)."""
    if called is None:
        return matrix
    return called_shown_in_time_order(matrix, table["end_ms"].to_numpy(), FEATURE_NAMES, called)


def with_family_evaluation(
    result: TrainingResult,
    family: TrainingData,
    calls: LabelledCalls,
    name: str,
    *,
    primary: bool = True,
) -> TrainingResult:
    """``result`` with caller-level figures on a scenario family held out of training.

    ``family`` is the labelled table of traffic from that family and
    ``calls`` the data it was built from (every caller counts, scored or
    not). The figures join the metrics and the report: under ``heldout.``
    for the primary family (the one the quality targets are judged on), under
    :func:`family_prefix` of ``name`` for each further family.
    """
    prefix = "heldout" if primary else family_prefix(name)
    metrics = dict(result.metrics)
    metrics |= evaluate_family(
        result.model,
        result.classes,
        result.thresholds,
        family.table,
        calls,
        prefix,
        population=result.population,
        review=result.review,
        called=result.called,
    )
    families = (*result.families, f"{prefix} = {name} ({family.table.height} scored rows)")
    report = _report(metrics, result.thresholds, result.separation, result.review,
                     result.model, result.called)
    report += "".join(f"\nnever trained on: {measured}" for measured in families)
    return replace(result, metrics=metrics, report=report, families=families)


def family_prefix(name: str) -> str:
    """The metrics prefix of a further held-out family: ``family_`` and its name's word characters.

    >>> family_prefix("county"), family_prefix("/data/week 2/")
    ('family_county', 'family_week_2')
    """
    words = re.findall(r"[A-Za-z0-9]+", Path(name).name or name)
    return FAMILY_PREFIX + ("_".join(words).lower() or "unnamed")


def evaluate(
    model: Any,
    classes: Sequence[str],
    thresholds: Mapping[str, float],
    data: TrainingData,
    split: Split,
    *,
    called: CalledPolicy | None = None,
) -> dict[str, float]:
    """Measure any model (a candidate or the serving one) on ``split``'s test part of ``data``.

    The same measures as :func:`train` reports, so two models can be set side
    by side on the same hold-out; ``thresholds`` are the model's own, and so
    is ``called`` (:func:`models.called_evidence.called_of` of its metadata).
    """
    matrix = data.table.select(FEATURE_NAMES).to_numpy().astype(np.float64)
    probabilities = predict_proba(model, _as_served(matrix, data.table, called))
    return _measure(
        probabilities, tuple(classes), dict(thresholds), data.table, data.campaigns, split
    )


def compare(metrics: Mapping[str, Mapping[str, float]]) -> pl.DataFrame:
    """Metrics of several models side by side: a ``metric`` column and one column per model.

    The quality-target metrics come first, then the rest in name order.
    """
    names = [t.metric for t in TARGETS]
    others = sorted({k for m in metrics.values() for k in m if not k.startswith("reference.")})
    ordered = names + [name for name in others if name not in names]
    return pl.DataFrame(
        {"metric": ordered}
        | {label: [values.get(name) for name in ordered] for label, values in metrics.items()},
        strict=False,
    )


def register_candidate(
    result: TrainingResult,
    registry: ModelRegistry,
    *,
    promote: bool | None = None,
    actor: str = "callguard-train",
    why: str = "trained by callguard train",
    notes: str = "",
) -> ModelMetadata:
    """Register ``result``; promote it if asked, or (``None``) if nothing serves yet."""
    metadata = registry.register(result.model, result.draft(notes))
    if promote is None:
        promote = registry.current() is None
    if promote:
        registry.promote(metadata.version, actor=actor, why=why)
    return metadata


def _report(
    metrics: Mapping[str, float],
    thresholds: Mapping[str, float],
    separation: Mapping[str, float],
    review: ReviewRule,
    model: Any = None,
    called: CalledPolicy | None = None,
) -> str:
    lines = [metrics_text(metrics, thresholds)]
    reported = model.reported if isinstance(model, ComplaintPaths) else model
    if isinstance(reported, CalledPaths) and called is not None:
        (watch, block) = reported.alignment.source
        lines.append(
            f"without calls received (under {called.min_share:.0%} of the last "
            f"{called.window:,} rows scored had one, at least {called.min_rows:,} rows seen): "
            f"a second classifier, its own watch {watch:.4f} and block {block:.4f} "
            "mapped onto the thresholds above"
        )
    if isinstance(model, ComplaintPaths):
        (watch, block) = model.alignment.source
        lines.append(
            "without a complaint about the number: a classifier fitted with complaints "
            f"held at 0, its own watch {watch:.4f} and block {block:.4f} (chosen on the "
            "validation rows without one) mapped onto the thresholds above"
        )
    if review.score_floor < 1.0:
        lines.append(
            f"review rule: watch when the score is at least {review.score_floor:g} and the "
            f"population anomaly at least {review.anomaly_floor:g}"
        )
    else:
        lines.append("review rule: none (no population rule added a caller on validation)")
    if review.block_anomaly > 0:
        lines.append(
            f"block needs the population to agree: anomaly at least {review.block_anomaly:g} "
            "(below, a block-level score is a watch)"
        )
    if review.block_min_calls > 0:
        lines.append(
            f"block needs at least {review.block_min_calls:g} calls in the long window "
            "(fewer: watch)"
        )
    lines += [f"warning: {line}" for line in separation_warnings(separation)]
    return "\n".join(lines)


def _measure(
    probabilities: NDArray[np.float64],
    classes: tuple[str, ...],
    thresholds: dict[str, float],
    table: pl.DataFrame,
    campaigns: pl.DataFrame,
    split: Split,
) -> dict[str, float]:
    """Every hold-out measure of one model's probabilities over ``table``."""
    scores, categories = nuisance_scores(probabilities, classes)
    test = split.test
    labels = table["label"].to_numpy().astype(str)
    metrics = classification_metrics(
        labels[test],
        probabilities[test],
        classes,
        scores[test],
        categories[test],
        thresholds,
        table["weight"].to_numpy()[test],
    )
    metrics |= false_flag_metrics(
        table["caller"].filter(pl.Series(test)),
        table["is_legit_bulk"].to_numpy()[test],
        scores[test],
        thresholds["watch"],
    )
    test_campaigns = campaigns.filter(pl.col("campaign_id").is_in(split.campaigns["test"]))
    metrics |= time_to_flag_metrics(
        table.filter(pl.Series(split.latency)),
        scores[split.latency],
        thresholds["watch"],
        test_campaigns,
    )
    return metrics


def _trainable(
    labels: NDArray[np.str_], fit: NDArray[np.bool_], min_rows: int
) -> NDArray[np.bool_]:
    """Rows whose class has at least ``min_rows`` fit rows; rarer classes are left out.

    A class seen a handful of times cannot be learnt, and its rows must not
    be taught as ``normal`` either; they still count as nuisance on the test.
    """
    names, counts = np.unique(labels[fit], return_counts=True)
    return np.isin(labels, names[counts >= min_rows])


def _fit_many(
    inputs: list[NDArray[np.float64]], fitting: _Fitting
) -> list[CalibratedClassifierCV]:
    """A classifier fitted on the fit rows of each of ``inputs``, two at a time.

    Each fit runs its OpenMP loops on one thread, so two fits at once keep
    both cores of a small machine busy (the default model's four took 56 s
    instead of 80 on this 2-core machine); each is seeded, so the result
    does not depend on which finishes first.
    """
    fit = fitting.fit

    def one(rows: NDArray[np.float64]) -> CalibratedClassifierCV:
        # OpenMP's thread count is a setting of the calling thread: limited in each.
        with threadpool_limits(limits=1, user_api="openmp"):
            return _fit(rows[fit], fitting.labels[fit], fitting.weights[fit], fitting.fit_rows,
                        fitting.options)

    with warnings.catch_warnings():
        # scikit-learn warns "Number of classes in training fold (6) does not
        # match total number of classes (7)" when a fold's training part lacks
        # a class. Folds keep campaigns whole, so a nuisance category with few
        # campaigns (in `callguard train --simulate small`, with some seeds) can
        # have all of them in one fold's held-out part. That fold's out-of-fold
        # predictions then give the category probability 0, and its calibrator
        # is fitted on the other folds' scores together with those zeros; the
        # served booster is fitted on every training row and knows every class.
        # The advice it prints (stratified folds) is already followed as far as
        # whole campaigns allow, so a user can do nothing with it: silence
        # exactly that notice, here only (set once, outside the fitting threads).
        warnings.filterwarnings("ignore", "Number of classes in training fold", RuntimeWarning)
        with ThreadPoolExecutor(max_workers=min(2, len(inputs))) as pool:
            return list(pool.map(one, inputs))


def _fit(
    matrix: NDArray[np.float64],
    labels: NDArray[np.str_],
    weights: NDArray[np.float64],
    fit_rows: pl.DataFrame,
    options: TrainingOptions,
) -> CalibratedClassifierCV:
    if len(set(labels)) < 2:
        raise ValueError(f"the training part has fewer than two classes: {sorted(set(labels))}")
    booster = HistGradientBoostingClassifier(
        max_iter=options.max_iter,
        learning_rate=options.learning_rate,
        max_leaf_nodes=options.max_leaf_nodes,
        class_weight="balanced",
        early_stopping=False,
        random_state=options.seed,
    )
    # Calibration folds keep a campaign (or a normal caller) whole, as the hold-out does.
    groups = (
        fit_rows.select(
            pl.when(pl.col("campaign_id").is_not_null())
            .then(pl.format("campaign {}", pl.col("campaign_id")))
            .otherwise(pl.col("caller"))
        )
        .to_series()
        .to_numpy()
    )
    folds = StratifiedGroupKFold(
        n_splits=options.calibration_folds, shuffle=True, random_state=options.seed
    )
    model = CalibratedClassifierCV(
        booster,
        method=options.calibration,
        cv=list(folds.split(matrix, labels, groups)),
        ensemble=False,
    )
    model.fit(matrix, labels, sample_weight=weights)
    return model


def _thresholds(
    rows: pl.DataFrame, scores: NDArray[np.float64], options: TrainingOptions
) -> tuple[dict[str, float], dict[str, float]]:
    """Thresholds per tier from the validation rows, and how they did there.

    A tier's threshold is the lowest score at which (a) precision, at that
    score and above, reaches the tier's target precision and (b) at most
    ``max_legit_flag_rate`` of the legitimate bulk callers would be flagged
    (with fewer than 1,000 such callers: none). That lowest score is then
    raised to midway towards the next nuisance score, which flags the same
    validation rows but leaves a margin for unseen normal callers. ``block``
    is never below ``watch``. No threshold reaching the block target: block
    is 1.0.
    """
    is_nuisance = (rows["label"] != NORMAL).to_numpy()
    weights = rows["weight"].to_numpy()
    legit_floor = _legit_floor(rows, scores, options.max_legit_flag_rate)
    found = {
        tier: threshold_for_precision(is_nuisance, scores, target, weights)
        for tier, target in options.target_precision.items()
    }
    nuisance_scores_seen = np.sort(scores[is_nuisance])
    block = _into_gap(
        max(legit_floor, 1.0 if found["block"] is None else found["block"]), nuisance_scores_seen
    )
    watch = (
        block
        if found["watch"] is None
        else min(block, _into_gap(max(legit_floor, found["watch"]), nuisance_scores_seen))
    )
    thresholds = {"block": min(block, 1.0), "watch": max(min(watch, 1.0), 1e-6)}
    report: dict[str, float] = {
        f"validation.{tier}_target_reached": float(found[tier] is not None) for tier in found
    }
    report["validation.legit_floor"] = legit_floor
    for tier, threshold in thresholds.items():
        flagged = scores >= threshold
        caught = flagged & is_nuisance
        report[f"validation.{tier}_precision"] = _ratio(weights[caught], weights[flagged])
        report[f"validation.{tier}_recall"] = _ratio(weights[caught], weights[is_nuisance])
    return thresholds, report


def _review_rule(
    rows: pl.DataFrame,
    scores: NDArray[np.float64],
    anomaly: NDArray[np.float64],
    watch: float,
    options: TrainingOptions,
) -> ReviewRule:
    """The classifier-and-population review rule, chosen on the validation rows."""
    return choose_review_rule(
        rows["caller"].to_numpy(),
        scores,
        anomaly,
        (rows["label"] != NORMAL).to_numpy(),
        rows["is_legit_bulk"].to_numpy(),
        watch=watch,
        target_precision=options.target_precision["watch"],
        max_legit_flag_rate=options.max_legit_flag_rate,
        max_ordinary_flag_rate=options.max_ordinary_flag_rate,
    )


def _into_gap(threshold: float, nuisance_scores: NDArray[np.float64]) -> float:
    """Midway between ``threshold`` and the lowest sorted nuisance score at or above it."""
    position = int(np.searchsorted(nuisance_scores, threshold))
    if threshold >= 1.0 or position == len(nuisance_scores):
        return threshold
    return (threshold + float(nuisance_scores[position])) / 2


def _legit_floor(rows: pl.DataFrame, scores: NDArray[np.float64], max_rate: float) -> float:
    """The lowest threshold flagging at most ``max_rate`` of the legitimate callers."""
    legit = rows.with_columns(score=pl.Series(scores)).filter("is_legit_bulk")
    if legit.is_empty():
        return 0.0
    highest = np.sort(legit.group_by("caller").agg(pl.col("score").max())["score"].to_numpy())
    allowed = int(max_rate * len(highest))
    return float(np.nextafter(highest[len(highest) - 1 - allowed], np.inf))


def _ratio(numerator: NDArray[np.float64], denominator: NDArray[np.float64]) -> float:
    bottom = float(denominator.sum())
    return float(numerator.sum()) / bottom if bottom else float("nan")


def _sizes(split: Split) -> dict[str, float]:
    return {
        "split.fit_rows": float(split.fit.sum()),
        "split.validation_rows": float(split.validation.sum()),
        "split.test_rows": float(split.test.sum()),
        **{f"split.{part}_campaigns": float(len(ids)) for part, ids in split.campaigns.items()},
    }


def _campaigns_in(table: pl.DataFrame) -> pl.DataFrame:
    """Campaign starts as far as the table shows them (campaigns without rows are unseen)."""
    return (
        table.filter(pl.col("campaign_id").is_not_null())
        .group_by("campaign_id")
        .agg(pl.col("label").first().alias("category"), pl.col("first_call_ms").min())
    )


def _long_calls(table: pl.DataFrame) -> NDArray[np.float64]:
    return table["long_call_volume"].to_numpy().astype(np.float64)
