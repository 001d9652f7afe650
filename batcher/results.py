"""Writing the results sheet: the input's columns unchanged, then what happened to each row.

Written atomically (a temporary file beside the target, then a rename), in the
format its extension names: .csv, .txt, .tsv or .xlsx (`OUTPUT_SUFFIXES`). Nothing written
can become a formula: XLSX cells are all string cells, and CSV cells that a
spreadsheet would evaluate get a leading apostrophe (OWASP CSV injection; see
`batcher.cells`, which also reads them back exactly). An XLSX workbook is also
styled for reading (frozen bold header, filter, fitted widths, coloured statuses)
and gets a second sheet, Summary, with the counts and the per-line plan.
"""

from __future__ import annotations

import csv
import os
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from batcher.cells import ESCAPED_START, escape_csv_cell, holds_escaped_cells, unescape_csv_cell
from batcher.columns import RESULT_COLUMNS, ColumnMap
from batcher.errors import OutputError, UsageError
from batcher.lineplan import LinePlan, duration
from batcher.loading import Sheet, SheetKind
from batcher.model import CODE_MEANINGS, RowOutcome

if TYPE_CHECKING:  # xlsxwriter is imported only to write XLSX: CSV output need not load it
    from xlsxwriter.format import Format
    from xlsxwriter.worksheet import Worksheet

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
        # An unnamed file where the system allows it (O_TMPFILE), so that no signal landing
        # between creating and removing a probe can leave one behind in the user's folder.
        with tempfile.TemporaryFile(dir=folder):
            pass
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
    sheet: Sheet,
    columns: ColumnMap,
    outcomes: Mapping[int, RowOutcome],
    out: Path,
    plans: Sequence[LinePlan] = (),
) -> None:
    """Write the results sheet for every row of `sheet` to `out`, atomically.

    A workbook also gets a Summary sheet, with `plans` (what each line is to send).
    """
    made = (outcomes.get(row.number) for row in sheet.rows)
    write_rows(sheet, columns, made, out, lambda: plans)


def write_rows(
    sheet: Sheet,
    columns: ColumnMap,
    outcomes: Iterable[RowOutcome | None],
    out: Path,
    plans: Callable[[], Sequence[LinePlan]] = tuple,
) -> None:
    """Like write_results, with one outcome per row of `sheet`, in order (None: no result).

    The outcomes are taken as the lines are written, so they can be made meanwhile;
    `plans` is asked for the Summary once they all are.
    """
    if out.resolve() == sheet.path.resolve():
        raise OutputError(
            f"the results would overwrite the input file {sheet.path}.",
            hint="Choose another --out; the input file is never modified.",
        )
    check_output_name(out)
    layout = _layout(sheet, columns, holds_escaped_cells(sheet.kind, columns))
    lines = _lines(sheet, columns, layout, outcomes)
    try:
        with _atomic(out) as temporary:
            if output_kind(out) == "xlsx":
                phone_columns = {i for i in (*columns.recipients, columns.sender) if i is not None}
                _write_xlsx(temporary, sheet, layout, lines, phone_columns, plans)
            else:
                _write_csv(temporary, lines, _delimiter(out, sheet))
    except OSError as exc:
        raise OutputError(
            f"could not write the results to {out} ({exc.strerror or exc}).",
            hint="Close the file if a spreadsheet has it open, or choose another --out.",
        ) from None


class _Layout(NamedTuple):
    """The output's header row, and where each result column is in it."""

    headers: list[str]
    targets: dict[str, int]


def _layout(sheet: Sheet, columns: ColumnMap, unescape: bool) -> _Layout:
    """The input's headers, then the result columns it lacks."""
    headers = _texts(sheet.headers) if unescape else list(sheet.headers)
    targets: dict[str, int] = {}
    for name in RESULT_COLUMNS:
        targets[name] = columns.results.get(name, len(headers))
        if name not in columns.results:
            headers.append(name)
    return _Layout(headers, targets)


def _lines(
    sheet: Sheet, columns: ColumnMap, layout: _Layout, outcomes: Iterable[RowOutcome | None]
) -> Iterator[list[str]]:
    """Every line of the output, with the result columns filled in.

    Blank rows are written as blank lines, so that row numbers match the input's. The
    lines are made one at a time as they are written: a large sheet is not held twice.
    The input's cells are written as the texts they stand for: a results CSV read
    back has its cells unescaped first, so that writing them escapes each exactly once.
    """
    unescape = holds_escaped_cells(sheet.kind, columns)
    headers, targets = layout
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
    yield list(headers)
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


