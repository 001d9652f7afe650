"""The results workbook people read: frozen bold header, filter, widths, colours, a Summary."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.dimensions import ColumnDimension
from openpyxl.worksheet.worksheet import Worksheet

from batcher.client import Credentials
from batcher.loading import load_sheet
from batcher.pipeline import JobOptions, validate_file
from batcher.results import (
    AMBER,
    GREEN,
    GREY,
    RED,
    WIDTH_MAX,
    WIDTH_MIN,
    Tint,
    fitted_width,
    status_tint,
)
from batcher.running import RunOptions, Target, run_file
from batcher.sandbox import RunningSandbox
from batcher.sending import RetryPolicy, SendConfig
from tests.runs import LINE_A, LINE_B, recipient, stats
from tests.sheets import write_csv, write_xlsx

HEADERS = ["From", "To", "Text", "Notes"]
LONG = "a note far longer than any column should grow to " * 3
ROWS = [
    HEADERS,
    [LINE_A, recipient(1), "Hello Ana", ""],
    [LINE_B, recipient(2), "Hello Ben", LONG],
    [LINE_A, "415-555-12", "bad number", ""],
    [LINE_A, recipient(1), "Hello Ana", "again"],
    [LINE_A, recipient(3), "=SUM(A1:A9)", "@home"],
]
# status is the fifth column (E): the input's four, then the result columns.
STATUS = 4
QUICK = RetryPolicy(attempts=5, total_seconds=30, wait_initial=0.02, wait_max=0.1)


def first_sheet(path: Path) -> Worksheet:
    return load_workbook(path).worksheets[0]


def summary_rows(path: Path, name: str = "Summary") -> list[list[object]]:
    rows = load_workbook(path)[name].iter_rows(values_only=True)
    return [[cell for cell in row if cell is not None] for row in rows]


def column(sheet: Worksheet, number: int) -> ColumnDimension:
    """The dimension of the 1-based column `number`: openpyxl keys a run of alike columns once."""
    found = [d for d in sheet.column_dimensions.values() if d.min <= number <= d.max]
    assert len(found) == 1, f"column {number} has {len(found)} dimensions"
    return found[0]


def fill_of(sheet: Worksheet, ref: str) -> Tint | None:
    """The tint a cell was given (openpyxl reads colours as ARGB: FF + RGB)."""
    cell = sheet[ref]
    if cell.fill is None or cell.fill.fill_type is None:
        return None
    return Tint("#" + cell.fill.fgColor.rgb[2:], "#" + cell.font.color.rgb[2:])


def send(box: RunningSandbox, path: Path, out: Path, journal: Path | None = None) -> int:
    """Run `path` against the sandbox in-process; the number of messages sent now."""
    options = RunOptions(
        job=JobOptions(path=path, out=out),
        send=SendConfig(rate=0.0, retry=QUICK),
        journal=journal,
    )
    return run_file(options, Target(box.base_url, Credentials(box.secret), "sandbox")).sent_now


@pytest.mark.parametrize(
    ("text", "tint"),
    [
        ("sent", GREEN),
        ("delivered", GREEN),
        ("invalid", RED),
        ("failed", RED),
        ("pending", AMBER),
        ("duplicate", GREY),
        ("skipped", GREY),
        ("suppressed", GREY),
        (" Sent ", GREEN),
        ("", None),
        ("read", None),
        ("sent!", None),
    ],
)
def test_status_tint(text: str, tint: Tint | None) -> None:
    """Status cells are coloured by their text, statuses not yet known included."""
    assert status_tint(text) == tint


@pytest.mark.parametrize(
    ("header", "longest", "width"),
    [
        ("To", 0, WIDTH_MIN),
        ("To", 15, 17),
        ("idempotency_key", 3, 19),  # the header and its filter button fit
        ("Text", 500, WIDTH_MAX),
        ("x" * 80, 0, WIDTH_MAX),
    ],
)
def test_fitted_width(header: str, longest: int, width: int) -> None:
    """A column fits its header (with the filter button) and its longest cell, capped."""
    assert fitted_width(header, longest) == width


def test_validate_workbook_is_styled(tmp_path: Path) -> None:
    """Header frozen and bold with a filter over every row; widths fitted; statuses coloured."""
    path = write_csv(tmp_path / "in.csv", ROWS)
    validate_file(JobOptions(path=path, out=tmp_path / "r.xlsx"))
    sheet = first_sheet(tmp_path / "r.xlsx")
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:R6"
    assert all(cell.font.b for cell in sheet[1])
    assert not any(cell.font.b for cell in sheet[2])
    statuses = [sheet.cell(row, STATUS + 1).value for row in range(2, 7)]
    assert statuses == ["pending", "pending", "invalid", "duplicate", "pending"]
    fills = [fill_of(sheet, f"E{row}") for row in range(2, 7)]
    assert fills == [AMBER, AMBER, RED, GREY, AMBER]
    assert fill_of(sheet, "E1") is None  # the header is bold, not coloured
    # xlsxwriter writes a width w as w + 0.71 (its pixel rounding), which int() undoes.
    widths = [int(column(sheet, number).width) for number in range(1, 6)]
    assert widths == [
        fitted_width("From", len(LINE_A)),
        fitted_width("To", len(recipient(1))),
        fitted_width("Text", len("=SUM(A1:A9)")),
        WIDTH_MAX,  # LONG is longer
        fitted_width("status", len("duplicate")),
    ]
    # Phone columns are Text-formatted, down to the cells a person fills in later.
    assert sheet["B2"].number_format == "@"
    formats = [column(sheet, number).number_format for number in (1, 2, 3)]
    assert formats == ["@", "@", "General"]


def test_every_cell_stays_a_string(tmp_path: Path) -> None:
    """Formulas, signs and @ are written as text cells, never evaluated."""
    path = write_csv(tmp_path / "in.csv", ROWS)
    validate_file(JobOptions(path=path, out=tmp_path / "r.xlsx"))
    sheet = first_sheet(tmp_path / "r.xlsx")
    row = sheet[6]
    assert (row[2].value, row[3].value) == ("=SUM(A1:A9)", "@home")
    assert all(cell.data_type == "s" for cell in row if cell.value is not None)


def test_summary_sheet(tmp_path: Path) -> None:
    """Counts by status and by error code, then each line's plan."""
    path = write_csv(tmp_path / "in.csv", ROWS)
    validate_file(JobOptions(path=path, out=tmp_path / "r.xlsx"))
    assert load_workbook(tmp_path / "r.xlsx").sheetnames == ["results", "Summary"]
    assert summary_rows(tmp_path / "r.xlsx") == [
        ["status", "rows"],
        ["invalid", 1],
        ["pending", 3],
        ["duplicate", 1],
        ["total", 5],
        [],
        ["error code", "meaning", "rows"],
        ["1003", "invalid phone number", 1],
        [],
        ["line", "first touches", "follow-ups", "estimate"],
        [LINE_A, 2, 0, "about 10 min"],
        [LINE_B, 1, 0, "right away"],
    ]
    sheet = load_workbook(tmp_path / "r.xlsx")["Summary"]
    assert (fill_of(sheet, "A2"), fill_of(sheet, "A3")) == (RED, AMBER)
    assert sheet["A1"].font.b


