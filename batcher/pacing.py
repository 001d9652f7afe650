"""Pacing: an overall request rate, and per sender line, what capacity answers say.

`RateLimiter` keeps a virtual schedule (GCRA): request n may start at
t0 + n / rate and never earlier, so a long run achieves the rate (token buckets
with a capacity of 1 undershoot; aiolimiter bursts to twice the rate). A
schedule alone is not enough when the event loop stalls: every sleeper whose
slot passed meanwhile would go at once. So it also remembers when the last
`rate` requests actually started, and holds a request back until the oldest
of them is a second old: no 1-second window ever carries more than rate + 1.

`LineGate` holds one sender line: after a capacity answer (4002) the line waits
`retry_after`, then lets one request through at a time until one succeeds, so
it does not send a herd the API would refuse again. It never blocks: a chat
that cannot go now is parked, and the worker takes another chat.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Generic, TypeVar

from batcher.clock import SYSTEM_CLOCK, Clock

T = TypeVar("T")


class RateLimiter:
    """At most `rate` request starts per second, on a virtual schedule; 0 means unlimited."""

    def __init__(self, rate: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self.interval = 1.0 / rate if rate > 0 and math.isfinite(rate) else 0.0
        self.clock = clock
        self.next_start = -math.inf
        self.recent: deque[float] = deque(maxlen=max(1, math.floor(rate)) if self.interval else 1)

    async def acquire(self) -> None:
        """Wait for this request's slot on the schedule, and for room in the last second."""
        if not self.interval:
            return
        now = self.clock.now()
        # Claim the slot before sleeping: concurrent callers get distinct slots.
        start = max(self.next_start, now)
        self.next_start = start + self.interval
        if start > now:
            await self.clock.sleep(start - now)
        while len(self.recent) == self.recent.maxlen:
            room = self.recent[0] + 1.0 - self.clock.now()
            if room <= 0:
                break
            await self.clock.sleep(room)
        self.recent.append(self.clock.now())

    def hold(self, seconds: float) -> None:
        """Start nothing for `seconds` (the API said 1007: rate limited)."""
        self.next_start = max(self.next_start, self.clock.now() + seconds)


class LineGate(Generic[T]):
    """One sender line: open, paused until a time, or letting one request through at a time."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self.paused_until = 0.0
        self.cautious = False
        self.probing = False
        self.deferred_until = 0.0  # wall-clock time a rerun may send new chats again
        self.parked: list[T] = []
        self.waking = False  # a timer will offer the parked work again

    def wait(self) -> float:
        """Seconds until the line may send; 0 now; inf while a probe is out."""
        paused = self.paused_until - self.clock.now()
        if paused > 0:
            return paused
        return math.inf if self.probing else 0.0

    def begin(self) -> None:
        """A request goes out on this line; while cautious, it is the only one."""
        self.probing = self.cautious

    def end(self, *, ok: bool) -> list[T]:
        """A request came back; return the parked work that may now be tried again."""
        self.probing = False
        if ok:
            self.cautious = False
        return self.unpark()

    def pause(self, seconds: float) -> None:
        """A capacity answer: wait `seconds`, then resume one request at a time."""
        self.paused_until = max(self.paused_until, self.clock.now() + seconds)
        self.cautious = True
        self.probing = False

    def park(self, work: T) -> None:
        """Keep work that cannot go yet."""
        self.parked.append(work)

    def unpark(self) -> list[T]:
        """Take back all parked work (to be offered again)."""
        parked, self.parked = self.parked, []
        return parked
