"""What the worker decides with: the promoted model, its policy, the allow-list.

:meth:`ModelService.refresh` is blocking (file reads, skops loading) and
runs in an executor on a timer; the agents read :attr:`ModelService.current`
once per batch, a single reference swapped whole, so a batch never mixes one
model's scorer with another's thresholds.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from features.vector import FEATURE_NAMES
from models.allowlist import AllowList
from models.allowlist_patterns import AllowMatcher
from models.decisions import DecisionPolicy
from models.registry import ModelRegistry
from models.registry_watch import ModelHolder
from models.scoring import BatchScorer

__all__ = ["DecisionKit", "ModelService"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecisionKit:
    """A scorer and the policy of the same model version."""

    scorer: BatchScorer
    policy: DecisionPolicy

    @property
    def version(self) -> str:
        """The model version behind this kit."""
        return self.scorer.metadata.version


class ModelService:
    """Keeps the serving model and the allow-list matcher up to date."""

    def __init__(
        self,
        model_dir: Path,
        allowlist_path: Path,
        *,
        flag_ttl_s: float,
        appeal_hold_s: float,
        category_switch_ratio: float = 1.5,
        block_hold_margin: float = 0.05,
        appeal_review_margin: float = 0.5,
    ) -> None:
        self.holder = ModelHolder(ModelRegistry(model_dir), FEATURE_NAMES)
        self.allowlist_path = allowlist_path
        self.flag_ttl_ms = int(flag_ttl_s * 1000)
        self.appeal_hold_ms = int(appeal_hold_s * 1000)
        self.appeal_review_margin = appeal_review_margin
        self.category_switch_ratio = category_switch_ratio
        self.block_hold_margin = block_hold_margin
        self.current: DecisionKit | None = None
        self.matcher = AllowMatcher((), revision=-1)
        self.last_status = "not loaded yet"
        self._lock = threading.Lock()

    def refresh(self) -> str:
        """Pick up a newly promoted model and allow-list changes; the model status."""
        with self._lock:
            result = self.holder.refresh()
            loaded = self.holder.current
            if loaded is not None and (
                self.current is None or self.current.version != loaded.metadata.version
            ):
                thresholds = loaded.metadata.thresholds
                scorer = BatchScorer(loaded)
                took = scorer.warm()  # compiled once, then read from numba's disk cache
                logger.info(
                    "model %s scored by %s (ready in %.2f s)", loaded.metadata.version,
                    "the compiled forest" if scorer.forest else "scikit-learn", took,
                )
                self.current = DecisionKit(
                    scorer,
                    DecisionPolicy(
                        block_threshold=thresholds["block"],
                        watch_threshold=thresholds["watch"],
                        flag_ttl_ms=self.flag_ttl_ms,
                        appeal_hold_ms=self.appeal_hold_ms,
                        appeal_review_margin=self.appeal_review_margin,
                        category_switch_ratio=self.category_switch_ratio,
                        block_hold_margin=self.block_hold_margin,
                        review_score=scorer.review.score_floor,
                        review_anomaly=scorer.review.anomaly_floor,
                        block_anomaly=scorer.review.block_anomaly,
                        block_min_calls=scorer.review.block_min_calls,
                    ),
                )
            self._refresh_allowlist()
            self.last_status = result.status if result.error is None else result.error
            return self.last_status

    def _refresh_allowlist(self) -> None:
        if not self.allowlist_path.exists():
            return
        with AllowList.open(self.allowlist_path) as allowlist:
            if allowlist.revision() != self.matcher.revision:
                self.matcher = allowlist.matcher()
                logger.info("allow-list revision %s loaded", self.matcher.revision)