def test_header_below_the_top(tmp_path: Path) -> None:
    """A header on row 3 (column B): the panes freeze under it and the filter starts there."""
    path = write_xlsx(tmp_path / "in.xlsx", ROWS[:3], first_cell=(3, 2), sheet="Contacts")
    validate_file(JobOptions(path=path))
    sheet = first_sheet(tmp_path / "in.results.xlsx")
    assert sheet.title == "Contacts"
    assert sheet.freeze_panes == "A4"
    assert sheet.auto_filter.ref == "A3:R5"
    assert sheet["A3"].value == "From"


def test_input_sheet_named_summary(tmp_path: Path) -> None:
    """An input sheet called Summary keeps its name; the counts go to another sheet."""
    path = write_xlsx(tmp_path / "in.xlsx", ROWS[:2], sheet="summary")
    validate_file(JobOptions(path=path))
    book = load_workbook(tmp_path / "in.results.xlsx")
    assert book.sheetnames == ["summary", "Summary (chert-batch)"]
    assert summary_rows(tmp_path / "in.results.xlsx", "Summary (chert-batch)")[1] == ["pending", 1]


def test_control_characters_read_back_exactly(tmp_path: Path) -> None:
    """A control character is written as Excel's escape and read back as itself.

    The row stays invalid when the results are fed back: stripping the character
    would turn a refused text into a sendable one.
    """
    path = write_csv(tmp_path / "in.csv", [HEADERS[:3], [LINE_A, recipient(1), "ding\x07dong"]])
    first = validate_file(JobOptions(path=path, out=tmp_path / "r.xlsx"))
    [row] = load_sheet(tmp_path / "r.xlsx").rows
    assert row.cells[2] == "ding\x07dong"
    again = validate_file(JobOptions(path=tmp_path / "r.xlsx", out=tmp_path / "again.xlsx"))
    assert first.by_status == again.by_status
    assert list(again.by_code) == [1002]


def test_styled_results_fed_back_send_nothing(box: RunningSandbox, tmp_path: Path) -> None:
    """run, then run its styled results workbook: its first sheet only, 0 new requests."""
    path = write_csv(tmp_path / "in.csv", ROWS)
    assert send(box, path, tmp_path / "in.results.xlsx") == 3
    sheet = first_sheet(tmp_path / "in.results.xlsx")
    assert sheet["C6"].value == "=SUM(A1:A9)"  # sent as text, and kept as text
    statuses = [sheet.cell(row, STATUS + 1).value for row in range(2, 7)]
    assert statuses == ["sent", "sent", "invalid", "duplicate", "sent"]
    assert [fill_of(sheet, f"E{row}") for row in range(2, 7)] == [GREEN, GREEN, RED, GREY, GREEN]
    assert summary_rows(tmp_path / "in.results.xlsx")[:5] == [
        ["status", "rows"],
        ["sent", 3],
        ["invalid", 1],
        ["duplicate", 1],
        ["total", 5],
    ]
    requests = stats(box)["requests"]
    fresh = tmp_path / "fresh.journal.sqlite"  # not the first run's: the sheet alone decides
    again = send(box, tmp_path / "in.results.xlsx", tmp_path / "again.xlsx", fresh)
    assert again == 0
    assert stats(box)["requests"] == requests
    assert [c.value for c in first_sheet(tmp_path / "again.xlsx")["E"][1:]] == statuses


def test_delivery_cells_are_coloured_too(tmp_path: Path) -> None:
    """A results sheet fed back with a delivery column: delivered is green there too."""
    rows = [[*HEADERS[:3], "delivery"], [LINE_A, recipient(1), "hi", "delivered"]]
    rows += [[LINE_A, recipient(2), "hi", "read"]]
    validate_file(JobOptions(path=write_csv(tmp_path / "in.csv", rows), out=tmp_path / "r.xlsx"))
    sheet = first_sheet(tmp_path / "r.xlsx")
    assert [sheet["D2"].value, sheet["D3"].value] == ["delivered", "read"]
    assert [fill_of(sheet, "D2"), fill_of(sheet, "D3")] == [GREEN, None]
    assert [fill_of(sheet, "E2"), fill_of(sheet, "E3")] == [AMBER, AMBER]  # their status
