"""The per-line plan: the finish-time formula as a table, and counts by line and kind."""

from __future__ import annotations

import pytest

from batcher.lineplan import DAY_SECONDS, LinePlan, LineTally, Pace, finish_estimate, line_plans
from batcher.planning import Request

DAY = DAY_SECONDS


@pytest.mark.parametrize(
    ("n", "gap", "daily", "estimate"),
    [
        (0, 600, 30, 0.0),  # nothing to send
        (1, 600, 30, 0.0),  # the first goes at once
        (2, 600, 30, 600.0),
        (30, 600, 30, 29 * 600.0),  # a full day's cap, 10 minutes apart
        (31, 600, 30, DAY),  # the 31st waits for the first to leave the rolling day
        (32, 600, 30, DAY + 600),
        (65, 600, 30, 2 * DAY + 4 * 600),  # the "2 days 0 h 40 min"
        (3, 0, 30, 0.0),  # no gap, under the cap: all at once
        (3, 0, 1, 2 * DAY),  # one a day
        (4, 0, 2, DAY),  # two a day: 0, 0, day, day
        (3, 50_000, 2, 100_000.0),  # the gap alone already spaces them past the cap
        (4, 50_000, 3, 150_000.0),
        (12, 0.25, 30, 11 * 0.25),
    ],
)
def test_finish_estimate(n: int, gap: float, daily: int, estimate: float) -> None:
    """t_k = max(t_(k-1) + gap, t_(k-daily) + 1 day), t_0 = 0; the estimate is t_(n-1)."""
    assert finish_estimate(n, gap, daily) == pytest.approx(estimate)


@pytest.mark.parametrize(
    ("gap", "daily", "pace"),
    [
        (None, None, Pace(600.0, 30, False, False)),
        (0.25, None, Pace(0.25, 30, True, False)),
        (None, 5, Pace(600.0, 5, False, True)),
        (0.0, 1, Pace(0.0, 1, True, True)),
    ],
)
def test_pace_defaults_to_chert_documented_figures(
    gap: float | None, daily: int | None, pace: Pace
) -> None:
    """What is not given is Chert's documented 600 s and 30 a day, and marked as assumed."""
    assert Pace.of(gap, daily) == pace


def request(sender: str, creates: bool, n: int) -> Request:
    """A request from `sender`: a new chat, or a follow-up."""
    return Request(f"k{n}", n, 1, f"chat{n}", creates, sender, ("+14155552000",), "", ())


def test_plans_count_new_chats_and_follow_ups_by_line() -> None:
    """By line number, chats named only by id last; each line's estimate from its own touches."""
    requests = [
        request("+15555550101", True, 1),
        request("", False, 2),
        request("+15555550100", True, 3),
        request("+15555550100", True, 4),
        request("+15555550100", False, 5),
    ]
    assert line_plans(requests, Pace(600.0, 30)) == [
        LinePlan("+15555550100", 2, 1, 600.0),
        LinePlan("+15555550101", 1, 0, 0.0),
        LinePlan("", 0, 1, 0.0),
    ]
    tally = LineTally()
    assert tally.plans(Pace()) == []
    assert LinePlan("", 0, 1, 0.0).to_json()["line"] is None
