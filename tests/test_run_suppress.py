"""run and validate apply the opt-out list and --suppress files: over loopback, real files."""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import anyio
import httpx
import pytest

from batcher.caller import Caller
from batcher.client import ChertClient, Credentials
from batcher.clock import SYSTEM_CLOCK
from batcher.errors import InputError
from batcher.home import account_id
from batcher.journal import Journal
from batcher.model import Status
from batcher.optouts import BY_HAND, OptOut, OptOuts
from batcher.pipeline import JobOptions, prepare, validate_file
from batcher.render import confirmation
from batcher.running import (
    PULL_EVERY,
    Preview,
    RunOptions,
    RunReport,
    Target,
    _pull_while_sending,
    _Pulls,
    run_file,
)
from batcher.sandbox import RunningSandbox
from batcher.sending import RetryPolicy, SendConfig, Sender
from batcher.suppression import suppression_reason
from tests.clocks import FakeClock
from tests.runs import (
    LINE_A,
    cli_env,
    ledger,
    recipient,
    run_cli,
    sheet,
    start_cli,
    wait_for_deliveries,
)
from tests.sheets import write_csv, write_xlsx

QUICK = RetryPolicy(attempts=3, total_seconds=30, wait_initial=0.01, wait_max=0.1, wait_jitter=0)
LISTED, OTHER, MEMBER, LAST = recipient(1), recipient(2), recipient(3), recipient(4)
# Rows 2-6: a direct message to LISTED, one to OTHER, a group with LISTED in it, one to
# LAST, and a follow-up to LISTED (the same chat as row 2).
ROWS = [
    [LINE_A, LISTED, "to listed"],
    [LINE_A, OTHER, "to other"],
    [LINE_A, f"{MEMBER}, {LISTED}", "to the group"],
    [LINE_A, LAST, "to last"],
    [LINE_A, LISTED, "listed follow-up"],
]
EXPECTED = ["suppressed", "sent", "suppressed", "sent", "suppressed"]
OPTED_AT = "2026-11-30T12:00:00Z"


def run(
    box: RunningSandbox, path: Path, *, suppress: tuple[Path, ...] = (), pull: bool = True
) -> RunReport:
    """Run a handoff file in-process against the sandbox."""
    options = RunOptions(
        job=JobOptions(path=path, suppress=suppress),
        send=SendConfig(rate=0.0, retry=QUICK),
        pull=pull,
    )
    return run_file(options, Target(box.base_url, Credentials(box.secret), "sandbox"))


