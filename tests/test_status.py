"""`status`: delivery, reads and replies read back into a results sheet, over loopback."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook

from batcher.cli_status import funnel_table
from batcher.client import Credentials
from batcher.errors import InputError
from batcher.optouts import OptOuts
from batcher.pipeline import JobOptions, validate_file
from batcher.running import RunOptions, Target, run_file
from batcher.sandbox import RunningSandbox, SandboxConfig, State, running_sandbox
from batcher.sandbox.state import iso_z
from batcher.sending import SendConfig
from batcher.status import (
    OPTED_OUT,
    Stage,
    StatusOptions,
    StatusReport,
    Tracking,
    forward,
    status_file,
)
from tests.clocks import START_WALL, FakeClock
from tests.runs import cli_env, direct_rows, run_cli
from tests.sheets import write_csv, write_xlsx

LINE = "+15555550100"
SAM = "+14155551234"
ALEX = "+14155559876"
KIM = "+14155550199"
HEADERS = ["From", "To", "Text"]
ROWS = [
    [LINE, SAM, "Hi Sam"],
    [LINE, ALEX, "Hi Alex"],
    [LINE, KIM, "Hi Kim"],
    [LINE, "415-555-12", "a bad number"],
    [LINE, SAM, "Sam again"],
]
TRACKED = ["delivery", "delivered_at", "read_at", "replied_at", "reply"]
GONE = "chat-that-is-gone"
SEED = 3


def settings(p503: float = 0.0, pdrop: float = 0.0, seed: int | None = None) -> SandboxConfig:
    """Delivered 10 s after sending, then read 20 s later (every message), faults as given."""
    return SandboxConfig(
        deliver_after=10, read_after=20, read_share=1.0, p503=p503, pdrop=pdrop, seed=seed
    )


def handoff(folder: Path, kind: str) -> Path:
    """The handoff file, as CSV or XLSX."""
    rows = [HEADERS, *ROWS]
    if kind == "csv":
        return write_csv(folder / "leads.csv", rows)
    return write_xlsx(folder / "leads.xlsx", rows)


def send(box: RunningSandbox, path: Path) -> Path:
    """Run the file against the sandbox; its results sheet."""
    options = RunOptions(job=JobOptions(path=path), send=SendConfig(rate=0))
    return run_file(options, target(box)).output


def target(box: RunningSandbox) -> Target:
    """Where status reads from."""
    return Target(box.base_url, Credentials(box.secret, "bearer", box.tenant), "sandbox")


def read_rows(path: Path) -> list[dict[str, str]]:
    """The results sheet's rows as header -> text (empty for an empty cell)."""
    if path.suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as stream:
            return list(csv.DictReader(stream))
    values = list(load_workbook(path).worksheets[0].iter_rows(values_only=True))
    header = [str(cell) for cell in values[0]]
    return [
        {name: "" if cell is None else str(cell) for name, cell in zip(header, row, strict=True)}
        for row in values[1:]
    ]


def lose_chat(path: Path, row: int) -> None:
    """Make a row name a chat the API does not have, as if it were deleted."""
    if path.suffix == ".csv":
        lines = list(csv.reader(path.open(encoding="utf-8-sig", newline="")))
        lines[row][lines[0].index("chat_id")] = GONE
        write_csv(path, lines)
        return
    book = load_workbook(path)
    sheet = book.worksheets[0]
    header = [cell.value for cell in sheet[1]]
    sheet.cell(row + 1, header.index("chat_id") + 1, GONE)
    book.save(path)


def inbound(box: RunningSandbox, sender: str, text: str) -> None:
    """A reply from `sender` to the line."""
    body = {"from": sender, "line": LINE, "text": text}
    httpx.post(f"{box.root_url}/_sandbox/inbound", json=body).raise_for_status()


def requests(box: RunningSandbox) -> list[dict[str, object]]:
    """The sandbox's request log."""
    logged = httpx.get(f"{box.root_url}/_sandbox/requests").json()["requests"]
    assert isinstance(logged, list)
    return logged


class Hands:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.time = START_WALL

    def __call__(self) -> float:
        return self.time


@pytest.fixture
def hands() -> Hands:
    """The sandbox's clock."""
    return Hands()


