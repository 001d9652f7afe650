"""XLSX files no spreadsheet app writes: bombs, odd formats, encrypted and other packages."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from batcher import workbook
from batcher.cli import main
from batcher.errors import InputError
from batcher.limits import MAX_INFLATED
from batcher.loading import load_sheet
from tests.sheets import MAIN_NS, sheet_xml, write_csv, write_raw_xlsx, write_xlsx

SENDER = "+15555550100"
HEAD = (
    '<row r="1"><c r="A1" t="inlineStr"><is><t>From</t></is></c>'
    '<c r="B1" t="inlineStr"><is><t>To</t></is></c>'
    '<c r="C1" t="inlineStr"><is><t>Text</t></is></c></row>'
    f'<row r="2"><c r="A2" t="inlineStr"><is><t>{SENDER}</t></is></c>'
    '<c r="B2"><v>14155551234</v></c><c r="C2" t="inlineStr"><is><t>hi</t></is></c></row>'
)


def far_cell(ref: str, row: int) -> str:
    return f'<row r="{row}"><c r="{ref}"><v>1</v></c></row>'


@pytest.mark.parametrize(
    ("rows", "dimension", "message"),
    [
        (far_cell("XFD1048576", 1048576), None, "17,179,869,184 cells from A1"),
        (far_cell("AZ1048576", 1048576), None, "54,525,952 cells from A1"),
        (far_cell("J1000001", 1000001), None, "10,000,010 cells from A1"),
        (far_cell("XFE1", 3), None, "beyond the last row (1,048,576) or column (XFD)"),
        (far_cell("A1048577", 1048577), None, "beyond the last row"),
        (far_cell("A99999999999", 5), None, "beyond the last row"),
        ("", "A1:XFE2", "beyond the last row"),
        # Cells without a reference take the next column: 20 of them on row 600,000.
        ('<row r="600000">' + "<c><v>1</v></c>" * 20 + "</row>", None, "12,000,000 cells"),
        # Rows without a reference take the next row.
        ("<row><c><v>1</v></c></row>" * 3 + far_cell("XFD4", 4), None, "65,536 cells"),
        # A '>' inside a quoted attribute does not end the tag.
        ('<row r="9"><c x=">" r="XFD1048576"><v>1</v></c></row>', None, "17,179,869,184"),
        # Nor does a reference inside another attribute's value, or one named a-r.
        (
            """<row r="9"><c x=" r='A1'" a-r="A1" r="XFD1048576"><v>1</v></c></row>""",
            None,
            "17,179,869,184",
        ),
        # Either quote, spaces around "=", a namespace prefix: all read as references.
        ("""<row r="9"><c r = 'XFD1048576'><v>1</v></c></row>""", None, "17,179,869,184"),
        ('<x:row r="9"><x:c r="XFD1048576"><x:v>1</x:v></x:c></x:row>', None, "17,179,869,184"),
    ],
    ids=[
        "XFD1048576",
        "AZ1048576",
        "J1000001",
        "XFE1",
        "row-1048577",
        "eleven-digit-row",
        "declared-XFE2",
        "unreferenced-cells",
        "unreferenced-rows",
        "quoted-gt",
        "quoted-ref",
        "single-quotes",
        "prefixed",
    ],
)
def test_sheet_beyond_the_limits_is_refused(
    tmp_path: Path, rows: str, dimension: str | None, message: str
) -> None:
    """A used range beyond Excel's grid or MAX_CELLS is refused before it is read."""
    xml = sheet_xml(HEAD + rows, dimension=dimension)
    path = write_raw_xlsx(tmp_path / "bomb.xlsx", [("Sheet1", xml)])
    if message == "65,536 cells":  # within the limit: read, and far wider than the data
        assert load_sheet(path).headers[:3] == ("From", "To", "Text")
        return
    with pytest.raises(InputError, match=re.escape(message)):
        load_sheet(path)


