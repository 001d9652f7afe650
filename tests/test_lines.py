"""Each line at its own pace: first touches paced per line, on a fake clock, over loopback.

The sandbox shares the test's fake clock (`State(config, clock=clock.wall)`), so
a 600 s gap costs no real time; every request is real HTTP to it.
"""

from __future__ import annotations

import itertools
import math
import signal
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from batcher.caller import Caller, RetryPolicy
from batcher.client import ChertClient, Credentials
from batcher.journal import Journal
from batcher.pacing import UNPACED, LineGate, LinePace, learned_gap, margin
from batcher.pipeline import JobOptions, prepare
from batcher.render import waiting
from batcher.sandbox import SandboxConfig, running_sandbox
from batcher.sandbox.state import State
from batcher.sending import SendConfig, Sender, SendResult, Tally
from tests.clocks import FakeClock
from tests.runs import (
    LINE_A,
    LINE_B,
    assert_exactly_once,
    cli_env,
    ledger,
    recipient,
    run_cli,
    sheet,
    start_cli,
    wait_for_deliveries,
)

QUICK = RetryPolicy(attempts=5, total_seconds=60, wait_initial=0.01, wait_max=0.1, wait_jitter=0)


@dataclass
class Sent:
    """What a send on the fake clock did, as the sandbox saw it."""

    result: SendResult
    tally: Tally
    requests: list[dict[str, Any]]  # the sandbox's request log, arrival on the fake clock
    waits_seen: list[dict[str, float]]

    def accepted(self, path: str = "/api/v1/chats") -> list[float]:
        """Arrival times of the accepted requests to `path`, from the run's start."""
        return [
            r["t"] - self.start for r in self.requests if r["path"] == path and r["status"] == 200
        ]

    @property
    def start(self) -> float:
        """The first request's arrival."""
        return float(min(r["t"] for r in self.requests))

    def refusals(self) -> int:
        """How many 4002 answers the sandbox gave."""
        return sum(r["code"] == 4002 for r in self.requests)


def send_fake(
    tmp_path: Path,
    rows: list[list[str]],
    box_config: SandboxConfig,
    *,
    pace: LinePace = UNPACED,
    concurrency: int = 8,
    max_wait: float = 60.0,
    wait: bool = False,
    history: dict[str, list[float]] | None = None,
) -> Sent:
    """Plan the rows and send them with a Sender on a fake clock the sandbox shares."""
    clock = FakeClock()
    tmp_path.mkdir(exist_ok=True)
    plan = prepare(JobOptions(path=sheet(tmp_path / "in.csv", rows))).plan
    journal = Journal(tmp_path / "in.journal.sqlite")
    config = SendConfig(rate=0, concurrency=concurrency, max_wait=max_wait, retry=QUICK, wait=wait)
    waits_seen: list[dict[str, float]] = []

    def progress(tally: Tally) -> None:
        if tally.waiting:
            waits_seen.append(dict(tally.waiting))

    with running_sandbox(box_config, state=State(box_config, clock=clock.wall)) as box:

        async def go() -> Sender:
            async with httpx.AsyncClient(transport=clock.transport()) as http:
                client = ChertClient(http, box.base_url, Credentials(box.secret))
                caller = Caller(client, clock, rate=0, retry=QUICK, jitter=lambda: 0.0)
                sender = Sender(
                    caller,
                    journal,
                    config,
                    clock=clock,
                    pace=pace,
                    history=history,
                    on_progress=progress,
                )
                await sender.send(plan.chats, {}, {})
                return sender

        sender = anyio.run(go)
        requests = httpx.get(f"{box.root_url}/_sandbox/requests").json()["requests"]
    journal.close()
    return Sent(sender.result, sender.tally, requests, waits_seen)


def first_touches(count: int, line: str = LINE_A, offset: int = 0) -> list[list[str]]:
    """`count` new chats on one line."""
    return [[line, recipient(offset + n), f"Hello {line[-1]}{n}"] for n in range(count)]


def test_fractional_retry_after_is_waited_exactly(tmp_path: Path) -> None:
    """0.25 s is 0.25 s: one refusal teaches the gap, then touches go 0.25 s (and a hair) apart."""
    sent = send_fake(tmp_path, first_touches(4), SandboxConfig(line_gap=0.25), concurrency=1)
    assert sent.tally.sent == 4
    assert sent.refusals() == 1
    times = sent.accepted()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(0.25 <= gap < 0.28 for gap in gaps), gaps


def test_the_learned_gap_costs_one_refusal(tmp_path: Path) -> None:
    """A line with Chert's 600 s gap: one refusal, then every first touch goes when it may."""
    sent = send_fake(
        tmp_path, first_touches(5), SandboxConfig(line_gap=600), concurrency=1, max_wait=700
    )
    assert sent.tally.sent == 5
    assert sent.refusals() == 1
    assert sent.accepted()[-1] <= 4 * 600 * 1.02


def test_no_herd_after_a_success(tmp_path: Path) -> None:
    """Eight workers, six chats on one line: one refusal, then one chat per gap, never a burst."""
    sent = send_fake(tmp_path, first_touches(6), SandboxConfig(line_gap=10), concurrency=8)
    assert sent.tally.sent == 6
    assert sent.refusals() == 1  # a line sends no burst before it knows it may
    times = sent.accepted()
    assert all(b - a >= 10 for a, b in itertools.pairwise(times)), times


