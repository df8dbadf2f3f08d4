"""Exponential backoff with a cap and jitter, for retrying a store that is down."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry number ``failures`` (1 = after the first failure).

    The delay doubles (``multiplier``) from ``initial_s`` up to ``max_s``, then
    loses a random share of up to ``jitter`` of itself, so that workers that
    failed together do not all retry together.

    >>> policy = Backoff(initial_s=1, max_s=10, jitter=0)
    >>> [policy.delay(n) for n in (1, 2, 3, 4, 5, 6)]
    [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    """

    initial_s: float = 0.5
    max_s: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s:
            raise ValueError(f"need 0 < initial_s <= max_s, got {self.initial_s}, {self.max_s}")
        if self.multiplier < 1 or not 0 <= self.jitter < 1:
            raise ValueError("need multiplier >= 1 and 0 <= jitter < 1")

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after ``failures`` consecutive failures (0 for none)."""
        if failures <= 0:
            return 0.0
        # Cap the exponent too: 2.0 ** 10_000 overflows a float.
        exponent = min(failures - 1, 64)
        capped = min(self.max_s, self.initial_s * self.multiplier**exponent)
        share = (rng or _RNG).random() * self.jitter
        return capped * (1.0 - share)


_RNG = random.Random()  # noqa: S311 - jitter, not cryptography