def test_a_bomb_exits_2_in_a_real_process(tmp_path: Path) -> None:
    """The 4 KB file with a cell at XFD1048576 aborted the process (exit 134): now exit 2."""
    xml = sheet_xml(HEAD + far_cell("XFD1048576", 1048576))
    path = write_raw_xlsx(tmp_path / "bomb.xlsx", [("Sheet1", xml)])
    assert path.stat().st_size < 5000
    done = subprocess.run(
        [sys.executable, "-m", "batcher", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "RUST_BACKTRACE": "0"},
    )
    assert done.returncode == 2, done.stderr
    assert "more than the 10,000,000 chert-batch reads" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def _declare_size(path: Path, member: str, size: int) -> None:
    """Rewrite the size a zip member declares (local header and central directory)."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    local = data.index(b"PK\x03\x04")
    while data[local + 30 : local + 30 + len(name)] != name:
        local = data.index(b"PK\x03\x04", local + 4)
    struct.pack_into("<I", data, local + 22, size)
    central = data.index(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len(name)] != name:
        central = data.index(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", data, central + 24, size)
    path.write_bytes(bytes(data))


def test_declared_sizes_over_the_limit_are_refused(tmp_path: Path) -> None:
    """Parts that declare more than MAX_INFLATED in all are refused without inflating them."""
    path = write_raw_xlsx(tmp_path / "big.xlsx", [("Sheet1", sheet_xml(HEAD))])
    _declare_size(path, "xl/worksheets/sheet1.xml", MAX_INFLATED + 1)
    with pytest.raises(InputError, match="too large to read safely: its parts inflate to 512"):
        load_sheet(path)


def test_a_part_inflating_past_its_declared_size_is_refused(tmp_path: Path) -> None:
    """The declared size is not trusted alone: a part holding more than it says is refused."""
    strings = f'<sst xmlns="{MAIN_NS}"><si><t>{"x" * 200_000}</t></si></sst>'
    path = write_raw_xlsx(
        tmp_path / "liar.xlsx", [("Sheet1", sheet_xml(HEAD))], shared_strings=strings
    )
    _declare_size(path, "xl/sharedStrings.xml", 1000)
    with pytest.raises(InputError, match=r"sharedStrings\.xml is not what the file says"):
        load_sheet(path)


@pytest.mark.parametrize("kind", ["inline", "shared"])
def test_long_cells_are_read_whole(tmp_path: Path, kind: str) -> None:
    """A cell over Excel's 32,767 characters is read whole, never cut."""
    text = "x" * 40_000 + "END"
    if kind == "inline":
        cell, strings = f'<c r="C3" t="inlineStr"><is><t>{text}</t></is></c>', None
    else:
        cell = '<c r="C3" t="s"><v>0</v></c>'
        strings = f'<sst xmlns="{MAIN_NS}"><si><t>{text}</t></si></sst>'
    xml = sheet_xml(HEAD + f'<row r="3"><c r="B3"><v>14155552671</v></c>{cell}</row>')
    path = write_raw_xlsx(tmp_path / "long.xlsx", [("Sheet1", xml)], shared_strings=strings)
    assert load_sheet(path).rows[1].cells[2] == text


def test_results_xlsx_keeps_long_cells_whole(tmp_path: Path) -> None:
    """openpyxl cuts strings at 32,767 characters: the results sheet keeps them whole."""
    long_note = "n" * 40_000 + "END"
    xml = sheet_xml(
        HEAD.replace("</row>", '<c r="D1" t="inlineStr"><is><t>Notes</t></is></c></row>', 1)
        + f'<row r="3"><c r="B3"><v>14155552671</v></c><c r="C3" t="inlineStr"><is><t>yo</t>'
        f'</is></c><c r="D3" t="inlineStr"><is><t>{long_note}</t></is></c></row>'
    )
    path = write_raw_xlsx(tmp_path / "long.xlsx", [("Sheet1", xml)])
    result = CliRunner().invoke(main, ["validate", str(path), "--from", SENDER])
    assert result.exit_code == 0, result.output
    results = load_sheet(tmp_path / "long.results.xlsx")
    assert results.rows[1].cells[3] == long_note


STYLES = (
    f'<?xml version="1.0"?><styleSheet xmlns="{MAIN_NS}">'
    '<cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="11"/></cellXfs>{junk}</styleSheet>'
)