def results(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as stream:
        return list(csv.DictReader(stream))


def api_requests(box: RunningSandbox) -> list[tuple[str, str]]:
    """Every API request the sandbox saw: method and path."""
    seen = httpx.get(f"{box.root_url}/_sandbox/requests").json()["requests"]
    return [(entry["method"], entry["path"]) for entry in seen]


def delivered_to(box: RunningSandbox) -> list[str]:
    """The text of every message the sandbox delivered, in order."""
    return [message["parts"][0]["value"] for message in ledger(box)]


def reply(box: RunningSandbox, sender: str, text: str) -> None:
    """A recipient's reply to LINE_A, as the sandbox's event log will hold it."""
    answer = httpx.post(
        f"{box.root_url}/_sandbox/inbound", json={"from": sender, "line": LINE_A, "text": text}
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("recipients", "optouts", "files", "expected"),
    [
        ([OTHER], {}, {}, None),
        (
            [LISTED],
            {LISTED: OptOut(LISTED, OPTED_AT, BY_HAND)},
            {},
            f"opted out on 2026-11-30 (added by hand): {LISTED}",
        ),
        ([LISTED], {}, {LISTED: "dnc.csv"}, f"on suppression list dnc.csv: {LISTED}"),
        ([OTHER, LISTED], {}, {LISTED: "dnc.csv"}, f"on suppression list dnc.csv: {LISTED}"),
        # The first recipient listed is named; for one recipient, the opt-out list first.
        (
            [MEMBER, LISTED],
            {LISTED: OptOut(LISTED, OPTED_AT, "reply to +15555550100 via x")},
            {MEMBER: "a.csv", LISTED: "b.csv"},
            f"on suppression list a.csv: {MEMBER}",
        ),
        (
            [LISTED],
            {LISTED: OptOut(LISTED, OPTED_AT, "reply to +15555550100 via x")},
            {LISTED: "b.csv"},
            f"opted out on 2026-11-30 (reply to +15555550100 via x): {LISTED}",
        ),
        ([], {LISTED: OptOut(LISTED, OPTED_AT, BY_HAND)}, {}, None),
    ],
)
def test_suppression_reason(
    recipients: list[str],
    optouts: dict[str, OptOut],
    files: dict[str, str],
    expected: str | None,
) -> None:
    """The one rule: the first listed recipient, and where it is listed."""
    assert suppression_reason(recipients, optouts, files) == expected


def _opt_out_list(folder: Path, home: Path) -> tuple[Path, ...]:
    with OptOuts(home) as store:
        store.add([OptOut(LISTED, OPTED_AT, BY_HAND)])
    return ()


def _csv_file(folder: Path, home: Path) -> tuple[Path, ...]:
    rows = [["Name", "Phone"], ["Ana", LISTED.removeprefix("+1")], ["Bo", recipient(9)]]
    return (write_csv(folder / "dnc.csv", rows),)


def _xlsx_file(folder: Path, home: Path) -> tuple[Path, ...]:
    rows = [["Mobile"], [LISTED], [recipient(9)]]
    return (write_xlsx(folder / "dnc.xlsx", rows),)


def _bare_numbers(folder: Path, home: Path) -> tuple[Path, ...]:
    path = folder / "dnc.txt"
    path.write_text(f"{recipient(9)}\n(415) 555-{LISTED[-4:]}\n", encoding="utf-8")
    return (path,)


SOURCES = {
    "opt-out list": (_opt_out_list, f"opted out on 2026-11-30 (added by hand): {LISTED}"),
    "csv": (_csv_file, f"on suppression list dnc.csv: {LISTED}"),
    "xlsx": (_xlsx_file, f"on suppression list dnc.xlsx: {LISTED}"),
    "one number a line": (_bare_numbers, f"on suppression list dnc.txt: {LISTED}"),
}


@pytest.mark.parametrize("source", list(SOURCES))
def test_each_list_suppresses_exactly_its_rows_with_no_request(
    box: RunningSandbox, tmp_path: Path, batch_home: Path, source: str
) -> None:
    """Rows to a listed number, its group and its follow-up end suppressed, never requested."""
    make, reason = SOURCES[source]
    suppress = make(tmp_path, batch_home)
    report = run(box, sheet(tmp_path / "in.csv", ROWS), suppress=suppress)
    rows = results(report.output)
    assert [row["status"] for row in rows] == EXPECTED
    assert {rows[n]["error_message"] for n in (0, 2, 4)} == {reason}
    assert delivered_to(box) == ["to other", "to last"]
    posts = [path for method, path in api_requests(box) if method == "POST"]
    assert posts == ["/api/v1/chats"] * 2
    assert (report.sent_now, report.exit_code) == (2, 0)
    assert report.by_status[Status.SUPPRESSED] == 3


def test_validate_shows_the_same_and_makes_no_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """validate marks the same rows suppressed; with no home yet, it creates none."""
    home = tmp_path / "no home yet"
    monkeypatch.setenv("CHERT_BATCH_HOME", str(home))
    (dnc,) = _csv_file(tmp_path, home)
    path = sheet(tmp_path / "in.csv", ROWS)
    report = validate_file(JobOptions(path=path, suppress=(dnc,)))
    rows = results(report.output)
    assert [row["status"] for row in rows] == [
        "suppressed",
        "pending",
        "suppressed",
        "pending",
        "suppressed",
    ]
    assert rows[2]["error_message"] == f"on suppression list dnc.csv: {LISTED}"
    assert report.exit_code == 0
    assert not home.exists()


def test_validate_reads_the_opt_out_list(tmp_path: Path, batch_home: Path) -> None:
    """validate reads the home's list as it stands and leaves it as it was."""
    _opt_out_list(tmp_path, batch_home)
    before = (batch_home / "optouts.sqlite").read_bytes()
    report = validate_file(JobOptions(path=sheet(tmp_path / "in.csv", ROWS)))
    rows = results(report.output)
    assert [row["status"] for row in rows][::2] == ["suppressed"] * 3
    assert rows[0]["error_message"] == f"opted out on 2026-11-30 (added by hand): {LISTED}"
    assert (batch_home / "optouts.sqlite").read_bytes() == before


def test_pulled_stop_suppresses_and_stop_by_tomorrow_does_not(
    box: RunningSandbox, tmp_path: Path
) -> None:
    """run pulls first: "Stop!" opts out, "stop by tomorrow" is a message."""
    reply(box, LISTED, "Stop!")
    reply(box, OTHER, "stop by tomorrow")
    report = run(box, sheet(tmp_path / "in.csv", ROWS))
    rows = results(report.output)
    assert [row["status"] for row in rows] == EXPECTED
    today = datetime.now(UTC).date().isoformat()
    account = account_id(box.base_url, "", box.secret)
    assert rows[0]["error_message"] == (
        f"opted out on {today} (reply to {LINE_A} via {account}): {LISTED}"
    )
    assert report.pulled == 1
    assert report.to_json()["optouts_pulled"] == 1
    assert delivered_to(box) == ["to other", "to last"]


def test_no_pull_reads_no_event_log(box: RunningSandbox, tmp_path: Path) -> None:
    """--no-pull: the STOP in the event log is not read, the list applies as it is."""
    reply(box, LISTED, "STOP")
    report = run(box, sheet(tmp_path / "in.csv", ROWS), pull=False)
    assert [row["status"] for row in results(report.output)] == ["sent"] * 5
    assert ("GET", "/api/v1/events") not in api_requests(box)


def test_a_results_sheet_fed_back_keeps_suppressed_rows(
    box: RunningSandbox, tmp_path: Path
) -> None:
    """Without the --suppress file, the results sheet's suppressed rows stay so, unsent."""
    (dnc,) = _csv_file(tmp_path, tmp_path)
    first = run(box, sheet(tmp_path / "in.csv", ROWS), suppress=(dnc,))
    again = run(box, first.output)
    rows = results(again.output)
    assert [row["status"] for row in rows] == EXPECTED
    assert rows[0]["error_message"] == f"on suppression list dnc.csv: {LISTED}"
    assert again.sent_now == 0
    assert len(ledger(box)) == 2


def test_a_bad_number_in_a_suppress_file_sends_nothing(box: RunningSandbox, tmp_path: Path) -> None:
    """A garbled line may be someone who must not be messaged: nothing is sent, it is named."""
    dnc = write_csv(tmp_path / "dnc.csv", [["Phone"], [LISTED], ["555-01"]])
    with pytest.raises(InputError) as raised:
        run(box, sheet(tmp_path / "in.csv", ROWS), suppress=(dnc,))
    assert str(raised.value).startswith(
        f"--suppress {dnc}: 1 number cannot be used, so nothing was sent:\n  line 3, column Phone"
    )
    assert "in dnc.csv, then run again" in str(raised.value)
    assert ledger(box) == []


def test_validate_next_repeats_every_suppress_file(box: RunningSandbox, tmp_path: Path) -> None:
    """validate's Next: command carries each --suppress, in order."""
    (dnc,) = _csv_file(tmp_path, tmp_path)
    (bare,) = _bare_numbers(tmp_path, tmp_path)
    path = sheet(tmp_path / "in.csv", ROWS)
    done = run_cli(
        ["validate", str(path), "--suppress", str(dnc), "--suppress", str(bare)], cli_env(box)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"run {path} --suppress {dnc} --suppress {bare}" in done.stdout
    assert "suppressed       3" in done.stdout


def test_an_account_without_an_event_log_goes_on(box: RunningSandbox, tmp_path: Path) -> None:
    """GET /events answering 404 is no failure: -v says so, and the run goes on."""
    env = cli_env(box, CHERT_BASE_URL=f"{box.root_url}/api/v1/elsewhere")
    done = run_cli(["run", str(sheet(tmp_path / "in.csv", ROWS[:1])), "--yes", "-v"], env)
    assert "the account has no event log (GET /events:" in done.stderr
    assert ("POST", "/api/v1/elsewhere/chats") in api_requests(box)


def test_a_failed_pull_stops_the_run_before_sending(tmp_path: Path) -> None:
    """No event log to read (nothing listens): exit 3, nothing sent, and --no-pull named."""
    env = {"CHERT_SIGNING_SECRET": "s3cret-value", "CHERT_BASE_URL": "http://127.0.0.1:9/api/v1"}
    done = run_cli(["run", str(sheet(tmp_path / "in.csv", ROWS)), "--yes"], {**os.environ, **env})
    assert done.returncode == 3, done.stdout + done.stderr
    assert "the opt-outs were not pulled, so nothing was sent: " in done.stdout
    assert "--no-pull sends with the opt-out list as it is" in done.stdout
    assert {row["status"] for row in results(tmp_path / "in.results.csv")} == {"pending"}


def test_a_stop_pulled_during_a_wait_run_stops_that_persons_messages(
    box: RunningSandbox, tmp_path: Path
) -> None:
    """A STOP replied while a --wait run paces its line: that person's rows end suppressed."""
    rows = [
        [LINE_A, OTHER, "first"],
        [LINE_A, LISTED, "to listed"],
        [LINE_A, LISTED, "listed follow-up"],
        [LINE_A, LAST, "to last"],
    ]
    path = sheet(tmp_path / "in.csv", rows)
    args = ["run", str(path), "--yes", "--wait", "--concurrency", "1", "--line-gap", "3"]
    process = start_cli([*args, "--pull-every", "0.2"], cli_env(box))
    try:
        wait_for_deliveries(box, 1)
        seen = time.monotonic()
        reply(box, LISTED, "STOP")
        assert time.monotonic() - seen < 1, "the STOP came in too late to test anything"
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stdout + stderr
    statuses = [row["status"] for row in results(tmp_path / "in.results.csv")]
    assert statuses == ["sent", "suppressed", "suppressed", "sent"]
    assert delivered_to(box) == ["first", "to last"]
    assert "Pulled 1 new opt-out from the account's replies." in stdout


def test_an_opt_out_added_by_another_process_stops_the_rest(
    box: RunningSandbox, tmp_path: Path
) -> None:
    """`optouts add` in another process while a run paces its line: those rows are not sent."""
    rows = [
        [LINE_A, OTHER, "first"],
        [LINE_A, LISTED, "to listed"],
        [LINE_A, LISTED, "listed follow-up"],
        [LINE_A, LAST, "to last"],
    ]
    path = sheet(tmp_path / "in.csv", rows)
    args = ["run", str(path), "--yes", "--wait", "--concurrency", "1", "--line-gap", "3"]
    env = cli_env(box)
    process = start_cli([*args, "--no-pull"], env)
    try:
        wait_for_deliveries(box, 1)
        seen = time.monotonic()
        added = run_cli(["optouts", "add", LISTED], env)
        assert added.returncode == 0, added.stdout + added.stderr
        assert time.monotonic() - seen < 2, "the opt-out came in too late to test anything"
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stdout + stderr
    statuses = [row["status"] for row in results(tmp_path / "in.results.csv")]
    assert statuses == ["sent", "suppressed", "suppressed", "sent"]
    assert delivered_to(box) == ["first", "to last"]


def test_the_check_just_before_the_request_holds_it(box: RunningSandbox, tmp_path: Path) -> None:
    """Listed while its request waited for its turn: not made, and its follow-up neither."""
    plan = prepare(JobOptions(path=sheet(tmp_path / "in.csv", [ROWS[0], ROWS[4]]))).plan
    calls: list[tuple[str, ...]] = []

    def screen(recipients: Sequence[str]) -> str | None:
        calls.append(tuple(recipients))  # clear when the chat is taken up, listed after
        return None if len(calls) == 1 else f"on suppression list late.csv: {LISTED}"

    journal = Journal(tmp_path / "in.journal.sqlite")

    async def go() -> Sender:
        async with httpx.AsyncClient() as http:
            client = ChertClient(http, box.base_url, Credentials(box.secret))
            caller = Caller(client, SYSTEM_CLOCK, rate=0.0, retry=QUICK)
            sender = Sender(caller, journal, SendConfig(rate=0.0, retry=QUICK), screen=screen)
            await sender.send(plan.chats, {}, {})
            return sender

    sender = anyio.run(go)
    journal.close()
    # Taken up, checked again just before it went out (held), then suppressed.
    assert calls == [(LISTED,)] * 3
    first = next(iter(plan.requests)).key
    assert sender.result.suppressed == {first: f"on suppression list late.csv: {LISTED}"}
    assert (sender.tally.sent, sender.tally.pending) == (0, 2)
    assert api_requests(box) == []


def test_while_sending_it_pulls_every_ten_minutes_of_the_runs_clock(
    box: RunningSandbox, batch_home: Path
) -> None:
    """On the run's (fake) clock: a pull at 600, 1200 and 1800 s; what they find is counted."""
    clock = FakeClock()
    reply(box, LISTED, "STOP")

    async def go() -> int:
        async with httpx.AsyncClient(transport=clock.transport()) as http:
            client = ChertClient(http, box.base_url, Credentials(box.secret))
            with OptOuts(batch_home) as store:
                pulls = _Pulls(store, PULL_EVERY)
                async with anyio.create_task_group() as group:
                    group.start_soon(_pull_while_sending, client, "the account", pulls, clock)
                    await clock.sleep(1900)
                    group.cancel_scope.cancel()
                assert [entry.number for entry in store.entries()] == [LISTED]
                return pulls.added

    assert anyio.run(go) == 1
    assert [path for _, path in api_requests(box)] == ["/api/v1/events"] * 3


def test_the_confirmation_counts_what_the_pull_at_the_start_found(
    box: RunningSandbox, tmp_path: Path
) -> None:
    """A STOP replied before the run: the confirmation already leaves its rows out."""
    reply(box, LISTED, "STOP")
    shown: list[str] = []

    def confirm(preview: Preview) -> bool:
        shown.append(confirmation(preview, "sandbox", 10))
        return False

    options = RunOptions(job=JobOptions(path=sheet(tmp_path / "in.csv", ROWS)))
    target = Target(box.base_url, Credentials(box.secret), "sandbox")
    report = run_file(options, target, confirm=confirm)
    assert report.cancelled
    (said,) = shown
    assert said.startswith("About to send 2 messages for 2 rows to sandbox")
    assert "Not sent: 3 rows to someone opted out or on a suppression list." in said
    assert ledger(box) == []
