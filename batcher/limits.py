"""How large a handoff file may be: the limits loading enforces, in one place (README: "Limits").

A spreadsheet app never writes beyond its grid, and a handoff file of messages is far
from it; the limits are there so that no file, however made, can take the machine's
memory: a few kilobytes of XLSX can claim a cell at XFD1048576, which a reader would
have to hold as seventeen billion empty cells.
"""

from __future__ import annotations

from batcher.errors import InputError

# Excel's grid: 1,048,576 rows by 16,384 columns (A to XFD).
MAX_ROWS = 1_048_576
MAX_COLUMNS = 16_384
# Cells of an XLSX sheet's used range (rows x columns from A1 to its last cell): a reader
# holds every one of them, empty or not. A million rows of ten columns.
MAX_CELLS = 10_000_000
# What the parts of an XLSX file may inflate to, together.
MAX_INFLATED = 512 * 1024 * 1024


def check_width(where: str, row: int, columns: int) -> None:
    """Refuse a row that uses more columns than a spreadsheet holds (trailing empty cells aside)."""
    if columns > MAX_COLUMNS:
        raise InputError(
            f"{where} row {row} has {columns:,} columns: a spreadsheet holds at most "
            f"{MAX_COLUMNS:,} (A to XFD).",
            hint="Delete the columns after the last one you use, or check that the file "
            "is a sheet of messages; then try again.",
        )
