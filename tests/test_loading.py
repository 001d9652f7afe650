"""Loading handoff files: formats, encodings, delimiters, row numbers and unreadable input."""

from __future__ import annotations

from pathlib import Path

import pytest

from batcher.errors import InputError
from batcher.loading import is_blank, load_sheet
from tests.sheets import Cell, write_csv, write_xlsx

ROWS = [
    ["From", "To", "Text"],
    ["+15555550100", "+1 415 555 1234", "Grüße, café ☕"],
    ["+15555550100", "(415) 555-2671", "semi; colon, comma\ttab"],
]


@pytest.mark.parametrize(
    ("encoding", "delimiter"),
    [
        ("utf-8", ","),
        ("utf-8-sig", ","),
        ("utf-8", ";"),
        ("utf-8-sig", "\t"),
        ("cp1252", ";"),
    ],
)
def test_csv_encodings_and_delimiters(tmp_path: Path, encoding: str, delimiter: str) -> None:
    """UTF-8 with or without BOM and cp1252, comma, semicolon or tab: the same cells."""
    rows = [
        [cell.replace("☕", "") if encoding == "cp1252" else cell for cell in row] for row in ROWS
    ]
    path = write_csv(tmp_path / "in.csv", rows, encoding=encoding, delimiter=delimiter)
    sheet = load_sheet(path)
    assert sheet.headers == ("From", "To", "Text")
    assert sheet.delimiter == delimiter
    assert [row.cells for row in sheet.rows] == [tuple(row) for row in rows[1:]]


def test_xlsx_every_cell_is_text(tmp_path: Path) -> None:
    """Numeric cells come back as their digits, without a trailing .0."""
    path = write_xlsx(
        tmp_path / "in.xlsx",
        [["From", "To", "Text"], ["+15555550100", 14155551234, "hi"], [None, 442079462286.0, 7]],
    )
    sheet = load_sheet(path)
    assert [row.cells for row in sheet.rows] == [
        ("+15555550100", "14155551234", "hi"),
        ("", "442079462286", "7"),
    ]


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_blank_rows_skipped_and_row_numbers_kept(tmp_path: Path, kind: str) -> None:
    """Blank rows are skipped but still count, so row numbers match the spreadsheet's."""
    rows: list[list[Cell]] = [
        ["To", "Text"],
        ["4155551234", "a"],
        ["", ""],
        [None, None],
        ["4155552671", "b"],
    ]
    if kind == "csv":
        path = write_csv(tmp_path / "in.csv", rows)
    else:
        path = write_xlsx(tmp_path / "in.xlsx", rows)
    sheet = load_sheet(path)
    assert sheet.header_number == 1
    assert [row.number for row in sheet.rows] == [2, 5]


def test_xlsx_table_away_from_a1(tmp_path: Path) -> None:
    """A table that starts at C3 keeps its real row numbers."""
    path = write_xlsx(
        tmp_path / "in.xlsx", [["To", "Text"], ["4155551234", "a"]], first_cell=(3, 3)
    )
    sheet = load_sheet(path)
    assert (sheet.header_number, sheet.headers) == (3, ("To", "Text"))
    assert [(row.number, row.cells) for row in sheet.rows] == [(4, ("4155551234", "a"))]


def test_xlsx_sheet_option(tmp_path: Path) -> None:
    """--sheet picks a sheet by name, case-insensitively; the first is the default."""
    path = write_xlsx(
        tmp_path / "in.xlsx", [["To"], ["4155551234"]], sheet="Contacts", extra_sheets=["Other"]
    )
    assert load_sheet(path).sheet_name == "Contacts"
    assert load_sheet(path, "contacts").sheet_name == "Contacts"
    with pytest.raises(InputError, match="no sheet named 'Leads'") as caught:
        load_sheet(path, "Leads")
    assert "Its sheets are: 'Contacts', 'Other'." in caught.value.hint


def test_scientific_cells_found(tmp_path: Path) -> None:
    """A numeric cell displayed as 1.41555E+10 is recorded by (row, column)."""
    path = write_xlsx(
        tmp_path / "in.xlsx",
        [["Text", "To"], ["a", 14155500000], ["b", 14155551234], ["c", "1.41555E+10"]],
        formats={(2, 2): "0.00E+00", (4, 2): "0.00E+00"},
    )
    assert load_sheet(path).scientific == {(2, 1)}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"\n\n ,, \n", "is empty"),
        (b"\x00\x01\x02binary", "is not a text file"),
        (b"\xd0\xcf\x11\xe0old excel", "old-style .xls workbook"),
        (b"PK\x03\x04not really a zip", "could not be read as an Excel workbook"),
        (b'To,Text\n"unclosed,quote\n', "not a well-formed CSV"),
    ],
)
def test_unreadable_files(tmp_path: Path, content: bytes, message: str) -> None:
    """Files that cannot be handoff files give one clear message."""
    path = tmp_path / "in.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_sheet(path)


def test_missing_file(tmp_path: Path) -> None:
    """A path that does not exist says so."""
    with pytest.raises(InputError, match="no such file"):
        load_sheet(tmp_path / "nope.csv")


@pytest.mark.parametrize(
    ("cells", "blank"),
    [
        ((), True),
        (("", ""), True),
        ((" ", "\t", "\u3000", "\x1c", "\xa0\n"), True),
        (("", "x"), False),
        (("\u200b",), False),  # a zero-width space is not white space: the row has content
        ((" ", " a "), False),
    ],
)
def test_is_blank(cells: tuple[str, ...], blank: bool) -> None:
    """A row is blank when every cell is empty or white space, whatever the white space."""
    assert is_blank(cells) is blank
    assert is_blank(cells) == all(not cell or cell.isspace() for cell in cells)
