"""The model card: a short Markdown account of a registered model, from its metadata."""

from __future__ import annotations

from models.registry_metadata import NORMAL_CLASS, ModelMetadata
from models.training_report import caller_table

__all__ = ["render_model_card"]


def render_model_card(metadata: ModelMetadata) -> str:
    """Markdown describing ``metadata``'s model: purpose, data, metrics, limits."""
    nuisance = [label for label in metadata.classes if label != NORMAL_CLASS]
    sections = [
        f"# callguard nuisance-caller classifier {metadata.version}",
        f"Registered {metadata.created_at.isoformat()}.",
        "## Purpose\n\n"
        "Scores callers from the aggregate features of their call detail records and "
        "proposes an action (block, watch or clear) for the carrier's interception "
        "systems. It sees aggregates of a caller's traffic, never call content.",
        "## Classes\n\n" + "\n".join(f"- `{label}`" for label in metadata.classes),
        "## Features, in the order the model expects\n\n"
        + "\n".join(f"{n}. `{name}`" for n, name in enumerate(metadata.feature_names, 1)),
        "## Thresholds\n\n"
        "The nuisance score is the largest predicted probability among "
        f"{', '.join(f'`{label}`' for label in nuisance)}.\n\n"
        f"- block when the score is at least {metadata.thresholds['block']:.3f}\n"
        f"- watch when it is at least {metadata.thresholds['watch']:.3f}\n"
        "- clear otherwise; allow-listed numbers are never flagged whatever the score",
        "## Detection by number\n\n" + _caller_figures(metadata),
        "## Metrics\n\n" + _metrics_table(metadata),
        "## Training-time checks\n\n" + _checks(metadata),
        "## Training data\n\n"
        f"sha256 of the training set: `{metadata.training_data_sha256}`",
        "## Artefact\n\n"
        f"skops file, sha256 `{metadata.artefact_sha256}`, saved with "
        + ", ".join(f"{name} {version}" for name, version in
                    sorted(metadata.library_versions.items())),
        "## Intended use and limits\n\n"
        "- For carrier-side screening of callers in China, with human review of blocks "
        "and an appeal route for every flag.\n"
        "- Marketing and one-ring traffic shift over time; retrain and compare metrics "
        "before promoting, and watch the share of flags after each promotion.\n"
        "- Legitimate high-volume callers (banks' 95xxx lines, hotlines, registered "
        "enterprises) can look like nuisance callers: keep them on the allow-list.\n"
        "- Not for decisions about the people called; it never sees their numbers in clear.",
    ]
    if metadata.notes:
        sections.append("## Notes\n\n" + metadata.notes)
    return "\n\n".join(sections) + "\n"


def _metrics_table(metadata: ModelMetadata) -> str:
    if not metadata.metrics:
        return "No metrics were recorded."
    rows = [f"| {name} | {value:.4f} |" for name, value in sorted(metadata.metrics.items())]
    return "\n".join(["| metric | value |", "|---|---|", *rows])


def _checks(metadata: ModelMetadata) -> str:
    """Warnings, single-feature separation and permutation importances (if recorded)."""
    checks = metadata.extra.get("checks")
    if not checks:
        return "None were recorded for this model."
    warnings = checks.get("warnings") or []
    parts = [
        "\n".join(f"- **Warning**: {line}" for line in warnings)
        if warnings
        else "No single feature separates nuisance from normal rows by itself "
        "(every single-feature ROC-AUC is below 0.99)."
    ]
    separation = checks.get("single_feature_auc") or {}
    importance = checks.get("permutation_importance") or {}
    names = sorted(set(separation) | set(importance), key=lambda n: -importance.get(n, 0.0))
    if names:
        rows = [
            f"| `{name}` | {importance.get(name, float('nan')):.4f} | "
            f"{separation.get(name, float('nan')):.4f} |"
            for name in names
        ]
        parts.append(
            "Permutation importance is the drop of the hold-out PR-AUC when the feature's "
            "values are shuffled; single-feature ROC-AUC is how well the feature alone "
            "separates the training rows (0.5: not at all).\n\n"
            + "\n".join(
                ["| feature | permutation importance | single-feature ROC-AUC |", "|---|---|---|"]
                + rows
            )
        )
    return "\n\n".join(parts)


def _caller_figures(metadata: ModelMetadata) -> str:
    rows = caller_table(metadata.metrics)
    if not rows:
        return "Not measured for this model."
    return (
        "Numbers flagged (watch or block) on the in-distribution hold-out (`holdout`) and on "
        "scenario families never used in training (`heldout`, the one the quality targets "
        "are judged on, and any further family after it):\n\n```\n"
        + "\n".join(rows)
        + "\n```"
    )
