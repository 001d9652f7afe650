"""Loading a handoff file: every cell as text, with its sheet row number from the start.

CSV (UTF-8, UTF-16 or UTF-32 with a byte-order mark, or Excel's Windows-1252, see
batcher.textfile; comma, semicolon or tab) is read with the stdlib so blank lines
keep their place in the row numbering, and its fields whole, however long.
XLSX is read by `batcher.workbook`. Both become the same `Sheet`.
"""

from __future__ import annotations

import csv
import io
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

from batcher.columns import names_recipients
from batcher.errors import InputError
from batcher.limits import check_width
from batcher.textfile import decode_text, sniff_delimiter, whole_fields
from batcher.workbook import is_encrypted, other_sheets, read_sheet

SheetKind = Literal["csv", "xlsx"]

_XLSX_MAGIC = b"PK\x03\x04"
_XLS_MAGIC = b"\xd0\xcf\x11\xe0"
# The header is the first of this many non-empty rows that names a recipients column
# (a title or a note may come first), else the first non-empty row.
HEADER_SEARCH = 10


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
    # The text encoding a CSV file was read in ("UTF-8", "Windows-1252", ...); "" for XLSX.
    encoding: str = ""
    sheet_name: str = ""
    # (row number, column index) of numeric cells displayed in scientific notation, or of
    # every numeric cell when the workbook's number formats cannot be read (then
    # `formats_problem` says why): none of them can be trusted to be the number shown.
    scientific: frozenset[tuple[int, int]] = field(default_factory=frozenset)
    formats_problem: str = ""
    # Non-empty rows above the header (a title, a note): not data, but kept in the results.
    above: tuple[SheetRow, ...] = ()
    # XLSX: the row numbers hidden in the sheet (by hand or by a filter), and the column
    # indexes hidden; the sheet's state ("visible", "hidden", "veryHidden"), and the hidden
    # sheets before it that the default passed over.
    hidden_rows: frozenset[int] = field(default_factory=frozenset)
    hidden_columns: frozenset[int] = field(default_factory=frozenset)
    sheet_state: str = "visible"
    passed_over: tuple[str, ...] = ()


class Table(NamedTuple):
    """The rows of a file, told apart: the header, the data after it and the rows above it."""

    header_number: int
    headers: tuple[str, ...]
    rows: tuple[SheetRow, ...]
    above: tuple[SheetRow, ...]


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
    if magic == _XLS_MAGIC and is_encrypted(path):
        raise InputError(
            f"{path} is password-protected: the workbook is encrypted, so chert-batch cannot "
            "read it.",
            hint="Save a copy without the password. Excel: File > Info > Protect Workbook > "
            "Encrypt with Password, clear the password, OK, and save. LibreOffice: File > "
            'Save As, untick "Save with password", and save as .xlsx. Then use that copy.',
        )
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


def _build(where: Path | str, records: Iterable[Sequence[str]]) -> Table:
    """Find the header and number the data rows after it; rows above it are kept aside.

    The header is the first of the first HEADER_SEARCH non-empty rows that names a
    recipients column (see `names_recipients`), else the first non-empty row. Empty
    cells after a row's last value do not count towards its width: a header padded
    with empty cells far to the right is read as far as it has names.
    """
    numbered = enumerate(records, start=1)
    first: list[SheetRow] = []
    for number, cells in numbered:
        if not is_blank(cells):
            first.append(SheetRow(number, _within_width(where, number, cells, 0)))
            if names_recipients(first[-1].cells) or len(first) == HEADER_SEARCH:
                break
    if not first:
        raise InputError(
            f"{where} is empty: there is no header row and no data.",
            hint="The first row should name the columns, e.g. From, To, Text.",
        )
    at = next((at for at, row in enumerate(first) if names_recipients(row.cells)), 0)
    header_number = first[at].number
    headers = tuple(cell.strip() for cell in first[at].cells)
    named = len(headers)
    while named and not headers[named - 1]:
        named -= 1
    # Rows read while looking for the header, then the rest, all cut to their last value
    # beyond the header's names. The test before the call keeps the common row cheap.
    rows = [row._replace(cells=_within_width(where, *row, named)) for row in first[at + 1 :]]
    rows += [
        SheetRow(
            number,
            tuple(cells) if len(cells) <= named else _within_width(where, number, cells, named),
        )
        for number, cells in numbered
        if not is_blank(cells)
    ]
    above = tuple(row._replace(cells=_within_width(where, *row, 0)) for row in first[:at])
    width = max([named, *(len(row.cells) for row in rows), *(len(row.cells) for row in above)])
    headers = headers[:named] + ("",) * (width - named)
    return Table(header_number, headers, tuple(rows), above)


def _within_width(
    where: Path | str, number: int, cells: Sequence[str], at_least: int
) -> tuple[str, ...]:
    """A row's cells up to its last value (keeping `at_least`), refused if wider than a sheet."""
    used = len(cells)
    while used > at_least and not cells[used - 1]:
        used -= 1
    check_width(str(where), number, used)
    return tuple(cells[:used])


# --- CSV --------------------------------------------------------------------------------------


def _load_csv(path: Path) -> Sheet:
    text, encoding = decode_text(path, path.read_bytes())
    delimiter = sniff_delimiter(text)
    records = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        with whole_fields(text):
            header_number, headers, rows, above = _build(path, records)
    except csv.Error as exc:
        raise InputError(
            f"{path} is not a well-formed CSV file: {exc} near line {records.line_num}.",
            hint="Open it in a spreadsheet and save it again as CSV UTF-8.",
        ) from None
    return Sheet(
        path,
        "csv",
        header_number,
        headers,
        rows,
        delimiter=delimiter,
        encoding=encoding,
        above=above,
    )


# --- XLSX -------------------------------------------------------------------------------------


def _load_xlsx(path: Path, sheet: str | None) -> Sheet:
    read = read_sheet(path, sheet)
    where = f"{path}, sheet {read.name!r},"
    if not _names_recipients(read.records):
        _point_at_other_sheet(path, read.name, where)
    header_number, headers, rows, above = _build(where, read.records)
    return Sheet(
        path,
        "xlsx",
        header_number,
        headers,
        rows,
        sheet_name=read.name,
        scientific=read.scientific,
        formats_problem=read.formats_problem,
        above=above,
        hidden_rows=read.hidden_rows,
        hidden_columns=read.hidden_columns,
        sheet_state=read.state,
        passed_over=read.passed_over,
    )


def _names_recipients(records: Iterable[Sequence[str]]) -> bool:
    """Whether one of the first HEADER_SEARCH non-empty rows names a recipients column."""
    first = []
    for cells in records:
        if not is_blank(cells):
            first.append(cells)
            if len(first) == HEADER_SEARCH:
                break
    return any(names_recipients(cells) for cells in first)


def _point_at_other_sheet(path: Path, name: str, where: str) -> None:
    """A sheet without a recipients column (notes, say) when another sheet has one: say which."""
    others = other_sheets(path, name, _names_recipients)
    if others:
        other, hidden = others[0]
        which = f"the hidden sheet {other!r}" if hidden else f"sheet {other!r}"
        raise InputError(
            f"{where} has no recipients column, but {which} has one.",
            hint=f"Pass --sheet {shlex.quote(other)} to send that sheet's rows.",
        )
