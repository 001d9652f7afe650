"""Pure limiters: the tenant's request rate and each sender line's first-touch capacity.

Both take the current time as an argument and return how long to wait
(0.0 = go ahead), so they can be tested without sleeping.
"""

from __future__ import annotations

import math
from collections import deque

DAY_SECONDS = 86_400.0
# Summing 1/rate intervals drifts by ~1e-14; without slack a burst of exactly
# `rate` requests could lose its last one to rounding.
SLACK_SECONDS = 1e-9


class RateLimiter:
    """A GCRA limiter: ``rate`` requests per second with a burst of ``max(1, rate)``.

    GCRA is a token bucket kept as one number (the theoretical arrival time),
    so admitting a request is O(1) and refusals cost no capacity.
    """

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        burst = max(1.0, rate)
        self.tolerance = (burst - 1.0) * self.interval
        self.tat = -math.inf

    def acquire(self, now: float) -> float:
        """Admit a request at ``now`` (return 0.0) or return the seconds until one fits."""
        tat = max(self.tat, now)
        wait = tat - now - self.tolerance
        if wait > SLACK_SECONDS:
            return wait
        self.tat = tat + self.interval
        return 0.0


class FirstTouchLimiter:
    """Per sender line: at least ``gap`` seconds between first touches, ``daily`` per 24 h."""

    def __init__(self, gap: float | None, daily: int | None) -> None:
        self.gap = gap
        self.daily = daily
        self.touches: dict[str, deque[float]] = {}

    def wait(self, line: str, now: float) -> float:
        """Return 0.0 if ``line`` may make a first touch at ``now``, else the seconds to wait."""
        touches = self.touches.get(line)
        if not touches:
            return 0.0
        _forget_before(touches, now - DAY_SECONDS)
        waits = [0.0]
        if self.gap is not None and touches:
            waits.append(touches[-1] + self.gap - now)
        if self.daily is not None and len(touches) >= self.daily:
            # Capacity frees up when the touch that fills the cap leaves the window.
            waits.append(touches[-self.daily] + DAY_SECONDS - now)
        return max(waits)

    def record(self, line: str, now: float) -> None:
        """Count a first touch by ``line`` at ``now``."""
        if self.gap is None and self.daily is None:
            return
        self.touches.setdefault(line, deque()).append(now)


def _forget_before(touches: deque[float], cutoff: float) -> None:
    while touches and touches[0] <= cutoff:
        touches.popleft()