def test_line_gap_paces_before_any_refusal(tmp_path: Path) -> None:
    """--line-gap: 3 lines x 4 first touches, no 4002 at all, each line 0.25 s apart."""
    rows = [row for line in (LINE_A, LINE_B, "+15555550102") for row in first_touches(4, line)]
    sent = send_fake(tmp_path, rows, SandboxConfig(line_gap=0.25), pace=LinePace(gap=0.25))
    assert sent.tally.sent == 12
    assert sent.refusals() == 0
    assert max(sent.accepted()) <= 3 * 0.25 * 1.1


def test_line_daily_defers_past_the_cap_and_counts_the_journal(tmp_path: Path) -> None:
    """--line-daily 2: the third first touch waits a day; touches already sent count too."""
    sent = send_fake(tmp_path / "a", first_touches(3), SandboxConfig(), pace=LinePace(daily=2))
    assert (sent.tally.sent, sent.tally.pending) == (2, 1)
    assert set(sent.result.deferred) == {LINE_A}
    clock = FakeClock()
    earlier = [clock.wall() - 3600.0, clock.wall() - 60.0]  # two sent by an earlier run
    again = send_fake(
        tmp_path / "b",
        first_touches(3, offset=10),
        SandboxConfig(),
        pace=LinePace(daily=2),
        history={LINE_A: earlier},
    )
    assert (again.tally.sent, again.tally.pending) == (0, 3)
    deferred = again.result.deferred[LINE_A].timestamp()
    assert deferred == earlier[0] + 86_400


def test_follow_ups_are_never_held_by_first_touch_pacing(tmp_path: Path) -> None:
    """A line paced 600 s apart still sends the follow-ups of its chat at once."""
    rows = [[LINE_A, recipient(1), "first"], [LINE_A, recipient(1), "second"]]
    rows += [[LINE_A, recipient(1), "third"], [LINE_A, recipient(2), "other chat"]]
    sent = send_fake(tmp_path, rows, SandboxConfig(), pace=LinePace(gap=600), max_wait=700)
    assert sent.tally.sent == 4
    follow_ups = [r["t"] - sent.start for r in sent.requests if r["path"].endswith("/messages")]
    assert len(follow_ups) == 2
    assert max(follow_ups) < 1
    assert sorted(sent.accepted())[-1] >= 600


def test_wait_sends_past_max_wait_and_says_what_it_waits_for(tmp_path: Path) -> None:
    """--wait: a slot beyond --max-wait is waited for; the progress names the line and time."""
    sent = send_fake(
        tmp_path,
        first_touches(3),
        SandboxConfig(line_gap=100),
        pace=LinePace(gap=100),
        max_wait=10,
        wait=True,
    )
    assert sent.tally.sent == 3
    assert sent.result.deferred == {}
    assert sent.refusals() == 0
    assert sorted({line for seen in sent.waits_seen for line in seen}) == [LINE_A]


def test_without_wait_the_line_is_deferred(tmp_path: Path) -> None:
    """Without --wait, the same file ends with the line's rows pending until their slot."""
    sent = send_fake(
        tmp_path, first_touches(3), SandboxConfig(line_gap=100), pace=LinePace(gap=100), max_wait=10
    )
    assert (sent.tally.sent, sent.tally.pending) == (1, 2)
    assert set(sent.result.deferred) == {LINE_A}


def test_kill_during_wait_then_rerun_sends_each_once(tmp_path: Path) -> None:
    """SIGKILL while --wait waits for a line; the same command with --wait finishes it."""
    with running_sandbox(SandboxConfig(line_gap=1.0)) as box:
        path = sheet(tmp_path / "in.csv", first_touches(3))
        args = ["run", str(path), "--yes", "--rate", "0", "--wait", "--max-wait", "0.3"]
        env = cli_env(box)
        process = start_cli([*args, "--line-gap", "1"], env)
        wait_for_deliveries(box, 1)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=20)
        done = run_cli([*args, "--line-gap", "1"], env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert_exactly_once(box, 3)
        assert len(ledger(box)) == 3


def test_the_progress_says_what_it_waits_for() -> None:
    """The live display names the line and the time of its next first touch."""
    at = datetime(2026, 12, 2, 14, 20).timestamp()
    assert waiting({LINE_A: at}) == f"line {LINE_A}: next first touch at 14:20"


@pytest.mark.parametrize(
    ("free_at", "last", "expected"),
    [
        (600.0, 0.0, 600.0),  # the API said free at 600; the last touch was at 0
        (10.25, 10.0, 0.25),
        (5.0, None, None),  # no touch to measure from: nothing learned
        (90_000.0, 0.0, None),  # a day away: a daily cap, not a gap
    ],
)
def test_learned_gap(free_at: float, last: float | None, expected: float | None) -> None:
    """The gap is when the API says the line is free, minus its last accepted first touch."""
    assert learned_gap(free_at, last) == expected


def test_a_4002_on_a_follow_up_pauses_only_follow_ups() -> None:
    """A follow-up's 4002 holds the line's follow-ups for retry_after, not its first touches."""
    gate: LineGate[str] = LineGate(LinePace(gap=600))
    gate.capacity(100.0, 2.5, first_touch=False)
    assert gate.next_follow_up() == 102.5
    assert gate.next_first(100.0) == -math.inf
    started = gate.begin_first(100.0)
    gate.end_first(started, counted=True)
    assert gate.next_first(100.0) == 700.0 + margin(600.0)
    assert gate.next_follow_up() == 102.5
