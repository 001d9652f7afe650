"""`run --window`: quiet hours on a fake clock over loopback, and from the command line.

The fake clock starts at 2027-01-15 08:00 UTC: midnight in Los Angeles, 03:00 in
New York, 08:00 in London, 19:00 in Sydney.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import anyio
import httpx
import pytest
from click.testing import CliRunner

from batcher.caller import Caller, RetryPolicy
from batcher.cli import main
from batcher.client import ChertClient, Credentials
from batcher.journal import Journal
from batcher.pipeline import JobOptions, prepare
from batcher.quiet import parse_window
from batcher.render import confirmation, waiting
from batcher.running import Preview, RunOptions, Target, run_file
from batcher.sandbox import RunningSandbox, SandboxConfig, running_sandbox
from batcher.sandbox.state import State
from batcher.sending import SendConfig, Sender, SendResult, Tally
from tests.clocks import START_WALL, FakeClock
from tests.quiet_numbers import AU_MOBILE, DAY, HOUR, LA, LA_2, LONDON, NY, TOLL_FREE, utc
from tests.runs import LINE_A, cli_env, ledger, run_cli, sheet

QUICK = RetryPolicy(attempts=3, total_seconds=60, wait_initial=0.01, wait_max=0.1, wait_jitter=0)


@dataclass
class Sent:
    """What a send on the fake clock did: the sender's account, the sandbox's, the journal's."""

    result: SendResult
    tally: Tally
    delivered: dict[str, str]  # a message's text → when the sandbox delivered it (UTC)
    pending: dict[int, str]  # row → the journal's message for what it left pending
    progress: list[str]  # what the live display said it waits for, in order


def send_windowed(
    tmp_path: Path,
    rows: list[list[str]],
    window: str,
    *,
    wait: bool = False,
    wall: float = START_WALL,
    rate: float = 0.0,
) -> Sent:
    """Plan the rows and send them under --window on a fake clock the sandbox shares."""
    clock = FakeClock(wall)
    tmp_path.mkdir(exist_ok=True)
    plan = prepare(JobOptions(path=sheet(tmp_path / "in.csv", rows))).plan
    journal = Journal(tmp_path / "in.journal.sqlite")
    config = SendConfig(rate=rate, retry=QUICK, wait=wait, window=parse_window(window))
    progress: list[str] = []

    def seen(tally: Tally) -> None:
        said = waiting(tally.waiting, tally.outside)
        if said and (not progress or progress[-1] != said):
            progress.append(said)

    box_config = SandboxConfig()
    with running_sandbox(box_config, state=State(box_config, clock=clock.wall)) as box:

        async def go() -> Sender:
            async with httpx.AsyncClient(transport=clock.transport()) as http:
                client = ChertClient(http, box.base_url, Credentials(box.secret))
                caller = Caller(client, clock, rate=rate, retry=QUICK, jitter=lambda: 0.0)
                sender = Sender(caller, journal, config, clock=clock, on_progress=seen)
                await sender.send(plan.chats, {}, {})
                return sender

        sender = anyio.run(go)
        ledger = httpx.get(f"{box.root_url}/_sandbox/messages").json()["messages"]
    records = journal.records(request.key for request in plan.requests)
    journal.close()
    delivered = {m["parts"][0]["value"]: m["created_at"] for m in ledger}
    pending = {r.row: r.error_message for r in records.values() if r.error_message}
    return Sent(sender.result, sender.tally, delivered, pending, progress)


