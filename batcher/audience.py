"""Suppression files: the numbers in a do-not-contact list, read like a handoff file's.

A CSV or XLSX file whose header row names a phone column (the recipients headers of
a handoff file: Phone, Mobile, To, Number, ...; every such column is read, since a
contact's Phone and Mobile are both that person's), or a file of numbers without a
header, one a line. Cells are split and numbers normalized exactly as a handoff
file's recipients are, for `--region`; a number that would be refused there is
refused here, with its line (row in a workbook), column and value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from batcher.columns import column_name, is_recipients_header, looks_like_data
from batcher.errors import InputError
from batcher.loading import SheetRow, load_sheet
from batcher.phones import normalize_phone, split_recipients

# Bad numbers listed in one error before "and N more".
SHOWN_BAD = 10


@dataclass(frozen=True)
class BadNumber:
    """A cell of a suppression file that is no usable phone number."""

    where: str
    value: str
    problem: str

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}"


@dataclass(frozen=True)
class NumberList:
    """A suppression file's numbers (E.164, in file order, no repeats), and its bad cells."""

    path: Path
    numbers: tuple[str, ...]
    bad: tuple[BadNumber, ...]


def read_numbers(path: Path, region: str) -> NumberList:
    """Read a suppression file; InputError if it has neither a phone column nor bare numbers."""
    sheet = load_sheet(path)
    line = "row" if sheet.kind == "xlsx" else "line"
    columns = [index for index, header in enumerate(sheet.headers) if is_recipients_header(header)]
    rows: list[SheetRow] = list(sheet.rows)
    headed = bool(columns)
    if not headed:
        if not looks_like_data(sheet.headers):
            found = ", ".join(repr(header) for header in sheet.headers if header) or "nothing"
            raise InputError(
                f"{path}: no phone column. The header row has {found}.",
                hint="Name the column of numbers Phone (or Mobile, Number, To), or give the "
                "numbers alone, one a line.",
            )
        # No header: the first row is a number too, and every cell holds numbers.
        rows.insert(0, SheetRow(sheet.header_number, sheet.headers))
        columns = list(range(len(sheet.headers)))
    numbers: dict[str, None] = {}
    bad: list[BadNumber] = []
    for row in rows:
        for index in columns:
            for text in split_recipients(row.cell(index)):
                phone = normalize_phone(text, region)
                if phone.e164:
                    numbers[phone.e164] = None
                    continue
                where = f"{line} {row.number}"
                if headed:
                    where += f", column {column_name(sheet.headers, index)}"
                bad.append(BadNumber(where, text, phone.problem))
    return NumberList(path, tuple(numbers), tuple(bad))


def bad_numbers(found: NumberList, *, where: str, nothing: str, hint: str) -> InputError:
    """The error for a suppression file with numbers that cannot be used: each, by place.

    `where` names the file as the command took it; `nothing` says what was not done
    ("imported", "sent").
    """
    listed = "\n".join(f"  {bad}" for bad in found.bad[:SHOWN_BAD])
    more = len(found.bad) - SHOWN_BAD
    count = f"{len(found.bad)} number" + ("" if len(found.bad) == 1 else "s")
    return InputError(
        f"{where}: {count} cannot be used, so nothing was {nothing}:\n{listed}"
        + (f"\n  and {more} more" if more > 0 else ""),
        hint=hint,
    )
