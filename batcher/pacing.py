"""Pacing: an overall request rate, and per sender line, what capacity answers say.

`RateLimiter` keeps a virtual schedule (GCRA): request n may start at
t0 + n / rate and never earlier, so a long run achieves the rate (token buckets
with a capacity of 1 undershoot; aiolimiter bursts to twice the rate). A
schedule alone is not enough when the event loop stalls: every sleeper whose
slot passed meanwhile would go at once. So it also remembers when the last
`rate` requests actually started, and holds a request back until the oldest
of them is a second old: no 1-second window ever carries more than rate + 1.

`LineGate` holds one sender line: its first touches paced by `--line-gap` /
`--line-daily` and by what capacity answers (4002) taught, one at a time after
a refusal, so the line never gets a herd the API would refuse again. It never
blocks: a chat that cannot go now is parked, and the worker takes another.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class LinePace:
    """First-touch pacing given before any refusal: `--line-gap` and `--line-daily`."""

    gap: float | None = None
    daily: int | None = None


UNPACED = LinePace()
DAY_SECONDS = 86_400.0
# First touches a line sends one at a time before it may send them concurrently.
PROBES = 2
# A gap learned from a refusal longer than this is a daily cap, not a gap: not learned.
MAX_LEARNED_GAP = 3600.0


def margin(gap: float) -> float:
    """What a learned gap gets on top, so that the next first touch is not a hair early."""
    return 0.02 + gap * 0.01


def learned_gap(free_at: float, last_touch: float | None) -> float | None:
    """The gap the API asked for: when it said the line is free, minus the last touch."""
    if last_touch is None:
        return None
    gap = free_at - last_touch
    return gap if 0 < gap <= MAX_LEARNED_GAP else None


class LineGate(Generic[T]):
    """One sender line: when its next first touch and its next follow-up may go.

    First touches (`POST /chats`) are paced by what was given (`LinePace`) and by
    what capacity answers taught: after a 4002 the line sends them strictly one
    at a time, spaced by the learned gap. Follow-ups only wait out a 4002 of
    their own. Times are the clock's monotonic seconds. It never blocks: work
    that cannot go now is parked, and the sender offers it again when the gate
    says.
    """

    def __init__(self, pace: LinePace = UNPACED, history: Iterable[float] = ()) -> None:
        self.gap = pace.gap or 0.0
        self.daily = pace.daily
        self.learned = 0.0
        # Starts of the first touches accepted (or perhaps accepted), oldest first.
        self.touches: deque[float] = deque(sorted(history))
        # Paced lines, and any line until it had PROBES first touches without a refusal,
        # send first touches one at a time: a line with a gap is not sent a burst.
        self.paced = pace.gap is not None or pace.daily is not None
        self.counted = 0
        self.out = 0  # first touches in flight
        self.first_paused_until = -math.inf
        self.follow_paused_until = -math.inf
        self.parked: list[T] = []
        self.wake_at = math.inf  # a timer will offer the parked work again then

    @property
    def serial(self) -> bool:
        """Whether first touches go strictly one at a time on this line."""
        return self.paced or self.counted < PROBES

    @property
    def spacing(self) -> float:
        """The least time between two first touches on this line, with a margin if any."""
        gap = max(self.gap, self.learned)
        return gap + margin(gap) if gap else 0.0

    def next_first(self, now: float) -> float:
        """When the next first touch may go; inf while one is out on a paced line."""
        if self.serial and self.out:
            return math.inf
        at = self.first_paused_until
        if self.touches:
            at = max(at, self.touches[-1] + self.spacing)
        if self.daily is not None:
            while len(self.touches) > 1 and self.touches[0] <= now - DAY_SECONDS:
                self.touches.popleft()
            if len(self.touches) >= self.daily:
                at = max(at, self.touches[-self.daily] + DAY_SECONDS)
        return at

    def next_follow_up(self) -> float:
        """When the next follow-up may go: first-touch pacing never holds them."""
        return self.follow_paused_until

    def begin_first(self, now: float) -> float:
        """A first touch goes out now: it holds its slot until its answer says otherwise."""
        self.out += 1
        self.touches.append(now)
        return now

    def end_first(self, started: float, *, counted: bool) -> list[T]:
        """A first touch came back; `counted` unless the API surely did not count it."""
        self.out -= 1
        if counted:
            self.counted += 1
        else:
            self.touches.remove(started)
        return self.unpark()

    def capacity(self, now: float, retry_after: float, *, first_touch: bool) -> None:
        """A 4002: the line is free at now + retry_after; learn the gap from it."""
        free_at = now + retry_after
        if not first_touch:
            self.follow_paused_until = max(self.follow_paused_until, free_at)
            return
        self.paced = True
        self.first_paused_until = max(self.first_paused_until, free_at)
        gap = learned_gap(free_at, self.touches[-1] if self.touches else None)
        if gap is not None:
            self.learned = gap

    def park(self, work: T) -> None:
        """Keep work that cannot go yet."""
        self.parked.append(work)

    def unpark(self) -> list[T]:
        """Take back all parked work (to be offered again)."""
        parked, self.parked = self.parked, []
        return parked
