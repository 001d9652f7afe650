"""Hidden sheets, rows and columns of an XLSX handoff file: what is read, skipped and sent."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import Workbook, load_workbook

from batcher.cli import main
from batcher.client import Credentials
from batcher.errors import InputError
from batcher.loading import load_sheet
from batcher.model import Status
from batcher.pipeline import HIDDEN_NOTE, HiddenVerdict, JobOptions, hidden_verdict
from batcher.running import RunOptions, Target, run_file, validate_command
from batcher.sandbox import RunningSandbox
from batcher.sending import SendConfig
from tests.runs import LINE_A, ledger, recipient
from tests.sheets import sheet_xml, write_raw_xlsx

HEADERS = ["From", "To", "Text"]


def _row(n: int) -> list[str]:
    return [LINE_A, recipient(n), f"Hello #{n}"]


def _workbook(
    path: Path,
    rows: int,
    *,
    hidden_rows: tuple[int, ...] = (),
    filtered_rows: tuple[int, ...] = (),
    hidden_first_sheet: str = "",
) -> Path:
    """An XLSX with a header and `rows` messages (sheet rows 2 ..), some rows hidden.

    `hidden_rows` are hidden by hand; `filtered_rows` by an autofilter on Text (as a
    spreadsheet app writes a filter: the filter, and the rows it filters out hidden).
    `hidden_first_sheet` ("hidden" or "veryHidden") puts a sheet of other messages first.
    """
    book = Workbook()
    first = book.active
    assert first is not None
    if hidden_first_sheet:
        first.title = "Old list"
        first.append(HEADERS)
        first.append([LINE_A, recipient(900), "from the hidden sheet"])
        first.sheet_state = hidden_first_sheet
        sheet = book.create_sheet("Messages")
    else:
        sheet = first
        sheet.title = "Messages"
    sheet.append(HEADERS)
    for n in range(rows):
        sheet.append(_row(n))
    for number in hidden_rows:
        sheet.row_dimensions[number].hidden = True
    if filtered_rows:
        sheet.auto_filter.ref = f"A1:C{rows + 1}"
        sheet.auto_filter.add_filter_column(2, ["Hello #0"])
        for number in filtered_rows:
            sheet.row_dimensions[number].hidden = True
    book.save(path)
    return path


def _run(box: RunningSandbox, path: Path, out: Path, *, include_hidden: bool = False) -> None:
    job = JobOptions(path=path, out=out, include_hidden=include_hidden)
    target = Target(box.base_url, Credentials(box.secret, "bearer", box.tenant), "sandbox")
    run_file(RunOptions(job=job, send=SendConfig(rate=0.0)), target)


def _results(path: Path) -> list[tuple[str, str, str]]:
    """(To, status, error_message) of each row of an XLSX results sheet."""
    sheet = load_workbook(path, read_only=True).worksheets[0]
    rows = [[cell or "" for cell in row] for row in sheet.iter_rows(values_only=True)]
    header = [str(cell) for cell in rows[0]]
    at = [header.index(name) for name in ("To", "status", "error_message")]
    return [(str(row[at[0]]), str(row[at[1]]), str(row[at[2]])) for row in rows[1:]]


def _sent_to(box: RunningSandbox) -> list[str]:
    return sorted(to for message in ledger(box) for to in message["to"])


@pytest.mark.parametrize(
    ("hidden", "earlier", "note", "include_hidden", "verdict"),
    [
        (False, None, "", False, "as it is"),
        (True, None, "", False, "skip"),
        (True, None, "", True, "as it is"),
        # A results sheet fed back in: a row skipped as hidden stays skipped, even shown.
        (False, Status.SKIPPED, HIDDEN_NOTE, False, "skip"),
        (False, Status.SKIPPED, HIDDEN_NOTE, True, "plan anew"),
        (True, Status.SKIPPED, HIDDEN_NOTE, True, "plan anew"),
        # Any other status a results sheet keeps stays, with its note, hidden or not.
        (False, Status.SKIPPED, "contacted on 2026-11-28", True, "as it is"),
        (True, Status.SKIPPED, "contacted on 2026-11-28", False, "as it is"),
        (True, Status.SENT, "", False, "as it is"),
        (True, Status.SENT, "", True, "as it is"),
        (True, Status.SUPPRESSED, "opted out on 2026-11-30", False, "as it is"),
    ],
)
def test_hidden_verdict(
    hidden: bool, earlier: Status | None, note: str, include_hidden: bool, verdict: HiddenVerdict
) -> None:
    """One rule says what hiding does to a row, in a sheet and in a results sheet."""
    assert hidden_verdict(hidden, earlier, note, include_hidden) == verdict


def test_hidden_rows_are_read(tmp_path: Path) -> None:
    """Rows hidden by hand and by a filter are known by their sheet row numbers."""
    path = _workbook(tmp_path / "in.xlsx", 8, hidden_rows=(3,), filtered_rows=(5, 9))
    sheet = load_sheet(path)
    assert sheet.hidden_rows == {3, 5, 9}
    assert [row.number for row in sheet.rows] == list(range(2, 10))


@pytest.mark.parametrize(
    ("rows", "hidden"),
    [
        ('<row r="2" hidden="1"/><row r="3" hidden="0"/><row r="4" hidden="true"/>', {2, 4}),
        # Rows without a reference follow the one before, as a reader places them.
        ('<row r="2"/><row hidden="1"/><row/><x:row hidden=" true "/>', {3, 5}),
        ("<row r='2' hidden='1'/><row r=\"3\" hidden = \"1\"/>", {2, 3}),
        # Nothing inside another attribute's value is read as the attribute.
        ('<row r="2" x=\'hidden="1"\'/><row r="3" spans=\'1:3\' hidden="false"/>', set()),
        ('<row r="2" customHeight="1" ht="0"/><row r="3" collapsed="1"/>', set()),
    ],
)
def test_hidden_rows_as_written(tmp_path: Path, rows: str, hidden: set[int]) -> None:
    """hidden="1" or "true" hides a row, however the tag is written; nothing else does."""
    header = '<row r="1"><c r="A1" t="inlineStr"><is><t>To</t></is></c></row>'
    xml = sheet_xml(header + rows).replace("<worksheet ", '<worksheet xmlns:x="urn:x" ')
    path = write_raw_xlsx(tmp_path / "raw.xlsx", [("Sheet1", xml)])
    assert load_sheet(path).hidden_rows == hidden


def test_hidden_columns_are_read(tmp_path: Path) -> None:
    """Hidden columns are known by their index in the rows, a range cut at the grid's end."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["", "To", "Text", "Text_2", "Notes"])
    sheet.append(["", recipient(1), "hi", "there", "n"])
    sheet.column_dimensions["D"].hidden = True
    sheet.column_dimensions.group("F", "XFD", hidden=True)
    path = tmp_path / "cols.xlsx"
    book.save(path)
    loaded = load_sheet(path)
    assert loaded.headers[:4] == ("To", "Text", "Text_2", "Notes")  # read from column B
    # D, and F to XFD (the grid's last column), counted from column B.
    assert loaded.hidden_columns == {2, *range(4, 16383)}


