"""Writing the results sheet: the input's columns unchanged, then what happened to each row.

Written atomically (a temporary file beside the target, then a rename), in the
input's format unless the output's extension says otherwise. Nothing written
can become a formula: XLSX cells are all string cells, and CSV cells that a
spreadsheet would evaluate get a leading apostrophe (OWASP CSV injection; see
`batcher.cells`, which also reads them back exactly).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from batcher.cells import ESCAPED_START, escape_csv_cell, holds_escaped_cells, unescape_csv_cell
from batcher.columns import RESULT_COLUMNS, ColumnMap
from batcher.errors import OutputError
from batcher.loading import Sheet, SheetKind
from batcher.model import RowOutcome

if TYPE_CHECKING:  # openpyxl is imported only to write XLSX: CSV output need not load it
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

# Input columns that are also result columns: an empty result keeps what the user wrote.
_KEEP_INPUT_WHEN_EMPTY = frozenset({"chat_id", "idempotency_key"})


def default_output(source: Path, out: Path | None) -> Path:
    """`--out`, or `<input stem>.results.<ext>` beside the input."""
    if out is not None:
        return out
    return source.with_name(f"{source.stem}.results{source.suffix.lower() or '.csv'}")


def output_kind(out: Path, sheet: Sheet) -> SheetKind:
    """The output's format: its extension decides, else the input's format."""
    suffix = out.suffix.lower()
    if suffix == ".xlsx":
        return "xlsx"
    if suffix in {".csv", ".tsv", ".txt"}:
        return "csv"
    return sheet.kind


def write_results(
    sheet: Sheet, columns: ColumnMap, outcomes: Mapping[int, RowOutcome], out: Path
) -> None:
    """Write the results sheet for every row of `sheet` to `out`, atomically."""
    write_rows(sheet, columns, (outcomes.get(row.number) for row in sheet.rows), out)


def write_rows(
    sheet: Sheet, columns: ColumnMap, outcomes: Iterable[RowOutcome | None], out: Path
) -> None:
    """Like write_results, with one outcome per row of `sheet`, in order (None: no result).

    The outcomes are taken as the lines are written, so they can be made meanwhile.
    """
    if out.resolve() == sheet.path.resolve():
        raise OutputError(
            f"the results would overwrite the input file {sheet.path}.",
            hint="Choose another --out; the input file is never modified.",
        )
    lines = _lines(sheet, columns, outcomes)
    try:
        with _atomic(out) as temporary:
            if output_kind(out, sheet) == "xlsx":
                phone_columns = {i for i in (*columns.recipients, columns.sender) if i is not None}
                _write_xlsx(temporary, sheet, lines, phone_columns)
            else:
                delimiter = sheet.delimiter if sheet.kind == "csv" else ","
                _write_csv(temporary, lines, delimiter)
    except OSError as exc:
        raise OutputError(
            f"could not write the results to {out} ({exc.strerror or exc}).",
            hint="Close the file if a spreadsheet has it open, or choose another --out.",
        ) from None


def _lines(
    sheet: Sheet, columns: ColumnMap, outcomes: Iterable[RowOutcome | None]
) -> Iterator[list[str]]:
    """Every line of the output, with the result columns filled in.

    Blank rows are written as blank lines, so that row numbers match the input's. The
    lines are made one at a time as they are written: a large sheet is not held twice.
    The input's cells are written as the texts they stand for: a results CSV read
    back has its cells unescaped first, so that writing them escapes each exactly once.
    """
    unescape = holds_escaped_cells(sheet.kind, columns)
    headers = _texts(sheet.headers) if unescape else list(sheet.headers)
    targets: dict[str, int] = {}
    for name in RESULT_COLUMNS:
        targets[name] = columns.results.get(name, len(headers))
        if name not in columns.results:
            headers.append(name)
    # Without result columns in the input, the results simply follow its cells.
    appended = not columns.results
    missing = [""] * (len(headers) - len(sheet.headers))  # the result columns it lacks
    for _ in range(1, sheet.header_number):
        yield []
    yield headers
    previous = sheet.header_number
    for row, outcome in zip(sheet.rows, outcomes, strict=True):
        for _ in range(previous + 1, row.number):
            yield []
        previous = row.number
        padding = [""] * (len(sheet.headers) - len(row.cells))
        read = _texts(row.cells) if unescape else row.cells
        if outcome is None:
            yield [*read, *padding, *missing]
        elif appended:
            # RowOutcome's fields are the result columns in order (a test holds them to it).
            yield [*read, *padding, str(outcome.status), *outcome[1:]]
        else:
            cells = [*read, *padding, *missing]
            for name, value in outcome.cells().items():
                if value or name not in _KEEP_INPUT_WHEN_EMPTY:
                    cells[targets[name]] = value
            yield cells


def _texts(cells: tuple[str, ...]) -> list[str]:
    """A results CSV's cells as the texts they were written for."""
    return [unescape_csv_cell(cell) if cell[:1] == "'" else cell for cell in cells]


def _write_csv(path: Path, lines: Iterator[list[str]], delimiter: str) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as stream:
        writer = csv.writer(stream, delimiter=delimiter)
        # escape_csv_cell's own first test inline: most cells start harmlessly, and
        # skipping a function call for each of them counts over a million cells.
        writer.writerows(
            [escape_csv_cell(cell) if cell[:1] in ESCAPED_START else cell for cell in line]
            for line in lines
        )


def _write_xlsx(
    path: Path, sheet: Sheet, lines: Iterator[list[str]], phone_columns: set[int]
) -> None:
    # Imported here: openpyxl takes a tenth of a second to import, and CSV output needs none.
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Font

    book = Workbook(write_only=True)
    worksheet = book.create_sheet(sheet.sheet_name or "results")
    bold = Font(bold=True)

    def string_cell(value: str, font: Font | None, is_phone: bool) -> WriteOnlyCell:
        """A cell that stays text whatever it holds: never a formula, never a number."""
        cell = WriteOnlyCell(worksheet, value=ILLEGAL_CHARACTERS_RE.sub("", value))
        cell.data_type = "s"
        if font is not None:
            cell.font = font
        if is_phone:
            cell.number_format = "@"  # Text: what a person types here later stays text too
        return cell

    for number, line in enumerate(lines, start=1):
        font = bold if number == sheet.header_number else None
        worksheet.append(
            [string_cell(value, font, i in phone_columns) for i, value in enumerate(line)]
        )
    book.save(path)


@contextmanager
def _atomic(target: Path) -> Iterator[Path]:
    """A temporary path beside `target` that replaces it only once fully written."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        with temporary.open("rb") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
