"""Pacing: an overall request rate, and per sender line, what capacity answers say.

`RateLimiter` keeps a virtual schedule (GCRA): request n may start at
t0 + n / rate and never earlier, so no 1-second window carries more than
rate + 1 requests, and a long run achieves the rate (token buckets with a
capacity of 1 undershoot; aiolimiter bursts to twice the rate).

`LineGate` holds one sender line: after a capacity answer (4002) the line waits
`retry_after`, then lets one request through at a time until one succeeds, so
it does not send a herd the API would refuse again. Other lines never wait.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio

Clock = Callable[[], float]


class RateLimiter:
    """At most `rate` request starts per second, on a virtual schedule; 0 means unlimited."""

    def __init__(self, rate: float, clock: Clock = anyio.current_time) -> None:
        self.interval = 1.0 / rate if rate > 0 and math.isfinite(rate) else 0.0
        self.clock = clock
        self.next_start = -math.inf

    async def acquire(self) -> None:
        """Wait for this request's slot on the schedule."""
        if not self.interval:
            return
        now = self.clock()
        # Claim the slot before sleeping: concurrent callers get distinct slots.
        start = max(self.next_start, now)
        self.next_start = start + self.interval
        if start > now:
            await anyio.sleep(start - now)

    def hold(self, seconds: float) -> None:
        """Start nothing for `seconds` (the API said 1007: rate limited)."""
        self.next_start = max(self.next_start, self.clock() + seconds)


class LineGate:
    """One sender line: open, paused until a time, or letting one request through at a time."""

    def __init__(self, clock: Clock = anyio.current_time) -> None:
        self.clock = clock
        self.paused_until = 0.0
        self.cautious = False
        self.deferred_until = 0.0  # wall-clock time a rerun may send first touches again
        self._one_at_a_time = anyio.Lock()

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Wait until the line may send, and hold the single slot while it is cautious."""
        while True:
            wait = self.paused_until - self.clock()
            if wait > 0:
                await anyio.sleep(wait)
                continue
            if not self.cautious:
                yield
                return
            async with self._one_at_a_time:
                if self.paused_until > self.clock():
                    continue  # paused again while this request waited for the slot
                yield
                return

    def pause(self, seconds: float) -> None:
        """A capacity answer: wait `seconds`, then resume one request at a time."""
        self.paused_until = max(self.paused_until, self.clock() + seconds)
        self.cautious = True

    def succeeded(self) -> None:
        """The line sent something: open it fully again."""
        self.cautious = False
