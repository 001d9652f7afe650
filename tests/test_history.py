"""The send history in the per-user home: what a copy of a sheet, anywhere, must not send again."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from batcher.client import Credentials
from batcher.clock import Clock
from batcher.home import HISTORY
from batcher.journal import State as JournalState
from batcher.journal import read_journal
from batcher.pipeline import JobOptions
from batcher.render import run_summary
from batcher.running import RunOptions, RunReport, Target, run_file
from batcher.sandbox import RunningSandbox, SandboxConfig, running_sandbox
from batcher.sandbox.state import State
from batcher.sending import RetryPolicy, SendConfig
from tests.clocks import ShiftedClock
from tests.media_files import PNG, write
from tests.runs import (
    LINE_A,
    cli_env,
    direct_rows,
    ledger,
    posts,
    recipient,
    run_cli,
    sheet,
    start_cli,
    stats,
    wait_for_deliveries,
)

QUICK = RetryPolicy(attempts=5, total_seconds=30, wait_initial=0.01, wait_max=0.1, wait_jitter=0.01)
DAY = 86_400.0
ROWS = [
    [LINE_A, recipient(1), "Hello Sam"],
    [LINE_A, recipient(1), "One more thing, Sam"],  # a follow-up in the chat row 1 makes
    [LINE_A, recipient(2), "Hello Ana"],
]


def send(
    box: RunningSandbox,
    path: Path,
    *,
    out: Path | None = None,
    campaign: str = "",
    skip_contacted: float | None = None,
    clock: Clock | None = None,
) -> RunReport:
    """Run a handoff file in-process against the sandbox, at full speed."""
    options = RunOptions(
        job=JobOptions(path=path, out=out, campaign=campaign),
        send=SendConfig(rate=0.0, retry=QUICK),
        skip_contacted=skip_contacted,
    )
    target = Target(box.base_url, Credentials(box.secret, "bearer", box.tenant), "sandbox")
    if clock is None:
        return run_file(options, target)
    return run_file(options, target, clock=clock)


def results(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as stream:
        return list(csv.DictReader(stream))


def ids(path: Path) -> list[tuple[str, str, str]]:
    return [(row["status"], row["chat_id"], row["message_id"]) for row in results(path)]


class Days:
    """A shared wall clock, days ahead of the real one: a sandbox and a run "days later"."""

    def __init__(self) -> None:
        self.clock = ShiftedClock(0.0)

    def later(self, days: float) -> ShiftedClock:
        self.clock.shift = days * DAY
        return self.clock


@pytest.fixture
def days() -> Iterator[tuple[Days, RunningSandbox]]:
    """A sandbox whose clock is the run's: both move days ahead together."""
    shared = Days()
    config = SandboxConfig()
    with running_sandbox(config, state=State(config, clock=shared.clock.wall)) as box:
        yield shared, box


@pytest.fixture
def port() -> int:
    """A loopback port a sandbox can be restarted on (the account is its base URL)."""
    with running_sandbox(SandboxConfig()) as probe:
        return int(probe.root_url.rsplit(":", 1)[1])


def restarted(port: int, config: SandboxConfig) -> AbstractContextManager[RunningSandbox]:
    """A sandbox at that port with no memory at all: what a forgetful API would be."""
    return running_sandbox(config, state=State(config), port=port)


def test_copy_elsewhere_against_a_forgetful_api_sends_nothing(tmp_path: Path, port: int) -> None:
    """A copy of a sent sheet, renamed in another folder, to a restarted sandbox: nothing sent."""
    config = SandboxConfig()
    (tmp_path / "team").mkdir()
    original = sheet(tmp_path / "team" / "contacts.csv", ROWS)
    with restarted(port, config) as box:
        first = send(box, original)
        assert first.sent_now == 3
    sent = ids(first.output)
    assert all(status == "sent" and message for status, _, message in sent)
    copy = tmp_path / "elsewhere" / "campaign-final.csv"
    copy.parent.mkdir()
    shutil.copy(original, copy)
    with restarted(port, config) as box:  # no memory of any key
        again = send(box, copy, out=tmp_path / "elsewhere" / "out.csv")
        assert ledger(box) == []
        assert posts(box) == 0  # the one request is the opt-out pull, a read
    assert again.sent_now == 0
    assert again.sent_earlier == 3
    assert again.exit_code == 0
    assert ids(again.output) == sent
    notes = [row["error_message"] for row in results(again.output)]
    assert all(note.startswith("sent earlier, on 20") for note in notes), notes
    assert all("from another sheet or journal" in note for note in notes), notes


