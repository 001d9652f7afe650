"""Real handoff files for tests: CSV and XLSX written from a table of cells."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from openpyxl import Workbook

Cell = str | int | float | None
Table = Sequence[Sequence[Cell]]


def write_csv(
    path: Path,
    rows: Table,
    *,
    encoding: str = "utf-8",
    delimiter: str = ",",
) -> Path:
    """Write `rows` as a CSV file in the given encoding (`utf-8-sig` adds a BOM)."""
    with path.open("w", encoding=encoding, newline="") as stream:
        writer = csv.writer(stream, delimiter=delimiter)
        writer.writerows(["" if cell is None else str(cell) for cell in row] for row in rows)
    return path


def write_xlsx(
    path: Path,
    rows: Table,
    *,
    sheet: str = "Sheet1",
    formats: dict[tuple[int, int], str] | None = None,
    first_cell: tuple[int, int] = (1, 1),
    extra_sheets: Sequence[str] = (),
) -> Path:
    """Write `rows` to an XLSX sheet; ints and floats become numeric cells.

    `formats` maps (row, column), both 1-based sheet coordinates, to a number format.
    `first_cell` moves the table away from A1, as people's sheets sometimes are.
    """
    book = Workbook()
    worksheet = book.active
    assert worksheet is not None
    worksheet.title = sheet
    top, left = first_cell
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if value is not None and value != "":
                worksheet.cell(row=top + r, column=left + c, value=value)
    for (r, c), number_format in (formats or {}).items():
        worksheet.cell(row=r, column=c).number_format = number_format
    for name in extra_sheets:
        book.create_sheet(name)
    book.save(path)
    return path
