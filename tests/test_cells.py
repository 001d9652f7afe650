"""Results CSV cells: escaped against formulas on write, read back as exactly the same text."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from batcher.cells import escape_csv_cell, unescape_csv_cell
from batcher.client import Credentials
from batcher.pipeline import JobOptions, prepare, validate_file
from batcher.planning import RowPlan
from batcher.running import RunOptions, Target, run_file
from batcher.sandbox import SandboxConfig, running_sandbox
from batcher.sending import RetryPolicy, SendConfig
from tests.runs import LINE_A, assert_exactly_once, ledger, recipient
from tests.sheets import write_csv, write_xlsx

# Every text a cell can hold (a CSV file cannot carry NUL), with the starts that matter
# drawn often: what a spreadsheet evaluates, apostrophes, white space, phone numbers.
STARTS = ["'", "''", "=", "+", "-", "@", "\t", "\r", " ", "'=", "'\t=", "\t'", "+1 415 555 1234"]
TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"))
CELL = st.one_of(TEXT, st.builds(str.__add__, st.sampled_from(STARTS), TEXT))


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+2", "'=1+2"),
        ("+1 is not a phone", "'+1 is not a phone"),
        ("-5", "'-5"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\r=x", "'\r=x"),
        ("'=x", "''=x"),  # the apostrophe is the text's own: kept by one more
        ("'x", "''x"),
        ("'", "''"),
        ("'+14155551234", "''+14155551234"),
        ("+14155551234", "+14155551234"),  # phone numbers stay usable as written
        ("+1 (415) 555-1234; +44 20 7946 0958", "+1 (415) 555-1234; +44 20 7946 0958"),
        ("plain", "plain"),
        ("x=1", "x=1"),
        (" =1", " =1"),  # only the first character can make a formula
        ("\n=1", "\n=1"),
        ("\u00a0-1", "\u00a0-1"),
        ("", ""),
    ],
)
def test_escape(value: str, written: str) -> None:
    """Cells a spreadsheet would evaluate, and cells starting with an apostrophe, get one."""
    assert escape_csv_cell(value) == written
    assert unescape_csv_cell(written) == value


@pytest.mark.parametrize("cell", ["'x", "'+14155551234", "x'", "'", " '=x"])
def test_unescape_leaves_what_escape_never_writes(cell: str) -> None:
    """An apostrophe typed into a results sheet before a harmless text stays."""
    assert unescape_csv_cell(cell) == cell


@given(CELL)
@example("'=x")
@example("\t=x")
def test_unescape_inverts_escape(value: str) -> None:
    """unescape(escape(s)) == s for every text s."""
    assert unescape_csv_cell(escape_csv_cell(value)) == value


def plan_of(path: Path) -> tuple[RowPlan, ...]:
    """The rows of a sheet as `run` would plan them: statuses, problems, keys and parts."""
    return prepare(JobOptions(path=path)).plan.rows


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=CELL, notes=CELL)
@example(text="'=SUM(A1:A9)", notes="-5")
@example(text="\t=x", notes="'")
@example(text="'+1 415 555 1234", notes="\r@x")
def test_results_csv_reads_back_as_its_input(tmp_path: Path, text: str, notes: str) -> None:
    """A results CSV, fed back in, reads every cell as its input did: same parts, same keys.

    Twice over: the results of the results, too.
    """
    rows = [["From", "To", "Text", "Notes"], [LINE_A, "+1 415 555 1234", text, notes]]
    source = write_csv(tmp_path / "in.csv", rows)
    once = validate_file(JobOptions(path=source, out=tmp_path / "once.csv")).output
    twice = validate_file(JobOptions(path=once, out=tmp_path / "twice.csv")).output
    assert plan_of(source) == plan_of(once) == plan_of(twice)
    with (
        once.open(encoding="utf-8-sig", newline="") as one,
        twice.open(encoding="utf-8-sig", newline="") as two,
    ):
        assert list(csv.reader(one)) == list(csv.reader(two))  # no apostrophes pile up


@pytest.mark.parametrize(
    "text",
    ["'=SUM(A1:A9)", "'-- the team", "'+ and more", "'@ana", "\t=2+2", "\r+x", "'\t-x"],
)
def test_pending_row_fed_back_keeps_its_key(tmp_path: Path, text: str) -> None:
    """A row left pending ("perhaps delivered") and fed back in is not sent a second time.

    The first run's answers come too late, so the row stays pending although the message
    went out; the results CSV is then run as the input, against a journal that does not
    know it: only the same key keeps the recipient from a second, altered message.
    """
    with running_sandbox(SandboxConfig(pslow=1.0, slow_seconds=1.0)) as box:
        target = Target(box.base_url, Credentials(box.secret), "sandbox")
        quick = RetryPolicy(attempts=1, total_seconds=5, wait_initial=0.01, wait_max=0.01)
        rows = [["From", "To", "Text"], [LINE_A, recipient(1), text]]
        path = write_csv(tmp_path / "in.csv", rows)
        first = run_file(
            RunOptions(JobOptions(path=path), SendConfig(rate=0, timeout=0.2, retry=quick)), target
        )
        with first.output.open(encoding="utf-8-sig", newline="") as stream:
            (row,) = csv.DictReader(stream)
        assert row["status"] == "pending"
        assert len(ledger(box)) == 1  # delivered all the same
        again = run_file(
            RunOptions(JobOptions(path=first.output), SendConfig(rate=0, timeout=10)), target
        )
        assert again.output != first.output
        assert_exactly_once(box, 1)
        assert ledger(box)[0]["parts"][0]["value"] == text.strip()


def test_xlsx_results_sheet_is_read_verbatim(tmp_path: Path) -> None:
    """XLSX results are never escaped: an apostrophe there is the text's own."""
    rows = [["From", "To", "Text", "status"], [LINE_A, "+1 415 555 1234", "'=x", "pending"]]
    (plan,) = plan_of(write_xlsx(tmp_path / "in.results.xlsx", rows))
    (request,) = plan.requests
    assert request.parts[0].value == "'=x"


@pytest.mark.parametrize("out", ["again.csv", "again.xlsx"])
def test_csv_results_converted_keep_their_texts(tmp_path: Path, out: str) -> None:
    """A results CSV written out as XLSX (or CSV) holds the texts, not their escapes."""
    rows = [
        ["From", "To", "Text", "status", "idempotency_key"],
        [LINE_A, "+1 415 555 1234", "'=x", "pending", ""],
        [LINE_A, "+1 415 555 2671", "hi", "sent", "'-k1-"],
    ]
    source = write_csv(tmp_path / "in.results.csv", rows)
    again = validate_file(JobOptions(path=source, out=tmp_path / out)).output
    before, after = plan_of(source), plan_of(again)
    assert before == after
    assert before[0].requests[0].parts[0].value == "=x"


@pytest.mark.parametrize("header", ["-To-", "- Phone", "'To"])
def test_headers_survive_the_round_trip(tmp_path: Path, header: str) -> None:
    """A header escaped in the results CSV still names its column, and is not escaped twice."""
    rows = [["From", header, "Text"], [LINE_A, "+1 415 555 1234", "hi"]]
    source = write_csv(tmp_path / "in.csv", rows)
    once = validate_file(JobOptions(path=source, out=tmp_path / "once.csv")).output
    twice = validate_file(JobOptions(path=once, out=tmp_path / "twice.csv")).output
    assert plan_of(source) == plan_of(once) == plan_of(twice)
    assert once.read_bytes() == twice.read_bytes()