def history_keys(home: Path) -> set[str]:
    """The keys the home's send history holds as sent, any account."""
    with sqlite3.connect(home / HISTORY) as db:
        return {key for (key,) in db.execute("SELECT key FROM sent")}


def test_a_killed_runs_sends_are_never_sent_again_from_a_copy(
    tmp_path: Path, port: int, batch_home: Path
) -> None:
    """kill -9 mid-run, then a copy elsewhere to an API that forgot every key: what the
    killed run's journal holds as sent is not sent again, though the history lacked it."""
    config = SandboxConfig()
    original = sheet(tmp_path / "contacts.csv", direct_rows(60))
    with restarted(port, config) as box:
        first = start_cli(["run", str(original), "--yes", "--rate", "20"], cli_env(box))
        wait_for_deliveries(box, 8)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    view = read_journal(tmp_path / "contacts.results.journal.sqlite")
    assert view is not None
    sent = {key for key, record in view.records.items() if record.state is JournalState.SENT}
    assert sent
    # Killed before it shared them: the history alone would send them all again.
    assert sent - history_keys(batch_home), "shared already: nothing left to test"
    copy = tmp_path / "elsewhere" / "copy.csv"
    copy.parent.mkdir()
    shutil.copy(original, copy)
    with restarted(port, config) as box:
        done = run_cli(["run", str(copy), "--yes", "--rate", "0"], cli_env(box))
        assert done.returncode == 0, done.stdout + done.stderr
        again = {message["idempotency_key"] for message in ledger(box)}
    assert not again & sent
    assert len(again) == 60 - len(sent)
    assert sent <= history_keys(batch_home)


def test_two_accounts_never_share_history(tmp_path: Path, batch_home: Path) -> None:
    """The same sheet to another tenant is sent there: the history is per account."""
    path = sheet(tmp_path / "in.csv", ROWS)
    with running_sandbox(SandboxConfig(tenant="north")) as north:
        assert send(north, path, out=tmp_path / "north.csv").sent_now == 3
    with running_sandbox(SandboxConfig(tenant="south")) as south:
        report = send(south, path, out=tmp_path / "south.csv")
        assert report.sent_now == 3
        assert len(ledger(south)) == 3
    stored = b"".join(p.read_bytes() for p in batch_home.iterdir() if p.is_file())
    assert north.secret.encode() not in stored
    assert south.secret.encode() not in stored


def test_uploads_are_reused_across_journals(box: RunningSandbox, tmp_path: Path) -> None:
    """A new journal reuses the attachment id the history holds: no second upload."""
    write(tmp_path / "banner.png", PNG)
    headers = ["From", "To", "Text", "Media"]
    first = sheet(tmp_path / "a.csv", [[LINE_A, recipient(1), "hi", "banner.png"]], headers)
    second = sheet(tmp_path / "b.csv", [[LINE_A, recipient(2), "hello", "banner.png"]], headers)
    send(box, first)
    report = send(box, second)
    assert report.sent_now == 1
    assert stats(box)["uploads"] == 1
    media = {
        part["attachment_id"] for m in ledger(box) for part in m["parts"] if part["type"] == "media"
    }
    assert len(media) == 1