@pytest.fixture
def timed(hands: Hands) -> Iterator[RunningSandbox]:
    """A sandbox on the test's clock, every message read once its time comes."""
    config = settings()
    with running_sandbox(config, state=State(config, clock=hands)) as box:
        yield box


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_status_fills_the_sent_rows_and_records_an_opt_out(
    timed: RunningSandbox, hands: Hands, tmp_path: Path, kind: str
) -> None:
    """Sent rows get delivery and replies; others stay as they were; a STOP is recorded."""
    results = send(timed, handoff(tmp_path, kind))
    lose_chat(results, 3)  # Kim's row
    hands.time += 15
    inbound(timed, SAM, "Sounds good, =1+1")
    inbound(timed, ALEX, "STOP")
    before = len(requests(timed))
    report = status_file(StatusOptions(results, rate=0), target(timed))
    assert all(request["method"] == "GET" for request in requests(timed)[before:])
    assert (report.rows, report.chats, report.updated) == (4, 3, 3)
    assert report.gone == [GONE]
    assert [entry.number for entry in report.opt_outs] == [ALEX]
    with OptOuts() as store:
        assert [entry.number for entry in store.entries()] == [ALEX]
    delivered, replied = iso_z(START_WALL + 10), iso_z(START_WALL + 15)
    rows = read_rows(results)
    assert [[row[name] for name in ["status", *TRACKED]] for row in rows] == [
        ["sent", "delivered", delivered, "", replied, "Sounds good, =1+1"],
        ["sent", "delivered", delivered, "", replied, f"{OPTED_OUT}STOP"],
        ["sent", "", "", "", "", ""],
        ["invalid", "", "", "", "", ""],
        ["sent", "delivered", delivered, "", replied, "Sounds good, =1+1"],
    ]
    assert (report.overall.sent, report.overall.delivered, report.overall.replied) == (4, 3, 3)
    assert report.overall.opted_out == 1
    assert report.exit_code == 0


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_status_is_idempotent_and_only_moves_forward(
    timed: RunningSandbox, hands: Hands, tmp_path: Path, kind: str
) -> None:
    """Again at once, nothing changes; later, delivered rows become read; none go back."""
    results = send(timed, handoff(tmp_path, kind))
    hands.time += 15
    status_file(StatusOptions(results, rate=0), target(timed))
    first = read_rows(results)
    again = status_file(StatusOptions(results, rate=0), target(timed))
    assert again.updated == 0
    assert read_rows(results) == first
    hands.time += 20
    later = status_file(StatusOptions(results, rate=0), target(timed))
    assert later.updated == 4
    sent = [row for row in read_rows(results) if row["status"] == "sent"]
    assert {row["delivery"] for row in sent} == {"read"}
    assert {row["read_at"] for row in sent} == {iso_z(START_WALL + 30)}
    assert report_json_is_plain(later)


def report_json_is_plain(report: StatusReport) -> bool:
    """The --json report is JSON through and through."""
    return bool(json.loads(json.dumps(report.to_json())) == report.to_json())


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (Tracking(), Tracking("sent"), Tracking("sent")),
        (Tracking("sent"), Tracking("delivered", "t1"), Tracking("delivered", "t1")),
        (Tracking("read", "t1", "t2"), Tracking("delivered", "t1"), Tracking("read", "t1", "t2")),
        (Tracking("delivered", "t1"), Tracking("sent"), Tracking("delivered", "t1")),
        (
            Tracking("sent"),
            Tracking("sent", "", "", "t3", "hi"),
            Tracking("sent", "", "", "t3", "hi"),
        ),
        (
            Tracking("read", "", "", "t3", "hi"),
            Tracking("read", "", "", "t4", "x"),
            Tracking("read", "", "", "t3", "hi"),
        ),
        (Tracking("typed by hand"), Tracking("sent"), Tracking("sent")),
    ],
)
def test_forward_never_goes_back(old: Tracking, new: Tracking, expected: Tracking) -> None:
    """sent -> delivered -> read; what is known stays; the first reply stays the reply."""
    assert forward(old, new) == expected


