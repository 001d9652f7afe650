"""The per-line plan: what each sender line is to send, and when its last new chat can go.

A line's first touches (new chats, `POST /chats`) are paced by Chert: at least a gap
apart and at most so many in any rolling 24 hours. Follow-ups into existing chats are
not first touches. Where the pace is not given, Chert's documented one is assumed.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from typing import NamedTuple

from batcher.planning import Request

DAY_SECONDS = 86_400.0
# Chert documents that a line sends at most 30 first touches a day, at least 10
# minutes apart (its HubSpot integration limits page; see chert-api.md).
DOCUMENTED_GAP_SECONDS = 600.0
DOCUMENTED_DAILY = 30


class Pace(NamedTuple):
    """How fast one line's first touches may go, and which figures were given (else Chert's)."""

    gap: float = DOCUMENTED_GAP_SECONDS
    daily: int = DOCUMENTED_DAILY
    gap_given: bool = False
    daily_given: bool = False

    @classmethod
    def of(cls, gap: float | None, daily: int | None) -> Pace:
        """The pace from --line-gap / --line-daily; Chert's documented figure for each not given."""
        return cls(
            DOCUMENTED_GAP_SECONDS if gap is None else gap,
            DOCUMENTED_DAILY if daily is None else daily,
            gap is not None,
            daily is not None,
        )


class LinePlan(NamedTuple):
    """One line's share of a plan; `line` is "" for follow-ups into chats named by id only."""

    line: str
    first_touches: int
    follow_ups: int
    estimate_seconds: float

    def to_json(self) -> dict[str, object]:
        """The plan of one line as plain data, for `--json`."""
        return {
            "line": self.line or None,
            "first_touches": self.first_touches,
            "follow_ups": self.follow_ups,
            "estimate_seconds": self.estimate_seconds,
        }


def finish_estimate(n: int, gap: float, daily: int) -> float:
    """Seconds from a line's first first touch to its n-th, if nothing is refused.

    Touch k goes at t_k = max(t_(k-1) + gap, t_(k-daily) + one day), t_0 = 0: at least
    `gap` after the one before, and only once the touch `daily` places earlier has left
    the rolling day. The estimate is t_(n-1); 0 for no touches.
    """
    if n <= 0:
        return 0.0
    window: deque[float] = deque([0.0], maxlen=daily)  # the last `daily` touch times
    last = 0.0
    for _ in range(1, n):
        last += gap
        if len(window) == daily:
            last = max(last, window[0] + DAY_SECONDS)
        window.append(last)
    return last


def duration(seconds: float) -> str:
    """'3 s', '4 min', '2 h 5 min', '2 days 0 h 40 min': rounded up, in units that read well."""
    if seconds < 90:
        return f"{max(1, math.ceil(seconds))} s"
    minutes = math.ceil(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} {'day' if days == 1 else 'days'} {hours} h {minutes} min"


class LineTally:
    """Counts requests by line and kind as they are planned, without keeping them."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, bool]] = Counter()

    def add(self, request: Request) -> None:
        """Count one request to be sent."""
        self.counts[(request.sender, request.creates_chat)] += 1

    def plans(self, pace: Pace) -> list[LinePlan]:
        """Every line's plan, by line number (chats named by id only last)."""
        lines = sorted({line for line, _ in self.counts}, key=lambda line: (not line, line))
        plans = []
        for line in lines:
            touches = self.counts[(line, True)]
            estimate = finish_estimate(touches, pace.gap, pace.daily)
            plans.append(LinePlan(line, touches, self.counts[(line, False)], estimate))
        return plans


def line_plans(requests: list[Request], pace: Pace) -> list[LinePlan]:
    """The per-line plan of these requests."""
    tally = LineTally()
    for request in requests:
        tally.add(request)
    return tally.plans(pace)
