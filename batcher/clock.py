"""The one clock every wait reads: monotonic time for pacing, wall time for what users see.

Tests pass a fake clock whose sleeps advance time at once (tests/clocks.py),
so pacing, deferral and waiting are tested without sleeping.
"""

from __future__ import annotations

import time
from typing import Protocol

import anyio


class Clock(Protocol):
    """Monotonic time, wall time, and a sleep on the same time line."""

    def now(self) -> float:
        """Monotonic seconds: only differences mean anything."""

    def wall(self) -> float:
        """Seconds since the epoch (UTC), for times shown to users and kept in files."""

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` (at least a checkpoint when 0 or less)."""


class SystemClock:
    """The real clock: the event loop's monotonic time and the system's wall time."""

    def now(self) -> float:
        """The system's monotonic time, which is asyncio's event-loop time.

        Not anyio.current_time(): it looks the running backend up on every call (2 % of
        a request's CPU when sending), and only differences of `now` are ever used.
        """
        return time.monotonic()

    def wall(self) -> float:
        """The system's wall time."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """Sleep on the event loop."""
        await anyio.sleep(max(0.0, seconds))


SYSTEM_CLOCK = SystemClock()