def test_a_long_reply_is_cut_to_200_characters(
    timed: RunningSandbox, hands: Hands, tmp_path: Path
) -> None:
    """The reply cell holds at most 200 characters of it."""
    results = send(timed, handoff(tmp_path, "csv"))
    inbound(timed, SAM, "x" * 500)
    status_file(StatusOptions(results, rate=0), target(timed))
    assert read_rows(results)[0]["reply"] == "x" * 200


def test_faults_are_retried_until_every_chat_is_read(tmp_path: Path) -> None:
    """503s and dropped connections on the reads are retried; every sent row is filled."""
    clock = FakeClock()
    faulty = settings(p503=0.3, pdrop=0.3, seed=SEED)
    state = State(faulty, clock=clock.wall)
    many = write_csv(tmp_path / "many.csv", [HEADERS, *direct_rows(12, [LINE])])
    with running_sandbox(replace(faulty, p503=0, pdrop=0), state=state) as clean:
        results = send(clean, many)
    clock.time += 30
    with running_sandbox(faulty, state=state) as box:
        before = len(requests(box))
        options = StatusOptions(results, rate=0)
        report = status_file(options, target(box), clock=clock, transport=clock.transport())
        logged = requests(box)[before:]
    assert {request["fault"] for request in logged} >= {"503", "drop"}
    assert {request["method"] for request in logged} == {"GET"}
    assert (report.unread, report.exit_code) == ({}, 0)
    sent = [row for row in read_rows(results) if row["status"] == "sent"]
    assert [row["delivery"] for row in sent] == ["read"] * 12


def test_a_chat_that_cannot_be_read_leaves_its_rows_and_exits_1(tmp_path: Path) -> None:
    """When retries run out, the rows stay as they were and the report names the chat."""
    clock = FakeClock()
    config = settings()
    state = State(config, clock=clock.wall)
    with running_sandbox(config, state=state) as clean:
        results = send(clean, handoff(tmp_path, "csv"))
    before = results.read_bytes()
    with running_sandbox(replace(config, p503=1.0), state=state) as box:
        options = StatusOptions(results, rate=0)
        report = status_file(options, target(box), clock=clock, transport=clock.transport())
    assert report.exit_code == 1
    assert len(report.unread) == 3
    assert all("503" in reason for reason in report.unread.values())
    assert results.read_bytes() == before


def test_a_sheet_that_is_not_a_results_sheet_is_refused(
    tmp_path: Path, box: RunningSandbox
) -> None:
    """A handoff file has no status column: a clear message, nothing read."""
    path = handoff(tmp_path, "csv")
    with pytest.raises(InputError, match="is not a results sheet"):
        status_file(StatusOptions(path, rate=0), target(box))


def test_the_columns_are_kept_when_the_results_are_fed_back(
    timed: RunningSandbox, hands: Hands, tmp_path: Path
) -> None:
    """validate of a results sheet keeps what status wrote."""
    results = send(timed, handoff(tmp_path, "csv"))
    hands.time += 15
    inbound(timed, SAM, "ok")
    status_file(StatusOptions(results, rate=0), target(timed))
    again = validate_file(JobOptions(path=results, out=tmp_path / "again.csv")).output
    kept = [[row[name] for name in TRACKED] for row in read_rows(again)]
    assert kept == [[row[name] for name in TRACKED] for row in read_rows(results)]
    assert kept[0][-1] == "ok"


def test_cli_run_then_status_with_the_sandbox(tmp_path: Path, box: RunningSandbox) -> None:
    """run --sandbox keeps its state beside the journal; status --sandbox reads it."""
    path = handoff(tmp_path, "csv")
    env = cli_env(box)
    ran = run_cli(["run", str(path), "--sandbox", "--yes"], env)
    assert ran.returncode == 1, ran.stderr  # the bad number
    results = tmp_path / "leads.sandbox.results.csv"
    assert (tmp_path / "leads.sandbox.results.sandbox.json").exists()
    shown = run_cli(["status", str(results), "--sandbox"], env)
    assert shown.returncode == 0, shown.stderr
    assert "4 sent rows in 3 chats" in shown.stdout
    assert "All lines" in shown.stdout
    assert LINE in shown.stdout
    as_json = run_cli(["status", str(results), "--sandbox", "--json"], env)
    funnel = json.loads(as_json.stdout)["funnel"]
    assert (funnel["sent"], funnel["opted_out"]) == (4, 0)
    assert {row["delivery"] for row in read_rows(results) if row["status"] == "sent"} <= {
        "sent",
        "delivered",
    }