def test_unreadable_number_formats_refuse_numeric_phone_cells(tmp_path: Path) -> None:
    """styles.xml that cannot be parsed: numeric phone cells are refused, text ones are not."""
    rows = HEAD.replace('<c r="B2">', '<c r="B2" s="1">') + (
        '<row r="3"><c r="A3" t="inlineStr"><is><t>+15555550100</t></is></c>'
        '<c r="B3" t="inlineStr"><is><t>+14155552671</t></is></c>'
        '<c r="C3" t="inlineStr"><is><t>yo</t></is></c></row>'
    )
    styles = STYLES.format(junk="<x>&undefined;</x>")
    path = write_raw_xlsx(tmp_path / "in.xlsx", [("Sheet1", sheet_xml(rows))], styles=styles)
    sheet = load_sheet(path)
    assert sheet.formats_problem.startswith("its number formats (xl/styles.xml) cannot be read")
    assert sheet.scientific == {(2, 1)}
    assert sheet.rows[0].cells[1] == "14155551234"  # not shown as scientific: not known to be
    result = CliRunner().invoke(main, ["validate", str(path), "--json"])
    summary = json.loads(result.output)
    assert result.exit_code == 1
    assert summary["by_status"]["invalid"] == 1
    assert summary["by_status"]["pending"] == 1
    [problem] = summary["problems"]
    assert problem["row"] == 2
    assert "number formats (xl/styles.xml) cannot be read" in problem["message"]
    assert "Format the column as Text" in problem["message"]


def test_readable_number_formats_still_guard(tmp_path: Path) -> None:
    """The same workbook with a readable styles.xml: only the scientific cell is refused."""
    rows = HEAD.replace('<c r="B2">', '<c r="B2" s="1">')
    path = write_raw_xlsx(
        tmp_path / "in.xlsx", [("Sheet1", sheet_xml(rows))], styles=STYLES.format(junk="")
    )
    sheet = load_sheet(path)
    assert (sheet.formats_problem, sheet.scientific) == ("", frozenset({(2, 1)}))
    assert sheet.rows[0].cells[1] == "1.41556E+10"


def test_password_protected_workbook(tmp_path: Path) -> None:
    """An encrypted workbook (OLE with EncryptionInfo and EncryptedPackage) is named as such."""
    directory = b"".join(
        name.encode("utf-16-le").ljust(64, b"\0") for name in ("EncryptionInfo", "EncryptedPackage")
    )
    path = tmp_path / "locked.xlsx"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 5000 + directory)
    with pytest.raises(InputError, match="is password-protected") as caught:
        load_sheet(path)
    assert "File > Info > Protect Workbook > Encrypt with Password" in caught.value.hint
    assert 'untick "Save with password"' in caught.value.hint
    old = tmp_path / "old.xls"
    old.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 5000)
    with pytest.raises(InputError, match=r"old-style \.xls workbook"):
        load_sheet(old)


ODS_CONTENT = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
    '<office:body><office:spreadsheet><table:table table:name="Sheet1">'
    "<table:table-row><table:table-cell><text:p>To</text:p></table:table-cell>"
    "<table:table-cell><text:p>Text</text:p></table:table-cell></table:table-row>"
    '<table:table-row><table:table-cell office:value-type="float" office:value="14155500000">'
    "<text:p>1.42E+10</text:p></table:table-cell>"
    "<table:table-cell><text:p>hi</text:p></table:table-cell></table:table-row>"
    "</table:table></office:spreadsheet></office:body></office:document-content>"
)


def test_ods_is_refused_with_what_to_do(tmp_path: Path) -> None:
    """.ods was read without the scientific guard: now refused, saying how to save it."""
    path = tmp_path / "in.ods"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("content.xml", ODS_CONTENT)
    with pytest.raises(InputError, match=r"is an OpenDocument spreadsheet \(.ods\)") as caught:
        load_sheet(path)
    assert "save it as .xlsx" in caught.value.hint
    assert "CSV UTF-8" in caught.value.hint


def test_other_zip_files_are_refused(tmp_path: Path) -> None:
    """A binary workbook or any other zip file is named for what it is."""
    xlsb = tmp_path / "in.xlsb"
    with zipfile.ZipFile(xlsb, "w") as archive:
        archive.writestr("xl/workbook.bin", b"\0")
    with pytest.raises(InputError, match=r"binary Excel workbook \(.xlsb\)"):
        load_sheet(xlsb)
    other = tmp_path / "in.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("readme.txt", "hi")
    with pytest.raises(InputError, match="is a zip file, but not an Excel workbook"):
        load_sheet(other)