class Tint(NamedTuple):
    """How a status cell is coloured: its fill and its text colour."""

    fill: str
    font: str


GREEN = Tint("#C6EFCE", "#006100")
RED = Tint("#FFC7CE", "#9C0006")
AMBER = Tint("#FFEB9C", "#9C5700")
GREY = Tint("#E7E6E6", "#3A3A3A")

# A status cell's colours, by the status text (README: "The results sheet"). Keyed by the
# text, not by Status, so that statuses written by other versions are coloured too.
STATUS_TINTS: dict[str, Tint] = {
    "sent": GREEN,
    "delivered": GREEN,
    "invalid": RED,
    "failed": RED,
    "pending": AMBER,
    "duplicate": GREY,
    "skipped": GREY,
    "suppressed": GREY,
}

# The columns whose cells are coloured by STATUS_TINTS: `delivery` (sent, delivered,
# read) is filled in by `chert-batch status`, and kept as is by run and validate.
TINTED_COLUMNS = frozenset({"status", "delivery"})

# Column widths, in characters: fitted to the longest cell, within these bounds.
WIDTH_MIN = 6
WIDTH_MAX = 60
# Room for the filter's drop-down button beside a header, and a margin beside a cell.
_HEADER_ROOM = 4
_CELL_ROOM = 2


def status_tint(text: str) -> Tint | None:
    """The colours of a status cell holding `text`; None for a text that is no status."""
    return STATUS_TINTS.get(text.strip().casefold())


def fitted_width(header: str, longest: int) -> int:
    """A column's width: its header and its longest cell (in characters) fit, within bounds."""
    return max(WIDTH_MIN, min(WIDTH_MAX, max(len(header) + _HEADER_ROOM, longest + _CELL_ROOM)))


def _write_xlsx(
    path: Path,
    sheet: Sheet,
    layout: _Layout,
    lines: Iterator[list[str]],
    phone_columns: set[int],
    plans: Callable[[], Sequence[LinePlan]],
) -> None:
    """The results workbook: the results on the first sheet, styled, then a Summary sheet.

    Written with xlsxwriter in constant-memory mode: rows go to disk as they are made.
    Every cell is written with write_string, so nothing becomes a formula or a number;
    control characters are written as Excel's _xHHHH_ escapes, which read back exactly.
    The widths, the filter and the Summary are decided from every row, once all are
    written: xlsxwriter places them in the file only when it closes.
    """
    # Imported here: CSV output needs no workbook library.
    from xlsxwriter import Workbook
    from xlsxwriter.exceptions import FileCreateError

    with tempfile.TemporaryDirectory(prefix="chert-batch-") as spool:
        # The spooled rows live in `spool`: an interrupted write leaves nothing behind.
        book = Workbook(str(path), {"constant_memory": True, "tmpdir": spool})
        name = _sheet_title(sheet.sheet_name)
        worksheet = book.add_worksheet(name)
        # xlsxwriter cuts strings at Excel's 32,767 characters without a word: a cell read
        # whole is written whole (README: "The results sheet"; Excel itself will cut such a
        # cell when it opens the file, so CSV results keep it for Excel too).
        worksheet.xls_strmax = sys.maxsize
        bold = book.add_format({"bold": True})
        text = book.add_format({"num_format": "@"})  # what a person types later stays text
        tinted = {
            tint: book.add_format({"bg_color": tint.fill, "font_color": tint.font})
            for tint in set(STATUS_TINTS.values())
        }
        header_row = sheet.header_number - 1
        formats = [text if i in phone_columns else None for i in range(len(layout.headers))]
        styles = _StatusStyles(tinted)
        seen = _write_lines(worksheet, layout, lines, header_row, bold, formats, styles)
        headers = [*layout.headers, *[""] * (len(seen.longest) - len(layout.headers))]
        for column, header in enumerate(headers):
            style = text if column in phone_columns else None
            worksheet.set_column(column, column, fitted_width(header, seen.longest[column]), style)
        worksheet.freeze_panes(header_row + 1, 0)
        worksheet.autofilter(header_row, 0, seen.last, len(layout.headers) - 1)
        summary = book.add_worksheet(_summary_title(name))
        _write_summary(summary, bold, styles, seen, plans())
        try:
            book.close()
        except FileCreateError as exc:
            raise exc.args[0] from None  # the OSError it wraps: write_rows explains it