@pytest.mark.parametrize("state", ["hidden", "veryHidden"])
def test_default_sheet_is_first_visible(tmp_path: Path, state: str) -> None:
    """A hidden (or very hidden) first sheet is passed over; --sheet may still name it."""
    path = _workbook(tmp_path / "in.xlsx", 2, hidden_first_sheet=state)
    sheet = load_sheet(path)
    assert (sheet.sheet_name, sheet.sheet_state, sheet.passed_over) == (
        "Messages",
        "visible",
        ("Old list",),
    )
    named = load_sheet(path, "old list")
    assert (named.sheet_name, named.sheet_state, named.passed_over) == ("Old list", state, ())
    assert named.rows[0].cells[1] == recipient(900)


def test_no_visible_sheet(tmp_path: Path) -> None:
    """A workbook whose every sheet is hidden is refused, naming them and --sheet."""
    header = '<row r="1"><c r="A1" t="inlineStr"><is><t>To</t></is></c></row>'
    path = write_raw_xlsx(tmp_path / "raw.xlsx", [("Only", sheet_xml(header))])
    _set_state(path, "Only", "hidden")
    with pytest.raises(InputError) as caught:
        load_sheet(path)
    assert caught.value.message == (
        f"{path} has no visible sheet: every sheet is hidden, so none is read by default."
    )
    assert caught.value.hint == "Pass --sheet NAME to read a hidden one. Its sheets are: 'Only'."
    assert load_sheet(path, "Only").sheet_state == "hidden"


