"""Vectorised call outcomes: disposition, ring time and talk time for many calls at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simulator.profiles import OUTCOMES, LogNormal, Outcome

__all__ = [
    "DISPOSITIONS",
    "OUTCOME_NAMES",
    "OutcomeTable",
    "ANSWERED",
    "NO_ANSWER",
    "BUSY",
    "REJECTED",
    "FAILED",
]

# Order matters: the disposition code of a row indexes this tuple.
DISPOSITIONS = ("ANSWERED", "NO_ANSWER", "BUSY", "REJECTED", "FAILED")
ANSWERED, NO_ANSWER, BUSY, REJECTED, FAILED = range(5)
OUTCOME_NAMES: tuple[str, ...] = tuple(OUTCOMES)


def _lognormal_columns(dists: list[LogNormal]) -> np.ndarray:
    return np.array([[d.median, d.sigma, d.low, d.high] for d in dists], dtype=np.float64)


BACKGROUND_TIERS = 7


@dataclass(frozen=True)
class OutcomeTable:
    """Outcomes as arrays, one row per outcome id.

    Ids below ``len(OUTCOME_NAMES)`` are the :data:`~simulator.profiles.OUTCOMES`
    templates; the rest are the callers' own outcomes, in the order given.
    """

    cumulative: np.ndarray  # (n, 5) cumulative disposition probabilities
    ring_answered: np.ndarray  # (n, 4) median, sigma, low, high
    ring_unanswered: np.ndarray
    talk: np.ndarray
    # Outcome ids of calls between people, one per tier of answer rate (see build).
    background_ids: np.ndarray

    @classmethod
    def build(
        cls,
        background_answer_rate: float,
        drawn: Sequence[Outcome] = (),
        background_spread: float = 0.0,
    ) -> OutcomeTable:
        """The table, with the scenario's answer rate for calls between people.

        ``background_spread`` > 0 adds :data:`BACKGROUND_TIERS` outcomes for
        calls between people, their answer rates spread evenly over
        ``background_answer_rate`` +/- ``background_spread`` (kept within
        0.05-0.98): people differ in how often the people they call pick up.
        """
        outcomes: list[Outcome] = []
        for name in OUTCOME_NAMES:
            outcome = OUTCOMES[name]
            if name == "background":
                outcome = Outcome(
                    background_answer_rate,
                    outcome.unanswered_split,
                    outcome.ring_answered,
                    outcome.ring_unanswered,
                    outcome.talk,
                )
            outcomes.append(outcome)
        outcomes.extend(drawn)
        background = OUTCOMES["background"]
        tiers = np.clip(
            background_answer_rate
            + background_spread * np.linspace(-1.0, 1.0, BACKGROUND_TIERS),
            0.05,
            0.98,
        )
        if background_spread > 0:
            background_ids = np.arange(len(outcomes), len(outcomes) + BACKGROUND_TIERS)
            outcomes.extend(
                Outcome(
                    float(rate),
                    background.unanswered_split,
                    background.ring_answered,
                    background.ring_unanswered,
                    background.talk,
                )
                for rate in tiers
            )
        else:
            background_ids = np.array([OUTCOME_NAMES.index("background")])
        probabilities = []
        for outcome in outcomes:
            split = np.asarray(outcome.unanswered_split) / sum(outcome.unanswered_split)
            probabilities.append([outcome.answer, *((1 - outcome.answer) * split)])
        cumulative = np.cumsum(np.array(probabilities), axis=1)
        cumulative[:, -1] = 1.0
        return cls(
            cumulative=cumulative,
            ring_answered=_lognormal_columns([o.ring_answered for o in outcomes]),
            ring_unanswered=_lognormal_columns([o.ring_unanswered for o in outcomes]),
            talk=_lognormal_columns([o.talk for o in outcomes]),
            background_ids=background_ids.astype(np.int32),
        )

    def background_of(self, callers: np.ndarray) -> np.ndarray:
        """The outcome id of calls between people made by ``callers`` (population indices)."""
        return self.background_ids[callers % self.background_ids.size]

    def draw(
        self, rng: np.random.Generator, outcome_ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Disposition codes, ring seconds (0.1 s) and talk seconds (whole) per call."""
        count = outcome_ids.size
        uniform = rng.random(count)
        cumulative = self.cumulative[outcome_ids]
        disposition = (uniform[:, None] >= cumulative).sum(axis=1).astype(np.int8)
        np.minimum(disposition, FAILED, out=disposition)
        answered = disposition == ANSWERED
        normal = rng.standard_normal((3, count))
        ring_answered = _clipped(self.ring_answered[outcome_ids], normal[0])
        ring_unanswered = _clipped(self.ring_unanswered[outcome_ids], normal[1])
        ring = np.where(answered, ring_answered, ring_unanswered)
        # Busy lines return a tone at once; a rejection comes after the callee looks.
        ring = np.where(disposition == BUSY, np.minimum(np.abs(normal[2]) * 0.4, 1.0), ring)
        ring = np.where(disposition == REJECTED, ring_answered * 0.8, ring)
        ring = np.where(disposition == FAILED, 0.0, ring)
        talk = np.where(
            answered, np.maximum(np.rint(_clipped(self.talk[outcome_ids], normal[2])), 1.0), 0.0
        )
        return disposition, np.round(ring, 1), talk


def _clipped(parameters: np.ndarray, normal: np.ndarray) -> np.ndarray:
    median, sigma, low, high = parameters.T
    return np.clip(median * np.exp(sigma * normal), low, high)