class _StatusStyles:
    """The format of a status cell, worked out once per status text."""

    def __init__(self, tinted: Mapping[Tint, Format]) -> None:
        self.tinted = tinted
        self.known: dict[str, Format | None] = {}

    def of(self, status: str) -> Format | None:
        """The format of a cell holding `status`: its tint, or none."""
        if status not in self.known:
            tint = status_tint(status)
            self.known[status] = self.tinted[tint] if tint else None
        return self.known[status]


class _Seen(NamedTuple):
    """What the written rows held: each column's longest cell, the last row, the counts."""

    longest: list[int]
    last: int
    statuses: Counter[str]
    codes: Counter[str]


def _write_lines(
    worksheet: Worksheet,
    layout: _Layout,
    lines: Iterator[list[str]],
    header_row: int,
    bold: Format,
    formats: list[Format | None],
    styles: _StatusStyles,
) -> _Seen:
    """Write every line (0-based row numbers), the header bold; say what they held."""
    longest = [0] * len(formats)
    statuses: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    status_column, code_column = layout.targets["status"], layout.targets["error_code"]
    tinted = [i for i, header in enumerate(layout.headers) if header in TINTED_COLUMNS]
    write = worksheet.write_string
    last = header_row
    for index, line in enumerate(lines):
        if index <= header_row:
            for column, value in enumerate(line):
                write(index, column, value, bold)
            continue
        if not line:
            continue  # a blank row stays blank, so that row numbers match the input's
        if len(line) > len(longest):  # cells under no header: their columns too
            formats += [None] * (len(line) - len(longest))
            longest += [0] * (len(line) - len(longest))
        last = index
        status = line[status_column]
        if status:
            statuses[status] += 1
        if line[code_column]:
            codes[line[code_column]] += 1
        for column in tinted:
            formats[column] = styles.of(line[column])
        for column, value in enumerate(line):
            if value:
                write(index, column, value, formats[column])
                if len(value) > longest[column]:
                    longest[column] = len(value)
    return _Seen(longest, last, statuses, codes)


def _sheet_title(name: str) -> str:
    """The first sheet's name: the input sheet's, if a workbook may have it, else "results"."""
    if not name or len(name) > 31 or _BAD_TITLE.search(name) or name.startswith("'"):
        return "results"
    return name


_BAD_TITLE = re.compile(r"[\[\]:*?/\\]")
SUMMARY_SHEET = "Summary"


def _summary_title(first: str) -> str:
    """The Summary sheet's name, unless the first sheet already has it (names ignore case)."""
    if first.casefold() != SUMMARY_SHEET.casefold():
        return SUMMARY_SHEET
    return f"{SUMMARY_SHEET} (chert-batch)"


def _write_summary(
    worksheet: Worksheet,
    bold: Format,
    styles: _StatusStyles,
    seen: _Seen,
    plans: Sequence[LinePlan],
) -> None:
    """Counts by status and by error code, then the per-line plan, one table under another."""
    statuses, codes = seen.statuses, seen.codes
    rows: list[tuple[Format | None, list[str | int]]] = [(bold, ["status", "rows"])]
    order = {text: place for place, text in enumerate(STATUS_TINTS)}
    for status in sorted(statuses, key=lambda text: (order.get(text, len(order)), text)):
        rows.append((styles.of(status), [status, statuses[status]]))
    rows.append((None, ["total", sum(statuses.values())]))
    if codes:
        rows += [(None, []), (bold, ["error code", "meaning", "rows"])]
        for code in sorted(codes, key=lambda text: (not text.isdigit(), len(text), text)):
            meaning = CODE_MEANINGS.get(int(code), "") if code.isdigit() else ""
            rows.append((None, [code, meaning, codes[code]]))
    if plans:
        rows += [(None, []), (bold, ["line", "first touches", "follow-ups", "estimate"])]
        for plan in plans:
            estimate = ""
            if plan.first_touches:
                seconds = plan.estimate_seconds
                estimate = f"about {duration(seconds)}" if seconds > 0 else "right away"
            line = plan.line or "chats named by chat_id"
            rows.append((None, [line, plan.first_touches, plan.follow_ups, estimate]))
    for number, (style, cells) in enumerate(rows):
        for column, value in enumerate(cells):
            cell_style = style if column == 0 or style is bold else None
            if isinstance(value, int):
                worksheet.write_number(number, column, value, cell_style)
            else:
                worksheet.write_string(number, column, value, cell_style)
    worksheet.set_column(0, 0, 24)
    worksheet.set_column(1, 1, 36)
    worksheet.set_column(2, 3, 14)


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