def test_cli_status_sandbox_without_a_state_says_what_to_do(tmp_path: Path) -> None:
    """--sandbox of a sheet no sandbox run wrote: exit 2 and the command that would."""
    sheet = write_csv(tmp_path / "x.results.csv", [[*HEADERS, "status", "chat_id"]])
    shown = run_cli(["status", str(sheet), "--sandbox"], cli_env_plain())
    assert shown.returncode == 2
    assert "no sandbox state beside" in shown.stderr
    assert "chert-batch run FILE --sandbox" in shown.stderr


def cli_env_plain() -> dict[str, str]:
    """The environment, without an account."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CHERT_") or key == "CHERT_BATCH_HOME"
    }


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_a_reply_never_becomes_a_formula(timed: RunningSandbox, tmp_path: Path, kind: str) -> None:
    """A reply starting with = is text: a string cell in XLSX, a leading ' in CSV."""
    results = send(timed, handoff(tmp_path, kind))
    inbound(timed, SAM, '=HYPERLINK("http://x.io")')
    status_file(StatusOptions(results, rate=0), target(timed))
    if kind == "csv":
        assert read_rows(results)[0]["reply"] == '\'=HYPERLINK("http://x.io")'
        return
    sheet = load_workbook(results).worksheets[0]
    header = [cell.value for cell in sheet[1]]
    cell = sheet.cell(2, header.index("reply") + 1)
    assert (cell.value, cell.data_type) == ('=HYPERLINK("http://x.io")', "s")


def test_a_wrong_secret_stops_at_once_and_changes_nothing(
    timed: RunningSandbox, tmp_path: Path
) -> None:
    """401 / 2004 stops the reads (exit 3); the sheet is left as it was."""
    results = send(timed, handoff(tmp_path, "csv"))
    before = results.read_bytes()
    wrong = Target(timed.base_url, Credentials("not-the-secret"), "sandbox")
    report = status_file(StatusOptions(results, rate=0), wrong)
    assert report.exit_code == 3
    assert report.stopped
    assert results.read_bytes() == before


def test_the_funnel_counts_each_line_and_all_of_them() -> None:
    """Counts and percentages of the sent rows, per line and for all lines."""
    report = StatusReport(Path("x.csv"))
    rows = [
        ("+15555550100", Tracking("read", "t", "t", "t", "ok")),
        ("+15555550100", Tracking("delivered", "t")),
        ("+15555550100", Tracking("sent")),
        ("+15555550101", Tracking("read", "t", "t", "t", f"{OPTED_OUT}STOP")),
    ]
    for line, tracking in rows:
        report.overall.count(tracking)
        report.lines.setdefault(line, Stage()).count(tracking)
    funnel = report.to_json()
    assert funnel["funnel"] == {
        "sent": 4,
        "delivered": 3,
        "read": 2,
        "replied": 2,
        "opted_out": 1,
        "percent": {
            "sent": 100.0,
            "delivered": 75.0,
            "read": 50.0,
            "replied": 50.0,
            "opted_out": 25.0,
        },
    }
    first = funnel["by_line"]["+15555550100"]
    assert [first[name] for name in ("sent", "delivered", "read", "replied", "opted_out")] == [
        3,
        2,
        1,
        1,
        0,
    ]
    assert first["percent"]["delivered"] == 66.7
    table = funnel_table(report, width=100)
    cells = {
        row[0]: row[1:]
        for line in table.splitlines()
        if len(row := [cell.strip() for cell in line.split("│")[1:-1]]) == 6
    }
    assert cells["All lines"] == ["4", "3 (75 %)", "2 (50 %)", "2 (50 %)", "1 (25 %)"]
    assert cells["+15555550100"] == ["3", "2 (66.7 %)", "1 (33.3 %)", "1 (33.3 %)", "0 (0 %)"]
    assert cells["+15555550101"][-1] == "1 (100 %)"
