"""Writing the results sheet: the input's columns unchanged, then what happened to each row.

Written atomically (a temporary file beside the target, then a rename), in the
format its extension names: .csv, .txt, .tsv or .xlsx (`OUTPUT_SUFFIXES`). Nothing written
can become a formula: XLSX cells are all string cells, and CSV cells that a
spreadsheet would evaluate get a leading apostrophe (OWASP CSV injection; see
`batcher.cells`, which also reads them back exactly).
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from batcher.cells import ESCAPED_START, escape_csv_cell, holds_escaped_cells, unescape_csv_cell
from batcher.columns import RESULT_COLUMNS, ColumnMap
from batcher.errors import OutputError, UsageError
from batcher.loading import Sheet, SheetKind
from batcher.model import RowOutcome

if TYPE_CHECKING:  # openpyxl is imported only to write XLSX: CSV output need not load it
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

# Input columns that are also result columns: an empty result keeps what the user wrote.
# What `status` read back is kept too: `run` and `validate` know nothing of it.
_KEEP_INPUT_WHEN_EMPTY = frozenset(
    {"chat_id", "idempotency_key", "delivery", "delivered_at", "read_at", "replied_at", "reply"}
)


# The formats a results sheet is written in, by extension (README: "The results sheet").
# .csv and .txt keep the input CSV's delimiter; .tsv is tab-separated.
OUTPUT_SUFFIXES: dict[str, SheetKind] = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".xlsx": "xlsx",
}
# Workbooks in a format not written get their results as XLSX; any other input, as CSV.
_WORKBOOK_SUFFIXES = frozenset({".xlsx", ".xlsm", ".ods"})


def default_output(source: Path, out: Path | None, *, tag: str = "results") -> Path:
    """`--out` (if its extension is a format written), or `<input stem>.<tag>.<ext>` beside it."""
    if out is not None:
        check_output_name(out)
        return out
    suffix = source.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        suffix = ".xlsx" if suffix in _WORKBOOK_SUFFIXES else ".csv"
    return source.with_name(f"{source.stem}.{tag}{suffix}")


def check_output_name(out: Path) -> None:
    """Raise UsageError unless `out`'s extension names a format results are written in."""
    if out.suffix.lower() in OUTPUT_SUFFIXES:
        return
    named = f"the extension {out.suffix!r}" if out.suffix else "no extension"
    raise UsageError(
        f"--out {out} has {named}: results are written as .csv, .tsv, .txt or .xlsx.",
        hint="Name the results file with one of these; its extension picks the format.",
    )


def check_writable(path: Path, what: str, option: str) -> None:
    """Raise OutputError unless a file can be written at `path`, naming what is in the way.

    Made before anything is sent: a results sheet or a journal found unwritable only
    afterwards would leave the account of what was sent nowhere to go.
    """
    if path.is_dir():
        raise OutputError(
            f"the {what} {path} is a folder.",
            hint=f"Remove or rename that folder, or choose another {option}.",
        )
    folder = path.parent
    if not folder.is_dir():
        blocked = next((p for p in folder.parents if p.exists()), folder)
        if folder.exists() or not blocked.is_dir():
            found = folder if folder.exists() else blocked
            problem = f"{found} is a file, not a folder"
        else:
            problem = f"the folder {folder} does not exist"
        raise OutputError(
            f"the {what} {path} cannot be written: {problem}.",
            hint=f"Choose another {option}, or create the folder.",
        )
    try:
        handle, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(
            f"the {what} {path} cannot be written: the folder {folder} is read-only "
            f"({exc.strerror or exc}).",
            hint=f"Choose another {option} in a folder you can write to.",
        ) from None
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(
            f"the {what} {path} cannot be replaced: the file is read-only.",
            hint=f"Make it writable (or close the program that holds it), or choose another "
            f"{option}.",
        )


def output_kind(out: Path) -> SheetKind:
    """The output's format, from its extension (checked by check_output_name)."""
    return OUTPUT_SUFFIXES[out.suffix.lower()]


def _delimiter(out: Path, sheet: Sheet) -> str:
    if out.suffix.lower() == ".tsv":
        return "\t"
    return sheet.delimiter if sheet.kind == "csv" else ","


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
    check_output_name(out)
    lines = _lines(sheet, columns, outcomes)
    try:
        with _atomic(out) as temporary:
            if output_kind(out) == "xlsx":
                phone_columns = {i for i in (*columns.recipients, columns.sender) if i is not None}
                _write_xlsx(temporary, sheet, lines, phone_columns)
            else:
                _write_csv(temporary, lines, _delimiter(out, sheet))
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
    # Rows above the header (a title, a note) are written back where they were.
    previous = 0
    for row in sheet.above:
        for _ in range(previous + 1, row.number):
            yield []
        previous = row.number
        yield _texts(row.cells) if unescape else list(row.cells)
    for _ in range(previous + 1, sheet.header_number):
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
        cell = WriteOnlyCell(worksheet)
        # Set past openpyxl's setter, which cuts strings at Excel's 32,767 characters
        # without a word: a cell read whole is written whole (README: "The results sheet").
        cell._value = ILLEGAL_CHARACTERS_RE.sub("", value)
        cell.data_type = "s"
        if font is not None:
            cell.font = font
        if is_phone:
            cell.number_format = "@"  # Text: what a person types here later stays text too
        return cell

    try:
        for number, line in enumerate(lines, start=1):
            font = bold if number == sheet.header_number else None
            worksheet.append(
                [string_cell(value, font, i in phone_columns) for i, value in enumerate(line)]
            )
    except BaseException:
        # Interrupted (a signal, an error making a line): end openpyxl's spooled rows now.
        # Left to the interpreter's exit, its two generators close in any order, and the
        # one writing the rows complains of a closed file with a traceback.
        worksheet.close()
        raise
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
