"""The quality targets, and reports of metrics against them (terminal text and Markdown)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "FAMILY_PREFIX",
    "TARGETS",
    "Target",
    "caller_table",
    "check_targets",
    "metrics_text",
    "targets_markdown",
]


@dataclass(frozen=True)
class Target:
    """One quality target on a hold-out metric."""

    metric: str
    comparison: Literal[">=", "<="]
    bound: float
    meaning: str

    def met_by(self, value: float | None) -> bool:
        """Whether ``value`` meets the target (a missing or NaN value never does)."""
        if value is None or math.isnan(value):
            return False
        return value >= self.bound if self.comparison == ">=" else value <= self.bound


TARGETS: tuple[Target, ...] = (
    Target("pr_auc", ">=", 0.97, "PR-AUC, any nuisance vs normal, hold-out campaigns"),
    Target("block_precision", ">=", 0.995, "precision of block"),
    Target("block_recall", ">=", 0.90, "recall of block (scored rows of nuisance numbers)"),
    Target("legit_false_flag_rate", "<=", 0.001, "legitimate bulk callers flagged (watch+)"),
    Target(
        "minutes_to_first_flag_median",
        "<=",
        10.0,
        "median minutes of event time, campaign's first call to first flag",
    ),
)


def check_targets(metrics: Mapping[str, float]) -> list[tuple[Target, float | None, bool]]:
    """Each target with the measured value (None if not measured) and whether it is met."""
    return [(t, metrics.get(t.metric), t.met_by(metrics.get(t.metric))) for t in TARGETS]


def _value(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "never"
    return f"{value:.4f}"


def metrics_text(metrics: Mapping[str, float], thresholds: Mapping[str, float]) -> str:
    """A plain-text report: targets with MET / NOT MET, thresholds, per-category figures."""
    lines = ["quality targets (hold-out, campaigns unseen in training)"]
    for target, value, met in check_targets(metrics):
        bound = f"{target.comparison} {target.bound:g}"
        verdict = "MET" if met else "NOT MET"
        lines.append(f"  {target.metric:<30} {_value(value):>8}  {bound:<9} {verdict:<8}")
    lines.append(
        "thresholds  "
        + "  ".join(f"{tier} {value:.4f}" for tier, value in sorted(thresholds.items()))
    )
    categories = sorted(
        k.split(".", 1)[1] for k in metrics if k.startswith("rows.") and k != "rows.nuisance"
    )
    if categories:
        lines.append(f"  {'category':<20} {'rows':>6} {'PR-AUC':>8} {'precision':>9} {'recall':>8}")
        for category in categories:
            lines.append(
                f"  {category:<20} {metrics[f'rows.{category}']:>6.0f} "
                f"{_value(metrics.get(f'pr_auc.{category}')):>8} "
                f"{_value(metrics.get(f'precision.{category}')):>9} "
                f"{_value(metrics.get(f'recall.{category}')):>8}"
            )
    extra = (
        "watch_precision",
        "watch_recall",
        "legit_callers",
        "campaigns_measured",
        "campaigns_flagged_share",
        "minutes_to_first_scored_row_median",
        "number_minutes_to_first_flag_median",
    )
    lines.extend(f"  {name:<36} {_value(metrics.get(name))}" for name in extra)
    table = caller_table(metrics)
    if table:
        lines.append(
            "by number (flagged = watch or block; 'heldout' and the families after it: "
            "scenario families never trained on)"
        )
        lines.extend(f"  {line}" for line in table)
    return "\n".join(lines)


_PARTS = ("holdout", "heldout")
FAMILY_PREFIX = "family_"  # further held-out families' metrics (models.training.family_prefix)
_CALLER_FIGURES = (
    ("block_precision", "block precision"),
    ("flag_precision", "flag precision"),
    ("legit_flagged_share", "legitimate bulk callers flagged"),
    ("ordinary_flagged_share", "ordinary subscribers flagged"),
    ("minutes_to_first_flag_median", "minutes to first flag, median"),
    ("minutes_to_first_flag_p90", "minutes to first flag, p90"),
)


def caller_table(metrics: Mapping[str, float]) -> list[str]:
    """Caller-level figures of the hold-out and the held-out families side by side (text rows).

    Empty when neither was measured (:mod:`models.caller_metrics`).
    """
    families = sorted({k.split(".")[0] for k in metrics if k.startswith(FAMILY_PREFIX)})
    parts = [part for part in _PARTS if any(k.startswith(f"{part}.") for k in metrics)]
    parts += families
    if not parts:
        return []
    categories = sorted(
        {k.split(".")[2] for k in metrics if k.split(".")[0] in parts and ".callers." in k}
    )
    header = f"{'':<34}" + "".join(f"{part.removeprefix(FAMILY_PREFIX):>22}" for part in parts)
    rows = [header]
    for category in categories:
        cells = []
        for part in parts:
            callers = metrics.get(f"{part}.callers.{category}")
            recall = metrics.get(f"{part}.recall.{category}")
            cells.append(
                "n/a" if callers is None else f"{_value(recall)} of {callers:.0f}"
            )
        rows.append(f"{'recall ' + category:<34}" + "".join(f"{cell:>22}" for cell in cells))
    for key, meaning in _CALLER_FIGURES:
        rows.append(
            f"{meaning:<34}"
            + "".join(f"{_value(metrics.get(f'{part}.{key}')):>22}" for part in parts)
        )
    return rows


def targets_markdown(metrics: Mapping[str, float]) -> str:
    """The targets as a Markdown table, for the model card."""
    rows = [
        f"| {t.meaning} | `{t.metric}` | {t.comparison} {t.bound:g} | {_value(v)} | "
        f"{'MET' if met else '**NOT MET**'} |"
        for t, v, met in check_targets(metrics)
    ]
    return "\n".join(
        [
            "Quality targets, measured on the hold-out (later time, campaigns unseen in training):",
            "",
            "| target | metric | required | measured | verdict |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