def _set_state(path: Path, name: str, state: str) -> None:
    """Rewrite a raw workbook's workbook.xml so that sheet `name` has `state`."""
    with zipfile.ZipFile(path) as archive:
        parts = {info.filename: archive.read(info) for info in archive.infolist()}
    parts["xl/workbook.xml"] = (
        parts["xl/workbook.xml"]
        .decode()
        .replace(f'<sheet name="{name}"', f'<sheet state="{state}" name="{name}"')
        .encode()
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for part, data in parts.items():
            archive.writestr(part, data)


def test_hidden_sheet_pointed_at(tmp_path: Path) -> None:
    """A visible sheet without recipients, and a hidden one with: the hint says it is hidden."""
    book = Workbook()
    notes = book.active
    assert notes is not None
    notes.title = "Notes"
    notes.append(["Read me"])
    data = book.create_sheet("Data")
    data.append(HEADERS)
    data.append(_row(1))
    data.sheet_state = "hidden"
    path = tmp_path / "in.xlsx"
    book.save(path)
    with pytest.raises(InputError, match="but the hidden sheet 'Data' has one"):
        load_sheet(path)


def test_hidden_rows_and_sheet_are_not_sent(box: RunningSandbox, tmp_path: Path) -> None:
    """A hidden first sheet, hand-hidden rows and filtered rows: no request for any of them."""
    path = _workbook(
        tmp_path / "in.xlsx",
        6,
        hidden_rows=(3,),
        filtered_rows=(5, 6),
        hidden_first_sheet="hidden",
    )
    out = tmp_path / "in.results.xlsx"
    _run(box, path, out)
    assert _sent_to(box) == sorted(recipient(n) for n in (0, 2, 5))
    assert [(status, note) for _, status, note in _results(out)] == [
        ("sent", ""),
        ("skipped", HIDDEN_NOTE),
        ("sent", ""),
        ("skipped", HIDDEN_NOTE),
        ("skipped", HIDDEN_NOTE),
        ("sent", ""),
    ]
    # The results sheet fed back in keeps them skipped: nothing more is sent.
    again = tmp_path / "again.results.xlsx"
    _run(box, out, again)
    assert len(ledger(box)) == 3
    assert [status for _, status, _ in _results(again)].count("skipped") == 3
    # ... and --include-hidden on it sends them, once.
    _run(box, again, tmp_path / "third.results.xlsx", include_hidden=True)
    assert _sent_to(box) == sorted(recipient(n) for n in range(6))


def test_include_hidden_sends_them(box: RunningSandbox, tmp_path: Path) -> None:
    """--include-hidden sends hidden and filtered rows like the others (still not the sheet)."""
    path = _workbook(
        tmp_path / "in.xlsx", 4, hidden_rows=(2,), filtered_rows=(4,), hidden_first_sheet="hidden"
    )
    out = tmp_path / "in.results.xlsx"
    _run(box, path, out, include_hidden=True)
    assert _sent_to(box) == sorted(recipient(n) for n in range(4))
    assert {status for _, status, _ in _results(out)} == {"sent"}


def test_hidden_row_leaves_its_chat_to_the_next(box: RunningSandbox, tmp_path: Path) -> None:
    """A hidden row that would have created a chat: the next visible row of it creates it."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(HEADERS)
    sheet.append([LINE_A, recipient(1), "first"])
    sheet.append([LINE_A, recipient(1), "second"])
    sheet.row_dimensions[2].hidden = True
    path = tmp_path / "in.xlsx"
    book.save(path)
    _run(box, path, tmp_path / "out.xlsx")
    assert [(m["to"], m["parts"][0]["value"]) for m in ledger(box)] == [([recipient(1)], "second")]


def test_validate_summary_and_next(tmp_path: Path) -> None:
    """validate says what was hidden and passes --include-hidden on to the run it suggests."""
    path = _workbook(
        tmp_path / "in.xlsx", 4, hidden_rows=(2,), filtered_rows=(4,), hidden_first_sheet="hidden"
    )
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert (
        "Sheet 'Messages': the first visible one. Hidden sheets are not read unless "
        "--sheet names one: 'Old list'."
    ) in result.output
    assert (
        "Rows hidden in the sheet (by hand or by a filter): 2, skipped. --include-hidden "
        "sends them."
    ) in result.output
    assert "  skipped          2  " in result.output
    result = CliRunner().invoke(main, ["validate", str(path), "--include-hidden"])
    assert "Rows hidden in the sheet: 2, sent like the others (--include-hidden)." in (
        result.output
    )
    assert result.output.strip().splitlines()[-1] == (
        f"Next: send with: chert-batch run {path} --include-hidden"
    )
    named = CliRunner().invoke(main, ["validate", str(path), "--sheet", "Old list", "--json"])
    summary = json.loads(named.output)
    assert summary["sheet"] == {
        "name": "Old list",
        "hidden": True,
        "hidden_sheets_passed_over": [],
        "hidden_rows": 0,
        "hidden_rows_sent": False,
        "hidden_columns_read": [],
    }


def test_hidden_field_column_is_read_and_said(tmp_path: Path) -> None:
    """A hidden column that is a field is read as usual, and the summary names it."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append([*HEADERS, "Text_2", "Notes"])
    sheet.append([*_row(1), "and more", "internal"])
    sheet.column_dimensions["D"].hidden = True
    sheet.column_dimensions["E"].hidden = True  # not a field: passed through, not named
    path = tmp_path / "in.xlsx"
    book.save(path)
    result = CliRunner().invoke(main, ["validate", str(path), "--out", str(tmp_path / "o.csv")])
    assert (
        "Hidden columns read as usual: Text_2. What they hold is sent: unhide them to see it."
    ) in result.output
    assert "  pending          1  ready to send" in result.output


def test_validate_command_repeats_include_hidden(tmp_path: Path) -> None:
    """The validate command a run suggests (to rewrite its results) keeps --include-hidden."""
    job = JobOptions(path=tmp_path / "in.xlsx", include_hidden=True)
    command = validate_command(job, tmp_path / "j.sqlite", tmp_path / "o.xlsx")
    assert " --include-hidden " in command
