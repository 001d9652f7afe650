"""A fake clock for tests: sleeps advance time at once, in the order they would end.

`FakeClock` autojumps: when every task is asleep on it (none runnable, no HTTP
exchange in flight), time jumps to the earliest wake-up. HTTP exchanges count
as work only when they go through `clock.transport()`, which is how a test
sends real requests over loopback to a sandbox sharing the clock
(`State(config, clock=clock.wall)`).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

import httpx

from batcher.clock import SYSTEM_CLOCK

# Event-loop turns with nothing happening before time may jump: enough for every
# task woken by the last jump (and the callbacks they schedule) to run.
QUIET_TURNS = 30
START_WALL = 1_800_000_000.0  # 2027-01-15, a fixed day: figures do not depend on today


class FakeClock:
    """Monotonic and wall time that only move when every task sleeps."""

    def __init__(self, wall: float = START_WALL) -> None:
        self.time = 0.0
        self.start_wall = wall
        self.busy = 0
        self.jumps = 0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._activity = 0
        self._driver: asyncio.Task[None] | None = None

    def now(self) -> float:
        """Fake monotonic seconds since the clock was made."""
        return self.time

    def wall(self) -> float:
        """Fake wall time (safe to read from the sandbox's thread)."""
        return self.start_wall + self.time

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock reaches now + seconds."""
        self._activity += 1
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.time + seconds, next(self._order), future))
        self._ensure_driver()
        try:
            await future
        finally:
            self._activity += 1

    def transport(self) -> FakeClockTransport:
        """An HTTP transport whose exchanges hold the clock still while they are out."""
        return FakeClockTransport(self, httpx.AsyncHTTPTransport())

    def _ensure_driver(self) -> None:
        if self._driver is None or self._driver.done():
            self._driver = asyncio.get_running_loop().create_task(self._drive())

    async def _drive(self) -> None:
        while self._sleepers:
            quiet = 0
            while quiet < QUIET_TURNS:
                seen = self._activity
                await asyncio.sleep(0)
                quiet = quiet + 1 if seen == self._activity and not self.busy else 0
                if self.busy:
                    await asyncio.sleep(0.001)  # an exchange is out: real time passes
            self._jump()

    def _jump(self) -> None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)  # cancelled sleeps
        if not self._sleepers:
            return
        at = self._sleepers[0][0]
        self.time = max(self.time, at)
        self.jumps += 1
        while self._sleepers and self._sleepers[0][0] <= self.time:
            future = heapq.heappop(self._sleepers)[2]
            if not future.done():
                future.set_result(None)


class FakeClockTransport(httpx.AsyncBaseTransport):
    """Real HTTP, counted as work for the fake clock from request to the last byte."""

    def __init__(self, clock: FakeClock, inner: httpx.AsyncBaseTransport) -> None:
        self.clock = clock
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send the request and read the whole answer while the clock stands still."""
        self.clock.busy += 1
        self.clock._activity += 1
        try:
            response = await self.inner.handle_async_request(request)
            content = await response.aread()
            await response.aclose()
            return httpx.Response(
                response.status_code, headers=response.headers, content=content, request=request
            )
        finally:
            self.clock.busy -= 1
            self.clock._activity += 1

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self.inner.aclose()


class ShiftedClock:
    """The real clock, but with wall time `shift` seconds ahead: a run "days later"."""

    def __init__(self, shift: float) -> None:
        self.shift = shift

    def now(self) -> float:
        """The event loop's monotonic time."""
        return SYSTEM_CLOCK.now()

    def wall(self) -> float:
        """The system's wall time, shifted."""
        return SYSTEM_CLOCK.wall() + self.shift

    async def sleep(self, seconds: float) -> None:
        """A real sleep."""
        await SYSTEM_CLOCK.sleep(seconds)