def test_wait_sends_each_recipient_when_their_window_opens(tmp_path: Path) -> None:
    """--wait: each message goes at 09:00 its recipient's time; the progress says who waits."""
    rows = [[LINE_A, LA, "to LA"], [LINE_A, NY, "to NY"], [LINE_A, LONDON, "to London"]]
    rows += [[LINE_A, LA_2, "to LA again"]]
    sent = send_windowed(tmp_path, rows, DAY, wait=True)
    assert (sent.tally.sent, sent.tally.pending) == (4, 0)
    assert sent.delivered == {
        "to London": "2027-01-15T09:00:00Z",
        "to NY": "2027-01-15T14:00:00Z",
        "to LA": "2027-01-15T17:00:00Z",
        "to LA again": "2027-01-15T17:00:00Z",
    }
    assert sent.progress[0] == f"outside 09:00-20:00 for {LA} until 09:00"
    assert sent.progress[-3:] == [
        f"outside 09:00-20:00 for {LONDON} until 09:00 (and 3 more chats)",
        f"outside 09:00-20:00 for {NY} until 09:00 (and 2 more chats)",
        f"outside 09:00-20:00 for {LA} until 09:00 (and 1 more chat)",
    ]
    assert sent.result.outside == 0


def test_without_wait_outside_the_window_ends_pending(tmp_path: Path) -> None:
    """No --wait: what is outside ends pending with who and until when; the rest is sent."""
    rows = [[LINE_A, LA, "to LA"], [LINE_A, AU_MOBILE, "to Australia"]]
    rows += [[LINE_A, LA, "LA follow-up"]]
    sent = send_windowed(tmp_path, rows, DAY)
    assert sent.delivered == {"to Australia": "2027-01-15T08:00:00Z"}
    assert sent.pending == {
        2: f"outside 09:00-20:00 for {LA} (America/Los_Angeles) until 09:00",
    }
    assert (sent.tally.sent, sent.tally.pending) == (1, 2)  # the follow-up waits with its chat
    assert sent.result.outside == 1
    assert sent.result.window_opens == datetime(2027, 1, 15, 17, tzinfo=UTC)


def test_a_wrapping_window_sends_past_midnight(tmp_path: Path) -> None:
    """20:00-02:00: LA's midnight is inside; New York's 03:00 is not, until 20:00 there."""
    rows = [[LINE_A, LA, "to LA"], [LINE_A, NY, "to NY"]]
    sent = send_windowed(tmp_path, rows, "20:00-02:00", wait=True)
    assert sent.delivered == {"to LA": "2027-01-15T08:00:00Z", "to NY": "2027-01-16T01:00:00Z"}


def test_a_group_waits_for_all_its_recipients(tmp_path: Path) -> None:
    """A group of LA and London goes when both are inside: 17:00 UTC, 09:00 in LA."""
    rows = [[LINE_A, f"{LA};{LONDON}", "to both"], [LINE_A, LONDON, "to London"]]
    sent = send_windowed(tmp_path, rows, DAY, wait=True)
    assert sent.delivered == {
        "to London": "2027-01-15T09:00:00Z",
        "to both": "2027-01-15T17:00:00Z",
    }


def test_a_multi_zone_number_waits_for_all_its_zones(tmp_path: Path) -> None:
    """A +1 toll-free number may be anywhere from Guam to Pago Pago: 23:00-23:30 UTC only."""
    rows = [[LINE_A, TOLL_FREE, "toll free"]]
    sent = send_windowed(tmp_path, rows, DAY, wait=True)
    assert sent.delivered == {"toll free": "2027-01-15T23:00:00Z"}
    never = send_windowed(tmp_path / "never", rows, "09:00-10:00", wait=True)
    assert never.delivered == {}
    assert never.pending[2].startswith("no moment of 09:00-10:00 is inside every time zone")


def test_a_follow_up_is_checked_just_before_it_goes(tmp_path: Path) -> None:
    """A chat created at 19:59:59 in LA: its follow-up, 2 s later by the rate, waits till 09:00."""
    rows = [[LINE_A, LA, "first"], [LINE_A, LA, "second"]]
    before_close = utc("2027-01-16T03:59:59")  # 19:59:59 in LA
    sent = send_windowed(tmp_path / "a", rows, DAY, wall=before_close, rate=0.5)
    assert sent.delivered == {"first": "2027-01-16T03:59:59Z"}
    assert sent.pending == {3: f"outside 09:00-20:00 for {LA} (America/Los_Angeles) until 09:00"}
    waited = send_windowed(tmp_path / "b", rows, DAY, wall=before_close, rate=0.5, wait=True)
    assert waited.delivered == {"first": "2027-01-16T03:59:59Z", "second": "2027-01-16T17:00:00Z"}


