"""Failed sign-ins counted per key (a user name, a remote address) over a sliding window."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

__all__ = ["FailureLimiter"]

MAX_KEYS = 100_000


class FailureLimiter:
    """At most ``max_failures`` failures per key within ``window_s``; then wait.

    >>> now = [0.0]
    >>> limiter = FailureLimiter(2, 60, clock=lambda: now[0])
    >>> limiter.fail("li"); limiter.fail("li"); limiter.retry_after("li")
    60.0
    >>> now[0] = 61.0; limiter.retry_after("li")
    0.0
    """

    def __init__(self, max_failures: int, window_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again (0: now)."""
        failures = self._recent(key)
        if len(failures) < self.max_failures:
            return 0.0
        return max(0.0, failures[0] + self.window_s - self._clock())

    def fail(self, key: str) -> None:
        """Count one failure for ``key``."""
        if len(self._failures) >= MAX_KEYS:
            self._forget_quiet()
        self._failures.setdefault(key, deque(maxlen=self.max_failures)).append(self._clock())

    def succeed(self, key: str) -> None:
        """Forget ``key``'s failures (a successful sign-in)."""
        self._failures.pop(key, None)

    def _recent(self, key: str) -> deque[float]:
        failures = self._failures.get(key, deque())
        since = self._clock() - self.window_s
        while failures and failures[0] <= since:
            failures.popleft()
        if not failures:
            self._failures.pop(key, None)
        return failures

    def _forget_quiet(self) -> None:
        for key in list(self._failures):
            self._recent(key)