def test_422_on_a_derived_key_is_not_fix_the_row(
    box: RunningSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the history, a re-upload puts another body under a sent key: not "fix the row"."""
    write(tmp_path / "banner.png", PNG)
    headers = ["From", "To", "Text", "Media"]
    path = sheet(tmp_path / "in.csv", [[LINE_A, recipient(1), "hi", "banner.png"]], headers)
    send(box, path)
    monkeypatch.setenv("CHERT_BATCH_HOME", str(tmp_path / "another-home"))
    report = send(box, path, out=tmp_path / "other.csv")
    (row,) = results(report.output)
    assert row["status"] == "failed"
    assert "sent earlier from another sheet or journal" in row["error_message"]
    assert "Nothing to fix in the row" in row["error_message"]
    assert "fix the row" not in row["error_message"].replace("Nothing to fix in the row", "")
    assert row["error_code"] == ""
    assert len(ledger(box)) == 1
    summary = run_summary(report, "chert-batch run in.csv")
    assert "Next: fix" not in summary
    assert (
        "Nothing to fix in 1 failed row whose key Chert already had with other content: each "
        "was sent earlier, from another sheet or journal (see its error_message)."
    ) in summary


def test_a_replay_is_reported_as_sent_earlier(
    days: tuple[Days, RunningSandbox], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key Chert answers with its original message counts as sent earlier, not in this run."""
    shared, box = days
    path = sheet(tmp_path / "in.csv", ROWS)
    first = send(box, path, clock=shared.clock)
    monkeypatch.setenv("CHERT_BATCH_HOME", str(tmp_path / "another-home"))
    report = send(box, path, out=tmp_path / "other.csv", clock=shared.later(1))
    assert (report.sent_now, report.sent_earlier) == (0, 3)
    assert ids(report.output) == ids(first.output)
    assert stats(box)["replays"] == 3
    notes = [row["error_message"] for row in results(report.output)]
    assert all(note.startswith("sent earlier, on 20") for note in notes), notes


def test_skip_contacted(days: tuple[Days, RunningSandbox], tmp_path: Path) -> None:
    """--skip-contacted DAYS: recipients first touched lately, in any campaign, are skipped."""
    shared, box = days
    sheet(tmp_path / "spring.csv", [[LINE_A, recipient(1), "Spring sale"]])
    send(box, tmp_path / "spring.csv", campaign="spring", clock=shared.clock)
    when = results(tmp_path / "spring.results.csv")[0]["sent_at"][:10]
    rows = [
        [LINE_A, recipient(1), "Summer sale"],
        [LINE_A, recipient(3), "Summer sale"],
        [LINE_A, f"{recipient(4)}; {recipient(1)}", "Summer sale, together"],
    ]
    path = sheet(tmp_path / "summer.csv", rows)
    later = shared.later(3)
    report = send(box, path, campaign="summer", skip_contacted=7, clock=later)
    statuses = [(row["status"], row["error_message"]) for row in results(report.output)]
    note = f"contacted on {when} (--skip-contacted 7); not sent"
    assert statuses == [("skipped", note), ("sent", ""), ("skipped", note)]
    assert [m["to"] for m in ledger(box)] == [[recipient(1)], [recipient(3)]]
    assert report.exit_code == 0
    again = send(
        box, path, campaign="autumn", out=tmp_path / "autumn.csv", skip_contacted=2, clock=later
    )
    # Spring's touch is 3 days old now; summer's, to recipient 3, is from today.
    assert [row["status"] for row in results(again.output)] == ["sent", "skipped", "sent"]


def test_cli_skip_contacted_and_sent_earlier(box: RunningSandbox, tmp_path: Path) -> None:
    """From the command line: --skip-contacted, and --json counting messages sent earlier."""
    path = sheet(tmp_path / "in.csv", ROWS)
    env = cli_env(box)
    first = run_cli(["run", str(path), "--yes", "--rate", "0"], env)
    assert first.returncode == 0, first.stdout + first.stderr
    copy = tmp_path / "copy.csv"
    shutil.copy(path, copy)
    again = run_cli(["run", str(copy), "--yes", "--rate", "0", "--json"], env)
    assert again.returncode == 0, again.stdout + again.stderr
    summary = json.loads(again.stdout)
    assert (summary["sent_now"], summary["sent_earlier"]) == (0, 3)
    out = str(tmp_path / "next.csv")
    options = ["--campaign", "next", "--out", out, "--skip-contacted", "1", "--json"]
    other = run_cli(["run", str(path), "--yes", *options], env)
    assert other.returncode == 0, other.stdout + other.stderr
    assert json.loads(other.stdout)["by_status"]["skipped"] == 3
    assert len(ledger(box)) == 3