# run --window from the command line, and the confirmation -------------------


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("9-20", "'9-20' is not a window of local time; give it as HH:MM-HH:MM, such as"),
        ("25:00-02:00", "'25:00-02:00' has a time that is not on a clock"),
        ("09:00-09:00", "'09:00-09:00' opens and closes at the same time"),
    ],
)
def test_a_bad_window_is_refused_at_parse_time(tmp_path: Path, value: str, said: str) -> None:
    """Exit 2 before anything is read or sent, naming the option and the value."""
    path = sheet(tmp_path / "in.csv", [[LINE_A, LA, "Hi"]])
    done = CliRunner().invoke(main, ["run", str(path), "--yes", "--window", value])
    assert done.exit_code == 2, done.output
    assert f"Invalid value for '--window': {said}" in done.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def results(path: Path) -> list[dict[str, str]]:
    """The rows of a results CSV."""
    with path.open(encoding="utf-8-sig", newline="") as stream:
        return list(csv.DictReader(stream))


def london_hour() -> str:
    """A --window from an hour ago to an hour ahead in London: LA, 7-8 h behind, is outside."""
    now = datetime.now(ZoneInfo("Europe/London"))
    return f"{now - timedelta(hours=1):%H:%M}-{now + timedelta(hours=1):%H:%M}"


def test_run_outside_the_window_leaves_rows_pending_and_says_when(
    box: RunningSandbox, tmp_path: Path
) -> None:
    """The real clock: London's row is sent, LA's ends pending; the summary says when to rerun."""
    path = sheet(tmp_path / "in.csv", [[LINE_A, LA, "to LA"], [LINE_A, LONDON, "to London"]])
    window = london_hour()
    args = ["run", str(path), "--yes", "--rate", "0", "--window", window]
    done = run_cli(args, cli_env(box))
    assert done.returncode == 1, done.stdout + done.stderr
    rows = results(tmp_path / "in.results.csv")
    assert [row["status"] for row in rows] == ["pending", "sent"]
    assert rows[0]["error_message"] == (
        f"outside {window} for {LA} (America/Los_Angeles) until {window[:5]}"
    )
    assert (
        f"1 message is outside --window {window} in their recipients' time: the first can go at "
    ) in done.stdout
    again = run_cli([*args, "--json"], cli_env(box))
    summary = json.loads(again.stdout)
    assert summary["outside_window"]["window"] == window
    assert summary["outside_window"]["messages"] == 1
    opens = datetime.fromisoformat(summary["outside_window"]["opens"])
    assert 5.9 * HOUR <= opens.timestamp() - time.time() <= 7 * HOUR  # 6 h while DST differs
    assert [m["to"] for m in ledger(box)] == [[LONDON]]


def test_the_confirmation_counts_who_it_is_night_for(box: RunningSandbox, tmp_path: Path) -> None:
    """No --window: "it is night now ... for 3 of the 5 recipients" and the option to use."""
    rows = [[LINE_A, f"{LA};{NY}", "group"], [LINE_A, LA_2, "LA"], [LINE_A, LONDON, "London"]]
    rows += [[LINE_A, AU_MOBILE, "Australia"]]
    path = sheet(tmp_path / "in.csv", rows)
    shown: list[str] = []

    def confirm(preview: Preview) -> bool:
        shown.append(confirmation(preview, "sandbox", 10))
        return False

    target = Target(box.base_url, Credentials(box.secret), "sandbox")
    for window in (None, parse_window(DAY)):
        options = RunOptions(job=JobOptions(path=path), send=SendConfig(window=window))
        report = run_file(options, target, confirm=confirm, clock=FakeClock())
        assert report.cancelled
    without, within = shown
    assert without.splitlines()[-1] == (
        "It is night now (21:00-08:00 their time) for 3 of the 5 recipients. --window "
        "09:00-20:00 sends to each only between those hours of their own time."
    )
    assert "night" not in within
    assert ledger(box) == []
