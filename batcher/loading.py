"""Loading a handoff file: every cell as text, with its sheet row number from the start.

CSV (UTF-8 with or without BOM, or Excel's cp1252; comma, semicolon or tab) is
read with the stdlib so blank lines keep their place in the row numbering.
XLSX is read by `batcher.workbook`. Both become the same `Sheet`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

from batcher.errors import InputError
from batcher.workbook import read_sheet

SheetKind = Literal["csv", "xlsx"]

_XLSX_MAGIC = b"PK\x03\x04"
_XLS_MAGIC = b"\xd0\xcf\x11\xe0"
_DELIMITERS = (",", ";", "\t")


class SheetRow(NamedTuple):
    """One non-empty data row: its number as the spreadsheet shows it, and its cells as text.

    A NamedTuple: there is one per row, and it is much cheaper to build than a frozen dataclass.
    """

    number: int
    cells: tuple[str, ...]

    def cell(self, index: int) -> str:
        """The cell at a column index, or "" past the end of a short row."""
        return self.cells[index] if index < len(self.cells) else ""


@dataclass(frozen=True)
class Sheet:
    """A handoff file as read: the header, the data rows and what the reader noticed."""

    path: Path
    kind: SheetKind
    header_number: int
    headers: tuple[str, ...]
    rows: tuple[SheetRow, ...]
    delimiter: str = ","
    sheet_name: str = ""
    # (row number, column index) of numeric cells displayed in scientific notation.
    scientific: frozenset[tuple[int, int]] = field(default_factory=frozenset)


def load_sheet(path: Path, sheet: str | None = None) -> Sheet:
    """Read a CSV or XLSX handoff file; raise InputError with what to do if it cannot be used."""
    try:
        with path.open("rb") as stream:
            magic = stream.read(4)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file.", hint="Check the path and try again.") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not a spreadsheet.") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}).") from None
    if magic == _XLS_MAGIC:
        raise InputError(
            f"{path} is an old-style .xls workbook, which chert-batch does not read.",
            hint="Open it in Excel or LibreOffice and save it as .xlsx or as CSV UTF-8.",
        )
    if magic == _XLSX_MAGIC:
        return _load_xlsx(path, sheet)
    if sheet is not None:
        raise InputError(f"--sheet {sheet!r} was given, but {path} is a CSV file with no sheets.")
    return _load_csv(path)


def is_blank(cells: Iterable[str]) -> bool:
    """Whether every cell of a row is empty or white space."""
    # The cells joined are empty or all white space exactly when each cell is; one join
    # and one isspace() cost far less than a test per cell, on every row of the sheet.
    joined = "".join(cells)
    return not joined or joined.isspace()


def _build(
    where: Path | str, records: Iterable[Sequence[str]]
) -> tuple[int, tuple[str, ...], tuple[SheetRow, ...]]:
    """Find the header (the first non-blank row) and number the data rows after it."""
    numbered = enumerate(records, start=1)
    for number, cells in numbered:
        if not is_blank(cells):
            header_number, headers = number, tuple(cell.strip() for cell in cells)
            break
    else:
        raise InputError(
            f"{where} is empty: there is no header row and no data.",
            hint="The first row should name the columns, e.g. From, To, Text.",
        )
    rows = [SheetRow(number, tuple(cells)) for number, cells in numbered if not is_blank(cells)]
    width = max([len(headers), *(len(row.cells) for row in rows)])
    return header_number, headers + ("",) * (width - len(headers)), tuple(rows)


# --- CSV --------------------------------------------------------------------------------------


def _load_csv(path: Path) -> Sheet:
    text = _decode(path, path.read_bytes())
    delimiter = sniff_delimiter(text)
    records = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header_number, headers, rows = _build(path, records)
    except csv.Error as exc:
        raise InputError(
            f"{path} is not a well-formed CSV file: {exc} near line {records.line_num}.",
            hint="Open it in a spreadsheet and save it again as CSV UTF-8.",
        ) from None
    return Sheet(path, "csv", header_number, headers, rows, delimiter=delimiter)


def _decode(path: Path, data: bytes) -> str:
    """UTF-8 (with or without BOM) first, then Excel's Windows-1252."""
    if b"\x00" in data[:65536]:
        raise InputError(
            f"{path} is not a text file, so it cannot be a CSV file.",
            hint="Give chert-batch a .csv or .xlsx handoff file.",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        raise InputError(
            f"{path} is neither UTF-8 nor Windows-1252 text.",
            hint="Save it from your spreadsheet as 'CSV UTF-8'.",
        ) from None


def sniff_delimiter(text: str) -> str:
    """The delimiter among comma, semicolon and tab that the header line uses most."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    counts = {delimiter: header.count(delimiter) for delimiter in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


# --- XLSX -------------------------------------------------------------------------------------


def _load_xlsx(path: Path, sheet: str | None) -> Sheet:
    read = read_sheet(path, sheet)
    header_number, headers, rows = _build(f"{path}, sheet {read.name!r},", read.records)
    return Sheet(
        path,
        "xlsx",
        header_number,
        headers,
        rows,
        sheet_name=read.name,
        scientific=read.scientific,
    )