def test_trailing_empty_columns_of_an_xlsx_are_dropped(tmp_path: Path) -> None:
    """A header padded with empty cells to column 10,000 reads as its named columns."""
    padding = '<c r="NTP1" t="inlineStr"><is><t></t></is></c>'
    xml = sheet_xml(HEAD.replace("</row>", padding + "</row>", 1))
    path = write_raw_xlsx(tmp_path / "wide.xlsx", [("Sheet1", xml)])
    assert load_sheet(path).headers == ("From", "To", "Text")


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_title_rows_above_the_header(tmp_path: Path, kind: str) -> None:
    """A title row above the header: the header is found, and the results keep the title."""
    rows = [
        ["Spring campaign - do not edit"],
        [],
        ["From", "To", "Text"],
        [SENDER, "+14155551234", "hi"],
    ]
    if kind == "csv":
        path = write_csv(tmp_path / "in.csv", rows)
    else:
        path = write_xlsx(tmp_path / "in.xlsx", rows)
    sheet = load_sheet(path)
    assert (sheet.header_number, sheet.headers) == (3, ("From", "To", "Text"))
    assert [(row.number, row.cells) for row in sheet.above] == [
        (1, ("Spring campaign - do not edit",))
    ]
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    results = load_sheet(tmp_path / f"in.results.{kind}")
    assert results.above[0].cells[0] == "Spring campaign - do not edit"
    assert results.header_number == 3
    assert results.rows[0].cells[:4] == (SENDER, "+14155551234", "hi", "pending")


def test_header_is_looked_for_in_the_first_ten_rows_only(tmp_path: Path) -> None:
    """Ten non-empty rows of notes first: the first row is taken as the header, as before."""
    rows = [[f"note {n}"] for n in range(10)] + [["From", "To", "Text"], [SENDER, "1", "x"]]
    sheet = load_sheet(write_csv(tmp_path / "in.csv", rows))
    assert (sheet.header_number, sheet.headers) == (1, ("note 0", "", ""))


def test_notes_sheet_first_points_at_the_data_sheet(tmp_path: Path) -> None:
    """A first sheet of notes, data on another: the message says --sheet NAME."""
    path = write_xlsx(
        tmp_path / "in.xlsx", [["Read me first"], ["Send on Monday"]], extra_sheets=["Q2 data"]
    )
    from openpyxl import load_workbook

    book = load_workbook(path)
    data = book["Q2 data"]
    for row in (["From", "To", "Text"], [SENDER, "+14155551234", "hi"]):
        data.append(row)
    book.save(path)
    with pytest.raises(InputError, match="has no recipients column, but sheet 'Q2 data' has one"):
        load_sheet(path)
    with pytest.raises(InputError) as caught:
        load_sheet(path)
    assert caught.value.hint == "Pass --sheet 'Q2 data' to send that sheet's rows."
    assert load_sheet(path, "Q2 data").headers == ("From", "To", "Text")


def test_wide_csv_headers(tmp_path: Path) -> None:
    """Past 16,384 named columns is refused; empty cells padding a header are dropped."""
    padded = tmp_path / "padded.csv"
    padded.write_text("From,To,Text" + "," * 1_000_000 + f"\n{SENDER},4155551234,hi\n")
    assert load_sheet(padded).headers == ("From", "To", "Text")
    wide = tmp_path / "wide.csv"
    wide.write_text("To,Text," + ",".join(f"c{n}" for n in range(16_383)) + "\n1,x\n")
    with pytest.raises(InputError, match="row 1 has 16,385 columns: a spreadsheet holds at most"):
        load_sheet(wide)


_LETTERS = st.text(alphabet="ABCXYZab", max_size=3)
_DIGITS = st.text(alphabet="0123456789", max_size=8)
_TAGS = st.one_of(
    st.builds(lambda row: f'<row r="{row}">', _DIGITS),
    st.builds(lambda col, row: f'<c r="{col}{row}" t="s"><v>1</v></c>', _LETTERS, _DIGITS),
    st.builds(lambda col, row: f'<c s="1" r="{col}{row}"/>', _LETTERS, _DIGITS),  # not plain
    st.just("<c r=\"B7'>"),  # a quote that is not plain
    st.just("</row>"),
    st.just('<!-- <c r="Z9"> -->'),
)


@given(st.lists(_TAGS, max_size=12))
def test_plain_references_read_what_the_general_pattern_reads(tags: list[str]) -> None:
    """Where the fast reading of references applies, it finds what _TAG finds."""
    block = "".join(tags).encode()
    plain = workbook._plain_references(block)
    if plain is None:
        return
    general = workbook._TAG.findall(block)
    assert plain == [(column, row) for _, column, row in general]
