"""The model card: a short Markdown account of a registered model, from its metadata."""

from __future__ import annotations

from models.registry_metadata import NORMAL_CLASS, ModelMetadata

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
        "## Metrics\n\n" + _metrics_table(metadata),
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
